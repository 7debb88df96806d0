package engine

import "errors"

// ErrNoExpectation: no pending expectation has the given ID.
var ErrNoExpectation = errors.New("no such pending expectation")

// errNotHeld: a resized session's flows could not be held (FlowHolder), so
// the packet that resizes its stream is not sent rewritten.
var errNotHeld = errors.New("resized session not held")
