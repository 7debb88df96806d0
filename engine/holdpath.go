package engine

import (
	"bytes"
	"slices"
	"time"

	"github.com/ftpct/ftpct/conntrack"
	"github.com/ftpct/ftpct/rules"
	"github.com/ftpct/ftpct/seqnum"
)

// A session's first resize without the commit wait. A resized stream must
// be held (the rules' hold set: both flows of the control connection queued
// without bypass, bare ACKs too) before a resized packet leaves, and its
// state (ct labels) written before the verdict: that order makes a crash at
// any instant safe (README "Restarts"). With Engine.HoldInPath, the kernel
// holds the flows in the packet path instead of an nftables commit:
//
//  1. First pass: the worker decides the packet as always (its holes are
//     submitted as the guard submits them, guarded), but gives it back
//     unmodified, DecisionRepeat: the queue's NF_REPEAT verdict with the
//     hold mark. The kernel runs the divert chain that queued it again; its
//     hold-mark rule adds the packet's own flow to @hold, and the hold rule
//     queues it again, the mark kept. The decision is kept with the flow
//     (waiting.rep), which waits: its later packets queue behind it.
//  2. Second pass: the same packet, queued with the hold mark
//     (HandleMarked, held): its own flow is held. The session is recorded
//     held, its labels are written (persist.after, with no Hold), and the
//     kept decision is given, the packet leaving with the hold mark (Held)
//     and, for its announcements, the guard's mark (Marked). At its last
//     hook the guard chains add its reverse flow to @hold and clear the
//     bit, before it leaves. The packets that waited behind it are
//     decided right after its verdict is in line to be written
//     (Worker.Decided), so that they leave after it, in order.
//
// A crash before the second pass loses the queued packet (no bypass) and
// leaves at most its own flow held and no labels: its retransmission is
// handled afresh by the next ftpct. One after the labels write is today's
// case (restored, held). A retransmission of the packet (same sequence
// number, unmarked) that comes while the decision is kept is given back
// the same way, so that a lost repeat cannot stall the flow; whichever
// comes back first settles the kept decision, and if its bytes differ
// from the packet's (or no decision is kept: the second pass after a
// restart) it is decided afresh, held. A packet decided by the committer's
// goroutine (that waited behind another of its flow) cannot be given back:
// it waits for the commit that holds its flows, as without HoldInPath.

// HoldInPath makes a session's first resize hold its flows in the packet
// path (holdpath.go): the caller gives DecisionRepeat as the queue's repeat
// verdict with the hold mark, tells HandleMarked which packets came with
// it, and keeps it on those that Held reports. Call it after Guard; it
// needs the rules' hold-mark rules.
func (e *Engine) HoldInPath() {
	if e.async == nil || e.async.guard == nil {
		panic("engine: HoldInPath without Guard")
	}
	e.async.inPath = true
}

// Held reports whether the packet of the last HandleMarked must leave with
// the hold mark: it came with it and leaves, and its reverse flow is to be
// held on its way out.
func (w *Worker) Held() bool { return w.hold }

// repeat is a session's first resize given back to the kernel, whose
// second pass is awaited.
type repeat struct {
	t   *ticket      // its decision; its holes are submitted (guarded)
	seq seqnum.Value // its sequence number
	in  []byte       // the packet as it came
}

// repeatFirst gives the packet of segment s (orig, with sequence number
// seq, as it came: s may be what deciding made of it), its session's first
// resize decided d, back to the kernel to hold its flow: its holes, in
// w.ops, are submitted as guarded does, and its decision is kept for its
// second pass. The session is locked.
func (w *Worker) repeatFirst(tag uint64, sess *conntrack.Session, dir conntrack.Dir, s *segment, orig []byte, seq seqnum.Value, d Decision, out []byte, now time.Time) (Decision, []byte) {
	e := w.e
	a := e.async
	t := &ticket{e: e, tag: tag, sess: sess, dir: dir, d: d, forced: s.forced, before: w.before,
		added: len(sess.Stream[dir].Records()) - w.kept, grants: slices.Clone(w.grants)}
	if d == DecisionModified {
		t.out = bytes.Clone(out)
	}
	t.keys = a.guard.submit(w.ops)
	err := a.c.Submit(t.committed, w.ops...)
	w.closesHandedOver()
	if err != nil {
		// The committer stopped: as guarded.
		a.release(a.guard.done(t.keys))
		if d, _ := t.settle(rules.Result{Err: err}, now); d != DecisionDrop {
			e.stats.Dropped.Add(1)
		}
		return DecisionDrop, nil
	}
	a.wait(sess, dir)
	a.mu.Lock()
	a.flows[flowID{sess.ID, dir}].rep = &repeat{t: t, seq: seq, in: bytes.Clone(orig)}
	a.mu.Unlock()
	return DecisionRepeat, nil
}

