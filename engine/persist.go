package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/ftpct/ftpct/conntrack"
	"github.com/ftpct/ftpct/ctstate"
	"github.com/ftpct/ftpct/expect"
	"github.com/ftpct/ftpct/ftpparse"
	"github.com/ftpct/ftpct/rules"
	"github.com/ftpct/ftpct/seqnum"
	"github.com/ftpct/ftpct/stream"
)

// Persistence: what a restart or crash of ftpct must not lose is each
// direction's sequence adjustment of a control connection whose stream was
// resized. It is kept in the kernel's conntrack entry of that connection
// (its ct labels, see package ctstate), written before the verdict of the
// packet whose rewrite changed it, and read back when a restarted engine
// learns the session. While no daemon runs, the divert chains drop the
// packets of such a connection (rules.Manager.Hold) instead of passing them
// unadjusted.
//
// The same write makes conntrack's TCP window tracking of the connection
// liberal in both directions: ftpct rewrites before conntrack, which then
// sees the resized sender in wire space and the peer's acknowledgements in
// the sender's original space, and would mark the peer's segments INVALID
// once the summed growth passes its MAXACKWINDOW (66,000 bytes). The flag
// lives in the conntrack entry, so it outlives ftpct.

// StateStore writes a resized control connection's labels and makes
// conntrack's window tracking of it liberal (conntrack.Kernel.SetResized).
type StateStore interface {
	SetResized(conntrack.Tuple, [conntrack.LabelsSize]byte) error
}

// FlowHolder holds a resized connection's packets while no daemon runs
// (rules.Manager).
type FlowHolder interface {
	Hold(...rules.Flow) error
	Release(...rules.Flow) error
}

// persister keeps the engine's bookkeeping of stored state. The zero value
// (no store) persists nothing.
type persister struct {
	store StateStore
	hold  FlowHolder
	log   *slog.Logger
	lim   *limiter

	mu      sync.Mutex
	byID    map[uint64]*stored
	foreign map[conntrack.FlowKey]conntrack.Tuple // packet keys of unreadable sessions -> their tuple

	stats *Stats // the engine's counters
}

// stored is what was last written for one session.
type stored struct {
	state       ctstate.State
	held        bool
	unpersisted bool // its entry has no labels: logged once, never retried
}

func newPersister(log *slog.Logger, stats *Stats) *persister {
	return &persister{log: log, stats: stats, lim: newLimiter(1, 5), byID: map[uint64]*stored{}, foreign: map[conntrack.FlowKey]conntrack.Tuple{}}
}

// Persist makes the engine keep each resized session's state in store (the
// kernel's conntrack labels) and hold its flows with hold while no daemon
// runs, and read stored state back when it learns a session. Without it
// nothing is persisted. Call it before the first packet is handled.
func (e *Engine) Persist(store StateStore, hold FlowHolder) {
	e.persist.store, e.persist.hold = store, hold
}

func (p *persister) enabled() bool { return p.store != nil }

// errForeign: the session's labels hold state ftpct cannot read.
var errForeign = errors.New("control connection carries unreadable state")

