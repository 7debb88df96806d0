//go:build !linux

package rules

import (
	"context"
	"log/slog"
	"time"
)

// PassInterval is the least time between two passes (Linux).
const PassInterval = time.Millisecond

// RejectLogEvery is the least time between two log lines of rejected
// passes (Linux).
const RejectLogEvery = 10 * time.Second

// Committer is not supported outside Linux.
type Committer struct{}

// Committer returns a committer whose Submit returns ErrNotSupported.
func (m *Manager) Committer() *Committer { return &Committer{} }

// Submit returns ErrNotSupported.
func (c *Committer) Submit(done func(Result), ops ...Op) error { return ErrNotSupported }

// Hurry does nothing.
func (c *Committer) Hurry() {}

// Elements returns 0, 0.
func (c *Committer) Elements() (sent, netted uint64) { return 0, 0 }

// Run waits for ctx and returns nil.
func (c *Committer) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// SetLogger does nothing.
func (c *Committer) SetLogger(l *slog.Logger) {}

// Rejections returns 0, 0.
func (c *Committer) Rejections() (passes, retries uint64) { return 0, 0 }

// Passes returns 0.
func (c *Committer) Passes() uint64 { return 0 }
