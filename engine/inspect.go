package engine

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/ftpct/ftpct/conntrack"
	"github.com/ftpct/ftpct/expect"
)

// What the control socket shows of the engine's state: sessions, their
// stream offsets and expectations, counts by state, and closing a hole by
// hand. None of it runs on the packet path.

// SessionState is where a tracked control connection stands.
type SessionState uint8

const (
	// SessionActive: read and rewritten as it goes.
	SessionActive SessionState = iota
	// SessionTLS: switched to TLS; no longer readable (still adjusted).
	SessionTLS
	// SessionClosing: a FIN or RST was seen; forgotten once the kernel is.
	SessionClosing
	numSessionStates
)

var sessionStateNames = [numSessionStates]string{
	SessionActive:  "active",
	SessionTLS:     "tls",
	SessionClosing: "closing",
}

func (s SessionState) String() string {
	if uint(s) < uint(len(sessionStateNames)) {
		return sessionStateNames[s]
	}
	return "SessionState(" + strconv.Itoa(int(s)) + ")"
}

// TLSState is how far a control connection went towards TLS.
type TLSState uint8

const (
	// TLSNone: no AUTH seen.
	TLSNone TLSState = iota
	// TLSRequested: the client sent AUTH; the server has not agreed (yet).
	TLSRequested
	// TLSOn: the server answered 234; the channel is encrypted.
	TLSOn
)

var tlsStateNames = [...]string{
	TLSNone:      "none",
	TLSRequested: "requested",
	TLSOn:        "on",
}

func (s TLSState) String() string {
	if uint(s) < uint(len(tlsStateNames)) {
		return tlsStateNames[s]
	}
	return "TLSState(" + strconv.Itoa(int(s)) + ")"
}

// DirInfo is one direction of a control connection (index
// conntrack.DirOrig: the client's commands, DirReply: the server's replies).
type DirInfo struct {
	// Offset is the sequence adjustment of new bytes of this direction:
	// the base (length changes already acknowledged) plus the deltas of
	// the rewrites kept for retransmissions.
	Offset int32
	// Base is the acknowledged part of Offset.
	Base int32
	// Kept is how many rewrites await the peer's acknowledgement.
	Kept int
	// Held is how many bytes of a split line are held back.
	Held int
}

// SessionInfo describes one tracked control connection.
type SessionInfo struct {
	ID uint64
	// Binding is the kernel's view: original and reply tuples (NAT).
	Binding  conntrack.Binding
	State    SessionState
	TLS      TLSState
	Created  time.Time
	LastSeen time.Time
	Dir      [2]DirInfo
	// Expectations are the IDs of its pending expectations.
	Expectations []uint64
}

// SessionInfos describes the tracked control connections, by ID.
func (e *Engine) SessionInfos() []SessionInfo {
	byS := map[uint64][]uint64{}
	for _, x := range e.exps.List() {
		byS[x.Session] = append(byS[x.Session], x.ID)
	}
	list := e.sessions.Sessions(nil)
	out := make([]SessionInfo, 0, len(list))
	for _, s := range list {
		in := SessionInfo{ID: s.ID, Binding: s.Binding, Created: s.Created(), Expectations: byS[s.ID]}
		s.Lock()
		in.State = sessionState(s)
		switch {
		case s.Lines.TLS:
			in.TLS = TLSOn
		case s.Lines.AuthSent:
			in.TLS = TLSRequested
		}
		in.LastSeen = s.LastSeen()
		for d := range s.Stream {
			ds := &s.Stream[d]
			di := DirInfo{Base: ds.Base(), Kept: len(ds.Records()), Held: len(ds.Held())}
			di.Offset = di.Base
			for _, r := range ds.Records() {
				di.Offset += int32(r.Delta)
			}
			in.Dir[d] = di
		}
		s.Unlock()
		out = append(out, in)
	}
	slices.SortFunc(out, func(a, b SessionInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// sessionState reads s's state; s is locked.
func sessionState(s *conntrack.Session) SessionState {
	switch {
	case s.Closing:
		return SessionClosing
	case s.Lines.TLS:
		return SessionTLS
	}
	return SessionActive
}

// StateCount is how many sessions or expectations are in one state.
type StateCount struct {
	State string
	Count uint64
}

// SessionsByState counts the tracked control connections in each state
// (every state listed, also with none).
func (e *Engine) SessionsByState() []StateCount {
	var n [numSessionStates]uint64
	for _, s := range e.sessions.Sessions(nil) {
		s.Lock()
		n[sessionState(s)]++
		s.Unlock()
	}
	out := make([]StateCount, numSessionStates)
	for i := range out {
		out[i] = StateCount{State: SessionState(i).String(), Count: n[i]}
	}
	return out
}

// ExpectationsByState counts the expectations in each state. The table
// holds pending ones only: used, expired, evicted and deleted ones leave it
// (their counters count them).
func (e *Engine) ExpectationsByState() []StateCount {
	return []StateCount{{State: "pending", Count: uint64(e.exps.Len())}}
}

// ExpectFilter selects expectations; its zero value selects all.
type ExpectFilter struct {
	// Session: only this control connection's (0: any).
	Session uint64
	// Peer: only those involving this address, as the data connection's
	// source, its destination, or the endpoint it is translated to.
	Peer netip.Addr
}

// Match reports whether f selects x.
func (f ExpectFilter) Match(x *expect.Expectation) bool {
	if f.Session != 0 && x.Session != f.Session {
		return false
	}
	if f.Peer.IsValid() {
		p := f.Peer.Unmap()
		if x.Peer.Unmap() != p && x.Addr.Unmap() != p && (!x.To.IsValid() || x.To.Addr().Unmap() != p) {
			return false
		}
	}
	return true
}

// ExpectationsOf lists the pending expectations f selects, by ID.
func (e *Engine) ExpectationsOf(f ExpectFilter) []expect.Expectation {
	list := e.exps.List()
	return slices.DeleteFunc(list, func(x expect.Expectation) bool { return !f.Match(&x) })
}

// DeleteExpectation closes the hole of the pending expectation id by hand:
// it leaves the table, its nftables elements are deleted, and an
// EventDeleted is reported. An unknown id is an error wrapping
// ErrNoExpectation.
func (e *Engine) DeleteExpectation(id uint64) (expect.Expectation, error) {
	var x expect.Expectation
	found := false
	for _, c := range e.exps.List() {
		if c.ID == id {
			x, found = c, true
			break
		}
	}
	if !found || !e.exps.Delete(x) {
		// Not pending, or used or expired meanwhile.
		return x, fmt.Errorf("expectation %d: %w", id, ErrNoExpectation)
	}
	now := e.now()
	h := e.hole(x)
	if h.Timeout < time.Second {
		h.Timeout = time.Second // only deleted; the rule manager wants a positive one
	}
	err := e.closeWait(h)
	if err != nil {
		e.stats.Errors.Add(1)
		err = fmt.Errorf("expectation %d: %w", id, err)
	}
	e.stats.ExpectDeleted.Add(1)
	e.eventDeleted(x, now)
	return x, err
}