// isForeign reports whether a packet key belongs to a session whose labels
// were refused: it passes untouched, without asking the kernel again.
func (p *persister) isForeign(k conntrack.FlowKey) bool {
	if !p.enabled() {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.foreign[k]
	return ok
}

// unforeign forgets that k's connection had unreadable labels: a new
// connection (a SYN) reuses k, and the kernel gives it a fresh entry.
func (p *persister) unforeign(k conntrack.FlowKey) {
	if !p.enabled() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	o, ok := p.foreign[k]
	if !ok {
		return
	}
	for key, t := range p.foreign {
		if t == o {
			delete(p.foreign, key)
		}
	}
}

// decode reads the state in b's labels. Unreadable labels make the session
// foreign: logged once (rate-limited), counted, remembered by both keys.
func (p *persister) decode(b conntrack.Binding, now time.Time) (ctstate.State, error) {
	if !p.enabled() {
		return ctstate.State{}, nil
	}
	s, err := ctstate.Decode(b.Labels)
	if err == nil {
		return s, nil
	}
	p.mu.Lock()
	p.foreign[b.Orig.Key()] = b.Orig
	p.foreign[b.Reply.Key()] = b.Orig
	p.mu.Unlock()
	p.stats.SessionsForeign.Add(1)
	if p.lim.Allow(now) {
		p.log.Error("control connection's ct labels hold state this ftpct cannot read; it passes untouched",
			"conn", b.Orig.String(), "labels", fmt.Sprintf("%x", b.Labels), "err", err)
	}
	return ctstate.State{}, fmt.Errorf("%w: %w", errForeign, err)
}

// restore gives a newly learned session the adjustments stored by an
// earlier run: "offset before Pos, one change Delta at Pos" per direction
// (stream.Half.Restore), with the span of the changes before it that the
// peer had not acknowledged where one was stored (stream.Half.RestoreSpan),
// and holds its flows. A retransmission of the rewritten segments is parsed
// and rewritten again; the normaliser fills the restored records in with
// their text. The session is locked (AddLocked).
func (p *persister) restore(s *conntrack.Session, st ctstate.State) {
	if st.IsZero() {
		return
	}
	for d := range 2 {
		if !st.Valid[d] {
			continue
		}
		a := st.Dir[d]
		s.Stream[d].RestoreSpan(stream.Summary{Pos: seqnum.Value(a.Pos), Before: a.Before(), Delta: int16(a.Delta)},
			seqnum.Value(a.From()), a.Lump)
	}
	// Held again: an adopted table still has the flows, but a table made
	// anew (or a standby's, its state replicated) does not.
	held := p.hold.Hold(flowOf(s.Binding.Orig), flowOf(s.Binding.Reply)) == nil
	// Liberal again where the entry lost it: conntrackd replicates labels
	// but not TCP flags, and a standby's entry with TCPWindowTracking on is
	// strict; the next rewrite may be far off.
	if !s.Binding.Liberal {
		if labels, err := ctstate.Encode(st); err == nil {
			if err := p.store.SetResized(s.Binding.Orig, labels); err != nil {
				p.stats.StateErrors.Add(1)
				p.log.Warn("restored session's conntrack entry not made liberal: its peer's segments may be dropped as INVALID",
					"session", s.ID, "conn", s.Binding.Orig.String(), "err", err)
			}
		}
	}
	p.mu.Lock()
	p.byID[s.ID] = &stored{state: st, held: held}
	p.mu.Unlock()
	p.stats.SessionsRestored.Add(1)
}

// total is the cumulative offset after every length change of h.
func total(h *stream.Half) int32 {
	sm := h.Snapshot()
	return sm.Before + int32(sm.Delta)
}

// fits reports whether a length change of delta in direction dir keeps the
// session's state within what the labels can hold.
func (p *persister) fits(s *conntrack.Session, dir conntrack.Dir, delta int) bool {
	if !p.enabled() || delta == 0 {
		return true
	}
	a := ctstate.Adj{Delta: int32(delta), After: total(&s.Stream[dir]) + int32(delta)}
	if delta < ctstate.MinDelta || delta > ctstate.MaxDelta || a.Check() != nil {
		p.stats.RewritesOutOfRange.Add(1)
		return false
	}
	return true
}

// save stores the session's adjustments after a packet changed the newest
// length change of a direction. The session is locked. It returns false
// when the session's flows could not be held: the packet must not leave
// resized (see after).
func (p *persister) save(s *conntrack.Session, now time.Time) bool {
	p.mu.Lock()
	st := p.byID[s.ID]
	if st == nil {
		st = &stored{}
		p.byID[s.ID] = st
	}
	held, unpersisted := st.held, st.unpersisted
	next := st.state
	p.mu.Unlock()
	if !held {
		// Held first: from now on every packet of the connection is
		// queued (its bare acknowledgements too, which then need mapping
		// back; the divert chains pass those of flows not held) and waits
		// for a daemon.
		if err := p.hold.Hold(flowOf(s.Binding.Orig), flowOf(s.Binding.Reply)); err != nil {
			p.stats.StateErrors.Add(1)
			if p.lim.Allow(now) {
				p.log.Error("resized session not held: the rewrite is not sent (tried again with the next one)", "session", s.ID, "err", err)
			}
			return false
		}
		p.mu.Lock()
		st.held = true
		p.mu.Unlock()
	}
	if unpersisted {
		return true
	}
	next = p.stateOf(s, next)
	labels, err := ctstate.Encode(next)
	if err != nil {
		p.failed(s, "encode", err, now)
		return true
	}
	if err := p.store.SetResized(s.Binding.Orig, labels); err != nil {
		if errors.Is(err, conntrack.ErrNoLabels) {
			p.mu.Lock()
			st.unpersisted = true
			p.mu.Unlock()
			p.stats.SessionsUnpersisted.Add(1)
			p.log.Warn("resized control connection cannot be persisted: its conntrack entry predates ftpct's rules; a restart of ftpct will break it",
				"session", s.ID, "conn", s.Binding.Orig.String())
			return true
		}
		p.failed(s, "write labels", err, now)
		return true
	}
	p.stats.StateWrites.Add(1)
	p.mu.Lock()
	st.state = next
	p.mu.Unlock()
	return true
}

// stateOf is the state to store for s, whose state last stored is prev: per
// direction the newest length change (kept from prev when the records that
// made it are gone), and the span of the changes before it that the peer
// has not acknowledged (stream.Half.Span), which a resend may carry.
//
// Why the span, and why it is enough. After a restart the sender resends
// from the oldest byte its peer has not acknowledged to it (TCP), and may
// resend any segment from there on, each up to the bytes ftpct last let
// through, or beyond them (segments ftpct rewrote but whose verdict the
// dead daemon never gave, or that were lost after it). Every byte of that
// must reach the peer where the stream as rewritten puts it, or below what
// the peer holds already (which it discards). The oldest kept record is at
// or after that byte:
//
//   - records go only when the peer acknowledges them, and the span is
//     stored again before an acknowledgement that drops some of them while
//     others stay is let through to the sender (acked);
//   - bytes before the oldest kept record back to the last record dropped
//     are shifted by the base, exactly; bytes before that the peer holds,
//     and shifted by the base they land below what it acknowledged.
//
// So a resend that starts at or before the span's start is placed exactly
// and its rewrites are made again in order (stream.Half.RestoreSpan), and
// one that starts after it is either beyond the newest change (shifted by
// After, exactly; the sender then resends nothing of the span, its peer
// holds it) or a segment sent out of order, which waits (the normaliser
// drops it until the bytes before it are through).
//
// The labels hold one direction's span: when both directions are resized
// the spans are left out (README "Restarts"), as they are when one spans
// more than ctstate.MaxSpan bytes.
func (p *persister) stateOf(s *conntrack.Session, prev ctstate.State) ctstate.State {
	next := prev
	spans := 0
	for d := range 2 {
		h := &s.Stream[d]
		sm := h.Snapshot()
		if sm.Delta == 0 {
			next.Dir[d].Span, next.Dir[d].Lump = 0, 0 // nothing kept: nothing to resend
			continue
		}
		a := ctstate.Adj{Pos: uint32(sm.Pos), Delta: int32(sm.Delta), After: sm.Before + int32(sm.Delta)}
		if _, lump, ok := h.Span(); ok {
			// From the start of the oldest rewrite's line rather than
			// its argument (Span's from), so that a resend from there is
			// read from a line start (the offset is the same: no rewrite
			// lies between).
			from := lineStart(&h.Records()[0])
			if span := sm.Pos.Diff(from); span > 0 && span <= ctstate.MaxSpan && lump >= ctstate.MinLump && lump <= ctstate.MaxLump {
				a.Span, a.Lump = uint32(span), lump
				spans++
			}
		}
		next.Valid[d] = true
		next.Dir[d] = a
	}
	if spans > 0 && next.Valid[0] && next.Valid[1] {
		for d := range 2 {
			next.Dir[d].Span, next.Dir[d].Lump = 0, 0
		}
	}
	return next
}

// acked stores s's state again when an acknowledgement of its peer just
// dropped some of direction dir's records while others stay: the span
// stored may start before what the sender will resend from once the
// acknowledgement reaches it (see stateOf). It runs before the verdict of
// the packet that carries the acknowledgement. When no record stays, the
// sender resends nothing before the newest change, and the span stored
// does no harm (the normaliser gives it up at the first segment after it).
func (p *persister) acked(s *conntrack.Session, dir conntrack.Dir, dropped int, now time.Time) {
	if !p.enabled() || dropped == 0 || len(s.Stream[dir].Records()) == 0 {
		return
	}
	p.mu.Lock()
	st := p.byID[s.ID]
	var prev ctstate.State
	ok := st != nil && st.held && !st.unpersisted && !st.state.IsZero()
	if ok {
		prev = st.state
	}
	p.mu.Unlock()
	if !ok {
		return
	}
	next := p.stateOf(s, prev)
	if next == prev {
		return
	}
	labels, err := ctstate.Encode(next)
	if err != nil {
		p.failed(s, "encode", err, now)
		return
	}
	if err := p.store.SetResized(s.Binding.Orig, labels); err != nil {
		p.failed(s, "write labels", err, now)
		return
	}
	p.stats.StateWrites.Add(1)
	p.mu.Lock()
	st.state = next
	p.mu.Unlock()
}

func (p *persister) failed(s *conntrack.Session, what string, err error, now time.Time) {
	p.stats.StateErrors.Add(1)
	if p.lim.Allow(now) {
		p.log.Error("session state not stored; a restart of ftpct will break this session", "session", s.ID, "step", what, "err", err)
	}
}

func flowOf(t conntrack.Tuple) rules.Flow {
	return rules.Flow{Src: netip.AddrPortFrom(t.Src, t.SrcPort), Dst: netip.AddrPortFrom(t.Dst, t.DstPort)}
}

// forget drops a session the kernel no longer tracks: its held flows go.
func (p *persister) forget(s *conntrack.Session) {
	if !p.enabled() {
		return
	}
	p.mu.Lock()
	st := p.byID[s.ID]
	delete(p.byID, s.ID)
	p.mu.Unlock()
	if st != nil && st.held {
		if err := p.hold.Release(flowOf(s.Binding.Orig), flowOf(s.Binding.Reply)); err != nil {
			p.stats.StateErrors.Add(1)
		}
	}
}

// collect forgets foreign sessions the kernel no longer tracks.
func (p *persister) collect(k Kernel) {
	if !p.enabled() {
		return
	}
	p.mu.Lock()
	seen := map[conntrack.Tuple]bool{}
	for _, t := range p.foreign {
		seen[t] = true
	}
	p.mu.Unlock()
	for t := range seen {
		if _, err := k.Lookup(t); !errors.Is(err, conntrack.ErrNoEntry) {
			continue
		}
		p.mu.Lock()
		for key, o := range p.foreign {
			if o == t {
				delete(p.foreign, key)
			}
		}
		p.mu.Unlock()
	}
}

// Adopt takes over what an earlier run left (rules.Manager.Reconcile keeps
// what belongs to live control connections). The sessions of held flows
// (resized streams) are learned from the kernel at once, with their stored
// state, so that even their first bare acknowledgements are mapped. Each
// hole becomes a pending expectation of its owner's session again, with the
// lifetime it has left; holes whose owner cannot be learned are closed. It
// returns how many holes it took.
func (e *Engine) Adopt(holes []rules.Hole, held []rules.Flow) int {
	now := e.now()
	for _, f := range held {
		b, err := e.kernel.Lookup(conntrack.Tuple{Src: f.Src.Addr(), Dst: f.Dst.Addr(), SrcPort: f.Src.Port(), DstPort: f.Dst.Port()})
		if err == nil {
			_, err = e.learnBinding(b, now)
		}
		if err != nil && !errors.Is(err, errForeign) {
			e.log.Warn("resized session left by an earlier run not learned at start", "flow", f.String(), "err", err)
		}
	}
	n := 0
	for _, h := range holes {
		if err := e.adopt(h, now); err != nil {
			e.stats.Errors.Add(1)
			e.log.Warn("hole left by an earlier run not taken over; closed", "hole", h.String(), "err", err)
			_ = e.holes.Close(h)
			continue
		}
		n++
	}
	return n
}

func (e *Engine) adopt(h rules.Hole, now time.Time) error {
	o := h.Owner
	b, err := e.kernel.Lookup(conntrack.Tuple{Src: o.Src.Addr(), Dst: o.Dst.Addr(), SrcPort: o.Src.Port(), DstPort: o.Dst.Port()})
	if err != nil {
		return err
	}
	s, err := e.learnBinding(b, now)
	if err != nil {
		return err
	}
	// The server connects (active mode: PORT, EPRT) or the client does (passive).
	kind := ftpparse.KindPASV
	if h.Peer == b.Reply.Src || h.Peer == b.Orig.Dst {
		kind = ftpparse.KindPORT
	}
	if h.Peer.Is6() {
		kind = map[ftpparse.Kind]ftpparse.Kind{ftpparse.KindPASV: ftpparse.KindEPSV, ftpparse.KindPORT: ftpparse.KindEPRT}[kind]
	}
	_, err = e.exps.Adopt(expect.Request{Session: s.ID, Kind: kind, Peer: h.Peer, Addr: h.Addr, Port: h.Port, To: h.To}, now, now.Add(h.Timeout))
	return err
}

// learnBinding adds the session of binding b, restoring its stored state
// when it is new.
func (e *Engine) learnBinding(b conntrack.Binding, now time.Time) (*conntrack.Session, error) {
	if s, _, ok := e.sessions.Lookup(b.Orig.Key()); ok {
		return s, nil // known already (a held flow's other direction, say)
	}
	st, err := e.persist.decode(b, now)
	if err != nil {
		return nil, err
	}
	s, created, err := e.sessions.AddLocked(b, now)
	if err != nil {
		e.stats.SessionsFull.Add(1)
		return nil, err
	}
	if created {
		e.stats.Sessions.Add(1)
		e.persist.restore(s, st)
		s.Unlock()
	}
	return s, nil
}

// after stores the session's state when the packet just rewritten changed
// direction dir's newest length change (before: dir's Snapshot before the
// packet). It returns false when the session could not be held: its bare
// acknowledgements would bypass the queue unmapped, so the packet must not
// leave resized.
func (p *persister) after(s *conntrack.Session, dir conntrack.Dir, before stream.Summary, now time.Time) bool {
	if !p.enabled() {
		return true
	}
	if sm := s.Stream[dir].Snapshot(); sm.Delta != 0 && sm != before {
		return p.save(s, now)
	}
	return true
}

// mustHold reports whether the packet just handled resized direction dir
// of a session not held yet (before: dir's Snapshot before the packet):
// after would hold it, in a transaction of its own.
func (p *persister) mustHold(s *conntrack.Session, dir conntrack.Dir, before stream.Summary) bool {
	if !p.enabled() {
		return false
	}
	if sm := s.Stream[dir].Snapshot(); sm.Delta == 0 || sm == before {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.byID[s.ID]
	return st == nil || !st.held
}

// holdOps are the committer's operations that hold s's flows (save's
// Hold, in a hole's transaction).
func holdOps(s *conntrack.Session) []rules.Op {
	return []rules.Op{{Kind: rules.OpHold, Flow: flowOf(s.Binding.Orig)}, {Kind: rules.OpHold, Flow: flowOf(s.Binding.Reply)}}
}

// held records that s's flows were held (holdOps committed).
func (p *persister) held(s *conntrack.Session) { p.setHeld(s, true) }

// setHeld records whether s's flows are held and returns what was recorded
// before: a packet that came back with the hold mark (its own flow held by
// the divert chains) is recorded held while it is decided, and the record
// is put back if it does not leave (its reverse flow is held only on its
// way out).
func (p *persister) setHeld(s *conntrack.Session, held bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.byID[s.ID]
	if st == nil {
		st = &stored{}
		p.byID[s.ID] = st
	}
	prev := st.held
	st.held = held
	return prev
}

// ownedHole is x's hole, with the session that announced it as owner.
func (e *Engine) ownedHole(x expect.Expectation, s *conntrack.Session) rules.Hole {
	h := e.hole(x)
	h.Owner = flowOf(s.Binding.Orig)
	return h
}

// growth is how many bytes rewriting announcement m to addr and port adds
// to the stream.
func (w *Worker) growth(m ftpparse.Match, addr netip.Addr, port uint16) int {
	n := len(w.repl)
	w.repl = ftpparse.AppendArg(w.repl, m, addr, port)
	g := len(w.repl) - n - (m.End - m.Start)
	w.repl = w.repl[:n]
	return g
}