// repeated handles segment s of the locked session sess when its flow keeps
// a first resize's decision for the segment at its sequence number: an
// unmarked one (a retransmission) is given back in turn; one with the hold
// mark (held) settles the decision. ok is false for any other packet.
func (w *Worker) repeated(tag uint64, sess *conntrack.Session, dir conntrack.Dir, s *segment, held bool, now time.Time) (Decision, []byte, bool) {
	a := w.e.async
	if a == nil || !a.inPath || a.n.Load() == 0 {
		return 0, nil, false
	}
	a.mu.Lock()
	f := a.flows[flowID{sess.ID, dir}]
	if f == nil || f.rep == nil || f.rep.seq != s.p.Seq {
		a.mu.Unlock()
		return 0, nil, false
	}
	if !held {
		a.mu.Unlock()
		return DecisionRepeat, nil, true
	}
	rep := f.rep
	f.rep = nil
	a.mu.Unlock()
	d, out, prev := w.second(rep, sess, dir, now)
	if !bytes.Equal(s.in, rep.in) {
		// Another packet with its sequence number (a retransmission
		// given back in turn): the kept decision is settled for the
		// stream, and this packet, held, is decided afresh (a resend of
		// what the stream already has), still with the guard's mark
		// (the original may never leave).
		w.e.persist.setHeld(sess, prev)
		w.hold = false
		d, out = w.locked(tag, sess, dir, s, now, true, true)
	}
	// The packets that waited behind it leave after it (Decided): its
	// verdict is not written yet.
	w.after, w.afterD = sess, dir
	return d, out, true
}

// Decided tells w that the decision of the packet it handled last is in
// line to be written to the kernel (the queue's Config.Decided): the
// packets of its flow that waited behind a first resize settled by that
// packet (repeated) get their decisions now, through the engine's
// VerdictFunc, so they follow it and a flow is never reordered.
// HandleMarked calls it first if the caller did not.
func (w *Worker) Decided() {
	sess, dir := w.after, w.afterD
	if sess == nil {
		return
	}
	w.after = nil
	sess.Lock()
	defer sess.Unlock()
	w.drain(sess, dir)
}

// second settles the kept decision of rep at its second pass: the flows are
// recorded held (the own one is, the reverse one will be on the packet's way
// out), the labels written, and the decision returned, marked. The session
// is locked.
// It returns how the session was recorded before (setHeld).
func (w *Worker) second(rep *repeat, sess *conntrack.Session, dir conntrack.Dir, now time.Time) (Decision, []byte, bool) {
	e, t := w.e, rep.t
	prev := e.persist.setHeld(sess, true)
	e.stats.FirstInPath.Add(1)
	d, out := t.d, t.out
	if d == DecisionModified && !e.persist.after(sess, dir, t.before, now) { // before the verdict
		// Not reached: the session is held. The holes stay (unused,
		// they expire).
		e.stats.Errors.Add(1)
		if e.errLim.Allow(now) {
			e.log.Warn("rewrite failed", "session", sess.ID, "err", errNotHeld)
		}
		d, out = t.unsent()
	}
	if d == DecisionAccept || d == DecisionModified {
		w.marked = true
		e.stats.Guarded.Add(1)
	}
	d, out = w.leaves(sess, true, prev, d, out)
	return d, out, prev
}

// leaves notes the decision d of a packet that came with the hold mark
// (heldIn): leaving, it keeps the mark, and its reverse flow is held on its
// way out; dropped, its session's record goes back to prev (only its own
// flow is held). Pending, its deferred verdict keeps the mark as queued.
func (w *Worker) leaves(sess *conntrack.Session, heldIn, prev bool, d Decision, out []byte) (Decision, []byte) {
	if !heldIn {
		return d, out
	}
	switch d {
	case DecisionAccept, DecisionModified:
		w.hold = true
	case DecisionDrop:
		w.e.persist.setHeld(sess, prev)
	}
	return d, out
}

// drain decides the packets that waited behind a settled first resize of
// sess's direction dir, with w.aux (w's buffers hold the resize's
// decision). The session is locked.
func (w *Worker) drain(sess *conntrack.Session, dir conntrack.Dir) {
	if w.aux == nil {
		w.aux = w.e.NewWorker()
	}
	w.e.async.decideWaiting(w.aux, sess, dir)
}

// forgetRepeats drops the kept first resizes of session id, which ended,
// and the packets that waited behind them: their verdict is a drop (the
// connection is gone, or a new one reuses its addresses and ports).
func (a *deferrer) forgetRepeats(id uint64) {
	if a == nil || !a.inPath || a.n.Load() == 0 {
		return
	}
	var drop []uint64
	a.mu.Lock()
	for _, dir := range []conntrack.Dir{conntrack.DirOrig, conntrack.DirReply} {
		k := flowID{id, dir}
		f := a.flows[k]
		if f == nil || f.rep == nil {
			continue
		}
		for _, q := range f.queued {
			drop = append(drop, q.tag)
		}
		delete(a.flows, k)
		a.n.Add(-1)
	}
	a.mu.Unlock()
	for _, tag := range drop {
		a.verdict(tag, DecisionDrop, nil)
	}
}
