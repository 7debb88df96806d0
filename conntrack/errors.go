package conntrack

import "errors"

// Sentinel errors; callers match them with errors.Is.
var (
	// ErrNoEntry: the kernel has no conntrack entry for the tuple.
	ErrNoEntry = errors.New("no conntrack entry")
	// ErrTableFull: the session table holds its limit of control connections.
	ErrTableFull = errors.New("table full")
	// ErrNoLabels: the kernel's entry has no labels extension: it was
	// created while no rule setting ct labels existed.
	ErrNoLabels = errors.New("conntrack entry has no room for labels")
	// ErrNoEvents: the kernel delivers no conntrack events
	// (net.netfilter.nf_conntrack_events is 0).
	ErrNoEvents = errors.New("conntrack events are off (net.netfilter.nf_conntrack_events = 0)")
	// errMalformed: a ctnetlink message from the kernel does not parse.
	errMalformed = errors.New("malformed ctnetlink message")
	// ErrUnsupported: the kernel interface is not available on this OS.
	ErrUnsupported = errors.New("kernel conntrack is only supported on Linux")
)
