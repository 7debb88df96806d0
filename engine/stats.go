package engine

import "sync/atomic"

// Stats are the engine's counters. All fields are updated atomically.
type Stats struct {
	Packets       atomic.Uint64 // packets handled
	Modified      atomic.Uint64 // packets changed (payload or seq/ack)
	Dropped       atomic.Uint64 // packets dropped (out of order, unreplayable)
	NotTCP        atomic.Uint64 // packets that did not decode as TCP (passed)
	NoConntrack   atomic.Uint64 // payload packets with no kernel conntrack entry (passed)
	Sessions      atomic.Uint64 // control connections learned
	SessionsFull  atomic.Uint64 // control connections not tracked: session table full
	Lines         atomic.Uint64 // complete lines seen
	Commands      atomic.Uint64 // announcements parsed (PORT, EPRT, 227, 229)
	Malformed     atomic.Uint64 // malformed announcements (passed untouched)
	PartialLines  atomic.Uint64 // lines split across segments that cannot be announcements (passed)
	HeldLines     atomic.Uint64 // line beginnings held back until the rest of the line came
	LineOverflow  atomic.Uint64 // held lines that grew past MaxLine (passed unparsed)
	HoldAbandoned atomic.Uint64 // held lines given up when the sender retransmitted them (passed unparsed)
	// HeldCarried: segments with held bytes put in front that were cut at a
	// line start to stay within the sender's segment size; the rest is held.
	HeldCarried atomic.Uint64
	Rewrites    atomic.Uint64 // announcements rewritten
	// RewritesRefused: announcements left unrewritten (no hole) because
	// MaxInFlight rewrites of their direction awaited acknowledgement.
	RewritesRefused atomic.Uint64
	Replays         atomic.Uint64 // rewrites replayed on retransmissions
	// ResendsCompleted: resent segments that carried only part of a
	// rewritten argument, completed with its original bytes made again.
	ResendsCompleted atomic.Uint64
	OutOfOrder       atomic.Uint64 // segments dropped because an earlier one was missing
	ExpectCreated    atomic.Uint64
	ExpectUsed       atomic.Uint64
	ExpectExpired    atomic.Uint64
	ExpectEvicted    atomic.Uint64 // replaced by a newer announcement of the same session
	ExpectRefused    atomic.Uint64
	TLSSessions      atomic.Uint64 // sessions that switched to TLS (no longer readable)
	Errors           atomic.Uint64 // internal errors (rewrite or rule failures)
}

// Snapshot is a point-in-time copy of Stats, for the control socket.
type Snapshot struct {
	Packets          uint64 `json:"packets"`
	Modified         uint64 `json:"modified"`
	Dropped          uint64 `json:"dropped"`
	NotTCP           uint64 `json:"not_tcp"`
	NoConntrack      uint64 `json:"no_conntrack"`
	Sessions         uint64 `json:"sessions"`
	SessionsOpen     uint64 `json:"sessions_open"`
	SessionsFull     uint64 `json:"sessions_full"`
	Lines            uint64 `json:"lines"`
	Commands         uint64 `json:"commands"`
	Malformed        uint64 `json:"malformed"`
	PartialLines     uint64 `json:"partial_lines"`
	HeldLines        uint64 `json:"held_lines"`
	LineOverflow     uint64 `json:"line_overflow"`
	HoldAbandoned    uint64 `json:"hold_abandoned"`
	HeldCarried      uint64 `json:"held_carried"`
	Rewrites         uint64 `json:"rewrites"`
	RewritesRefused  uint64 `json:"rewrites_refused"`
	Replays          uint64 `json:"replays"`
	ResendsCompleted uint64 `json:"resends_completed"`
	OutOfOrder       uint64 `json:"out_of_order"`
	ExpectCreated    uint64 `json:"expect_created"`
	ExpectUsed       uint64 `json:"expect_used"`
	ExpectExpired    uint64 `json:"expect_expired"`
	ExpectEvicted    uint64 `json:"expect_evicted"`
	ExpectRefused    uint64 `json:"expect_refused"`
	ExpectPending    uint64 `json:"expect_pending"`
	TLSSessions      uint64 `json:"tls_sessions"`
	Errors           uint64 `json:"errors"`
}
