//go:build !linux

package nfq

import "context"

// Queue is a bound NFQUEUE; only on Linux.
type Queue struct{}

// Open fails: not supported on this OS.
func Open(ctx context.Context, cfg Config, h Handler) (*Queue, error) { return nil, ErrUnsupported }

// Done returns a closed channel.
func (q *Queue) Done() <-chan struct{} { c := make(chan struct{}); close(c); return c }

// Err returns nil.
func (q *Queue) Err() error { return nil }

// Stats returns empty counters.
func (q *Queue) Stats() *Stats { return &Stats{} }

// Close does nothing.
func (q *Queue) Close() error { return nil }

// Verdict returns ErrUnsupported.
func (q *Queue) Verdict(id uint32, v Verdict, payload []byte) error { return ErrUnsupported }
