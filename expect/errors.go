package expect

import "errors"

// Sentinel errors of Table.Add; callers match them with errors.Is.
var (
	// ErrFull: the table holds its total limit of pending expectations.
	ErrFull = errors.New("expectation table full")
	// ErrConflict: the expected tuple is already expected for another
	// endpoint and no other port may be chosen.
	ErrConflict = errors.New("expectation conflicts with an existing one")
	// ErrNoPort: no free port was found for a translated expectation.
	ErrNoPort = errors.New("no free port for translated expectation")
)
