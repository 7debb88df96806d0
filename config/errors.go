package config

import (
	"errors"
	"fmt"
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrUnknownKey: the file names a key ftpct does not have.
	ErrUnknownKey = errors.New("unknown key")
	// ErrBadValue: a key's value is of the wrong type or out of range.
	ErrBadValue = errors.New("bad value")
	// ErrSyntax: the file is not valid TOML.
	ErrSyntax = errors.New("syntax error")
	// ErrNoFile: a config file named explicitly does not exist.
	ErrNoFile = errors.New("config file not found")
)

// KeyError is a problem with one key: in a file (File and Line set) or on
// the command line (File empty).
type KeyError struct {
	Key  string
	File string
	Line int
	Err  error
}

func (e *KeyError) Error() string {
	switch {
	case e.File != "" && e.Key != "":
		return fmt.Sprintf("%s:%d: %s: %v", e.File, e.Line, e.Key, e.Err)
	case e.File != "":
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	default:
		return fmt.Sprintf("--%s: %v", e.Key, e.Err)
	}
}

func (e *KeyError) Unwrap() error { return e.Err }
