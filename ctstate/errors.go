package ctstate

import "errors"

// Sentinel errors; callers match them with errors.Is.
var (
	// ErrVersion: the labels carry a format version this ftpct does not know.
	ErrVersion = errors.New("unknown ct labels state version")
	// ErrCorrupt: the labels carry this version but bits it never writes.
	ErrCorrupt = errors.New("corrupt ct labels state")
	// ErrRange: an offset or delta does not fit the encoding.
	ErrRange = errors.New("sequence adjustment out of the range ct labels can hold")
)
