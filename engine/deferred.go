package engine

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ftpct/ftpct/conntrack"
	"github.com/ftpct/ftpct/expect"
	"github.com/ftpct/ftpct/ftpparse"
	"github.com/ftpct/ftpct/rewrite"
	"github.com/ftpct/ftpct/rules"
	"github.com/ftpct/ftpct/stream"
)

// Hole commits off the packet path. With Engine.Defer, the policy does not
// open an announcement's hole inline: the worker submits the packet's hole
// operations (evicted holes closed, the new one opened) to a Committer,
// which commits what all workers submitted meanwhile in one nftables
// transaction, and the packet's decision waits (DecisionPending) until its
// holes are committed: a data connection never races its hole. (With
// Engine.Guard, only a session's first resize waits so, its flows held in
// the same transaction: guard.go; with Engine.HoldInPath not even that one,
// unless it waited behind another packet: holdpath.go.) The worker goes on
// with other packets. Later packets of the same flow (session and
// direction) wait behind it, unread, and are handled in order once it is
// decided, so a flow is never reordered and the state they meet is final.
//
// A failed commit refuses the packet's announcements as an inline failure
// did (ReasonRules): no hole, its expectations removed, its rewrites
// forgotten, and the packet passes as the sender sent it (or, if the
// normaliser had to change it, is dropped for the sender to retransmit).
// Once the committer stopped (ftpct is stopping), such a packet is dropped
// too, so that a restarted ftpct sees it again.

// Committer commits hole operations off the packet path (rules.Committer):
// done is called once ops are committed, or not, from the committer's own
// goroutine. Submit fails once the committer stopped, without calling done.
// The committer may hold what is submitted back for a while, to commit more
// in one transaction (rules.PassInterval); Hurry makes it commit at once,
// for a packet that waits.
type Committer interface {
	Submit(done func(rules.Result), ops ...rules.Op) error
	Hurry()
}

// VerdictFunc gives the queued packet tag, left DecisionPending by
// Worker.HandleID, its decision (nfq.Queue.Verdict). tag is the caller's,
// as given to HandleID (a packet id, with its queue's number where there
// are several). out, with DecisionModified, is valid only during the call.
type VerdictFunc func(tag uint64, d Decision, out []byte)

// Defer makes the engine commit holes through c and give the decisions of
// packets that wait for them through verdict. Call it before the first
// packet is handled; without it holes are opened inline (Holes).
func (e *Engine) Defer(c Committer, verdict VerdictFunc) {
	e.async = &deferrer{c: c, verdict: verdict, flows: map[flowID]*waiting{}}
	e.async.w = e.NewWorker()
}

// deferrer is the engine's bookkeeping of waiting flows.
type deferrer struct {
	c       Committer
	verdict VerdictFunc
	guard   *guard // nil: announcements wait for their holes (Guard)
	inPath  bool   // a first resize is held in the packet path (HoldInPath)
	// w handles the packets that waited behind a decided one. Only the
	// committer's goroutine uses it (its done calls come one at a time).
	w *Worker
	n atomic.Int32 // len(flows), read without the lock

	mu    sync.Mutex
	flows map[flowID]*waiting
}

type flowID struct {
	session uint64
	dir     conntrack.Dir
}

// waiting is a flow whose oldest packet waits for its holes, or for its
// second pass (rep).
type waiting struct {
	queued []queued // later packets, in arrival order
	rep    *repeat  // the session's first resize, given back to be held (holdpath.go)
}

type queued struct {
	tag  uint64
	pkt  []byte
	held bool // queued with the hold mark
}

// pending is an announcement admitted while its hole is not committed yet.
type pending struct {
	x       expect.Expectation
	created bool
	m       ftpparse.Match
}

// ticket is a packet waiting for its holes.
type ticket struct {
	e      *Engine
	tag    uint64
	sess   *conntrack.Session
	dir    conntrack.Dir
	d      Decision
	out    []byte
	forced bool
	added  int // rewrite records the packet added to its direction
	before stream.Summary
	grants []pending
	keys   []guardKey // its holes in the guard's registry (guarded)
	holds  bool       // its operations hold the session's flows
	heldIn bool       // it came with the hold mark (held in the packet path)
	prev   bool       // whether the session was recorded held before it (heldIn)
}

// behind queues packet tag of sess's direction dir when an earlier packet
// of that flow waits; the session is locked.
func (a *deferrer) behind(sess *conntrack.Session, dir conntrack.Dir, tag uint64, pkt []byte, held bool) bool {
	if a == nil || a.n.Load() == 0 {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	f, ok := a.flows[flowID{sess.ID, dir}]
	if ok {
		f.queued = append(f.queued, queued{tag: tag, pkt: bytes.Clone(pkt), held: held})
	}
	return ok
}

// wait marks the flow waiting (it may be already).
func (a *deferrer) wait(sess *conntrack.Session, dir conntrack.Dir) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := flowID{sess.ID, dir}
	if _, ok := a.flows[k]; !ok {
		a.flows[k] = &waiting{}
		a.n.Add(1)
	}
}

