package rules

import "errors"

// Sentinel errors. Callers match them with errors.Is; the wrapped text adds
// the context (which table, which rule, which hole).
var (
	// ErrNotSupported is returned on operating systems other than Linux.
	ErrNotSupported = errors.New("rules: not supported on this OS (nftables and iptables are Linux-only)")
	// ErrInvalidConfig wraps every Config.Validate failure.
	ErrInvalidConfig = errors.New("invalid rules config")
	// ErrInvalidHole wraps every Hole validation failure in Open and Close.
	ErrInvalidHole = errors.New("invalid hole")
	// ErrInvalidElement wraps a set element the committer cannot send
	// (an anonymous set, a verdict or interval element, a key, data or
	// comment too long for the kernel).
	ErrInvalidElement = errors.New("invalid set element")
	// ErrNoIptables is returned by Install when Config.Accept is set but the
	// iptables (or ip6tables) binary cannot be found.
	ErrNoIptables = errors.New("iptables binary not found; install iptables or run with --no-install-rules and add the accept rules yourself")
	// ErrClosed is returned by every method called after Shutdown.
	ErrClosed = errors.New("rules manager is shut down")
)
