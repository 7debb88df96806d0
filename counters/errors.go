package counters

import "errors"

var (
	// ErrKind: a kind other than counter or gauge.
	ErrKind = errors.New("unknown counter kind")
	// ErrDesc: a description without a usable name or help text.
	ErrDesc = errors.New("bad counter description")
)
