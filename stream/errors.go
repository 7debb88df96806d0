package stream

import "errors"

// Sentinel errors of Half.Add; callers compare with errors.Is.
var (
	// ErrOutOfOrder: a record before the newest one that is not kept (or
	// was already folded into the base offset).
	ErrOutOfOrder = errors.New("stream: rewrite record out of order")
	// ErrFull: a new record while MaxRecords are kept.
	ErrFull = errors.New("stream: rewrite records full")
	// ErrConflict: a kept position with a different length change.
	ErrConflict = errors.New("stream: rewrite record conflicts with a kept one")
)
