package conntrack

import "errors"

// Sentinel errors; callers match them with errors.Is.
var (
	// ErrNoEntry: the kernel has no conntrack entry for the tuple.
	ErrNoEntry = errors.New("no conntrack entry")
	// ErrTableFull: a session or expectation limit was reached.
	ErrTableFull = errors.New("table full")
	// ErrSessionLimit: the session already has its maximum of pending expectations
	// and eviction is disabled.
	ErrSessionLimit = errors.New("too many pending expectations for this session")
	// ErrConflict: the expected tuple is already expected for another endpoint
	// and no other port may be chosen.
	ErrConflict = errors.New("expectation conflicts with an existing one")
	// ErrNoPort: no free port was found for a translated expectation.
	ErrNoPort = errors.New("no free port for translated expectation")
	// ErrNoLabels: the kernel's entry has no labels extension: it was
	// created while no rule setting ct labels existed.
	ErrNoLabels = errors.New("conntrack entry has no room for labels")
	// ErrUnsupported: the kernel interface is not available on this OS.
	ErrUnsupported = errors.New("kernel conntrack is only supported on Linux")
)
