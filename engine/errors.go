package engine

import "errors"

// ErrNoExpectation: no pending expectation has the given ID.
var ErrNoExpectation = errors.New("no such pending expectation")