// locked handles segment s of the locked session sess, then, if the policy
// asked for hole operations, submits them and defers the decision; with the
// guard and mayMark, and unless the packet is its session's first resize
// (which must be held first) or the committer is far behind (guard.busy),
// the decision is given at once (guarded). A
// first resize is held in the packet path (repeatFirst) where the engine
// may (HoldInPath), else its holds join its holes' transaction and it
// waits. heldIn: the packet came with the hold mark, its own flow held.
func (w *Worker) locked(tag uint64, sess *conntrack.Session, dir conntrack.Dir, s *segment, now time.Time, mayMark, heldIn bool) (Decision, []byte) {
	e := w.e
	prev := false
	if heldIn {
		// Recorded held while it is decided, so that nothing holds its
		// flows by a commit: its reverse flow is held on its way out.
		prev = e.persist.setHeld(sess, true)
	}
	// The packet as it came: deciding may make s another one (held bytes
	// put in front, a line beginning held back).
	orig, seq := s.in, s.p.Seq
	w.ops, w.grants = w.ops[:0], w.grants[:0]
	d, out := w.decide(sess, dir, s, now)
	if len(w.ops) == 0 {
		return w.leaves(sess, heldIn, prev, d, out)
	}
	hold := e.persist.mustHold(sess, dir, w.before)
	if mayMark && e.async.guard != nil && !hold && !e.async.guard.busy() {
		d, out = w.guarded(tag, sess, dir, s, d, out, now)
		return w.leaves(sess, heldIn, prev, d, out)
	}
	if hold && mayMark && e.async.guard != nil && e.async.inPath && !e.async.guard.busy() {
		return w.repeatFirst(tag, sess, dir, s, orig, seq, d, out, now)
	}
	if hold {
		e.stats.FirstByCommit.Add(1)
	}
	t := &ticket{e: e, tag: tag, sess: sess, dir: dir, d: d, forced: s.forced, before: w.before,
		added: len(sess.Stream[dir].Records()) - w.kept, grants: slices.Clone(w.grants), holds: hold,
		heldIn: heldIn, prev: prev}
	if d == DecisionModified {
		t.out = bytes.Clone(out)
	}
	if hold {
		// The session's first resize: its flows are held in the
		// transaction that opens its holes (settle then only writes its
		// labels), not in one of their own after it.
		w.ops = append(w.ops, holdOps(sess)...)
	}
	err := e.async.c.Submit(t.done, w.ops...)
	w.closesHandedOver()
	if err != nil {
		// The committer stopped: ftpct is stopping. The announcement is
		// refused and its packet dropped: its sender retransmits it, to a
		// restarted ftpct that can still open its hole. Passed on
		// unrewritten, its data connection would fail for sure.
		if d, _ := t.settle(rules.Result{Err: err}, now); d != DecisionDrop {
			e.stats.Dropped.Add(1)
		}
		if heldIn {
			e.persist.setHeld(sess, prev)
		}
		return DecisionDrop, nil
	}
	e.async.wait(sess, dir)
	e.async.c.Hurry() // its packet waits
	e.stats.Deferred.Add(1)
	return DecisionPending, nil
}

// done is called by the committer with the result of t's operations: t's
// packet gets its decision, then the packets that waited behind it theirs.
func (t *ticket) done(r rules.Result) {
	e, a := t.e, t.e.async
	t.sess.Lock()
	defer t.sess.Unlock()
	d, out := t.settle(r, e.now())
	if t.heldIn && d == DecisionDrop {
		e.persist.setHeld(t.sess, t.prev) // its reverse flow is not held
	}
	a.verdict(t.tag, d, out)
	a.decideWaiting(a.w, t.sess, t.dir)
}

// decideWaiting decides, with w, the packets of sess's direction dir that
// waited behind one just decided, in order, until one waits in turn (or a
// first resize is given back: holdpath.go); the flow stops waiting once
// none is left. The session is locked.
func (a *deferrer) decideWaiting(w *Worker, sess *conntrack.Session, dir conntrack.Dir) {
	k := flowID{sess.ID, dir}
	for {
		a.mu.Lock()
		f, ok := a.flows[k]
		if !ok || f.rep != nil {
			a.mu.Unlock()
			return
		}
		if len(f.queued) == 0 {
			delete(a.flows, k)
			a.n.Add(-1)
			a.mu.Unlock()
			return
		}
		q := f.queued[0]
		f.queued[0] = queued{}
		f.queued = f.queued[1:]
		a.mu.Unlock()
		d, out := w.again(q.tag, sess, dir, q.pkt, q.held)
		if d == DecisionPending {
			return // it waits in turn, the rest behind it
		}
		a.verdict(q.tag, d, out)
	}
}

// again handles a packet that waited behind another of its flow; the
// session is locked. held: it was queued with the hold mark, which its
// deferred verdict keeps (nfq.Queue.Verdict sets no mark).
func (w *Worker) again(tag uint64, sess *conntrack.Session, dir conntrack.Dir, pkt []byte, held bool) (Decision, []byte) {
	var s segment
	if err := rewrite.Decode(pkt, &s.p); err != nil {
		return DecisionAccept, nil // not reached: it was decoded before
	}
	s.in, s.payload = pkt, s.p.Payload(pkt)
	// Its decision is given by the committer's goroutine, which cannot
	// mark it: no guard.
	return w.locked(tag, sess, dir, &s, w.e.now(), false, held)
}

// settle decides t's packet once its operations are committed (or not).
// The session is locked.
func (t *ticket) settle(r rules.Result, now time.Time) (Decision, []byte) {
	e, sess := t.e, t.sess
	if r.CloseErr != nil {
		e.stats.Errors.Add(1)
		if e.errLim.Allow(now) {
			e.log.Error("close hole", "err", r.CloseErr)
		}
	}
	if r.Err == nil {
		if t.holds {
			e.persist.held(sess)
		}
		for _, g := range t.grants {
			if g.created {
				e.created(sess, g.x, now)
			}
		}
		if t.d != DecisionModified || e.persist.after(sess, t.dir, t.before, now) { // before the verdict
			return t.d, t.out
		}
		// A resize whose session could not be held is not sent: its bare
		// ACKs would bypass the queue unmapped. The holes stay (unused,
		// they expire).
		e.stats.Errors.Add(1)
		if e.errLim.Allow(now) {
			e.log.Warn("rewrite failed", "session", sess.ID, "err", errNotHeld)
		}
		return t.unsent()
	}
	e.stats.Errors.Add(1)
	if e.errLim.Allow(now) {
		e.log.Error("open hole", "err", r.Err)
	}
	for _, g := range t.grants {
		e.exps.Remove(g.x)
		e.refuse(sess, g.m, ReasonRules, now)
	}
	return t.unsent()
}

// unsent forgets the rewrites of t's packet, which are not sent, and
// decides the packet: as it came, or dropped when the original no longer
// fits the stream. The session is locked.
func (t *ticket) unsent() (Decision, []byte) {
	e, sess := t.e, t.sess
	// None came after: its flow's later packets wait unread.
	h := &sess.Stream[t.dir]
	if n := len(h.Records()) - t.added; n >= 0 {
		h.Truncate(n)
	}
	if t.d != DecisionModified {
		return t.d, nil
	}
	e.stats.Modified.Add(^uint64(0)) // counted by send
	if t.forced {
		// The original would not fit the stream as already sent.
		e.stats.Dropped.Add(1)
		if e.log.Enabled(context.Background(), slog.LevelDebug) {
			e.log.Debug("segment dropped", "session", sess.ID, "from", t.dir.String(), "why", "its rewrite is not sent")
		}
		return DecisionDrop, nil
	}
	return DecisionAccept, nil
}

// closesHandedOver tells the expectation table that the closes of evicted
// holes in w.ops were handed to the committer (or never will be): their
// keys can be given again, to opens that are now committed after them.
func (w *Worker) closesHandedOver() {
	for _, op := range w.ops {
		if op.Kind == rules.OpClose {
			w.e.exps.Closed(expect.MakeKey(op.Hole.Peer, op.Hole.Addr, op.Hole.Port))
		}
	}
}

// closeWait closes h as closeHole does and returns once it is closed, with
// the error. Through the committer, so that it is committed after the open
// of h that may still be pending there.
func (e *Engine) closeWait(h rules.Hole) error {
	defer e.exps.Closed(expect.MakeKey(h.Peer, h.Addr, h.Port))
	if a := e.async; a != nil {
		done := make(chan error, 1)
		if a.c.Submit(func(r rules.Result) { done <- r.CloseErr }, rules.Op{Kind: rules.OpClose, Hole: h}) == nil {
			a.c.Hurry() // the operator waits
			return <-done
		}
	}
	return e.holes.Close(h)
}

// closeHole closes h: through the committer when holes are deferred, else
// inline. Failures are counted. Its expectation left the table by a method
// that keeps its key from other expectations until the close is handed
// over (expect.Table.Closed): then any open of the key is committed after
// this close.
func (e *Engine) closeHole(h rules.Hole) {
	defer e.exps.Closed(expect.MakeKey(h.Peer, h.Addr, h.Port))
	if a := e.async; a != nil {
		err := a.c.Submit(func(r rules.Result) {
			if r.CloseErr != nil {
				e.stats.Errors.Add(1)
				if now := e.now(); e.errLim.Allow(now) {
					e.log.Error("close hole", "err", r.CloseErr)
				}
			}
		}, rules.Op{Kind: rules.OpClose, Hole: h})
		if err == nil {
			return
		}
	}
	if err := e.holes.Close(h); err != nil {
		e.stats.Errors.Add(1)
		if now := e.now(); e.errLim.Allow(now) {
			e.log.Error("close hole", "err", err)
		}
	}
}
