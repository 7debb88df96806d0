package engine

import (
	"context"
	"log/slog"
	"time"

	"github.com/ftpct/ftpct/conntrack"
	"github.com/ftpct/ftpct/expect"
	"github.com/ftpct/ftpct/ftpparse"
	"github.com/ftpct/ftpct/rewrite"
	"github.com/ftpct/ftpct/rules"
	"github.com/ftpct/ftpct/seqnum"
	"github.com/ftpct/ftpct/stream"
)

// minMTU is the smallest MTU of an IPv6 path (RFC 8200); IPv4 paths with a
// smaller one are rare enough to not hold lines for.
const minMTU = 1280

// Worker handles packets for one queue reader. Not safe for concurrent use.
type Worker struct {
	e       *Engine
	out     []byte
	join    []byte // a segment with held bytes put back in front
	trim    []byte // a segment without the line beginning it holds back
	splices []rewrite.Splice
	repl    []byte
	orig    []byte // an argument's original text, made again
	cut     []byte // the payload of a resent segment completed (complete)
	whole   []byte // that segment
	evict   []expect.Expectation
	ops     []rules.Op         // hole operations of the packet, to commit before its verdict
	grants  []pending          // the announcements they are for
	txt     ftpText            // the FTP layer's text of the current session's rewrites
	text    stream.Text        // &txt, as the normaliser asks for it
	kept    int                // records of the packet's direction before it
	marked  bool               // the packet leaves with the guard's mark (Marked)
	hold    bool               // the packet leaves with the hold mark (Held)
	aux     *Worker            // handles the packets that waited behind a repeated one (holdpath.go)
	after   *conntrack.Session // its flow's waiting packets are decided after its verdict (Decided)
	afterD  conntrack.Dir
	before  stream.Summary // its Snapshot before it, for persistence
}

// NewWorker returns a worker with its own buffers.
func (e *Engine) NewWorker() *Worker {
	w := &Worker{
		e:       e,
		out:     make([]byte, 0, 65536+256),
		join:    make([]byte, 0, 16384),
		trim:    make([]byte, 0, 16384),
		splices: make([]rewrite.Splice, 0, 16),
		repl:    make([]byte, 0, (stream.MaxRecords+1)*ftpparse.MaxArgLen),
		orig:    make([]byte, 0, ftpparse.MaxArgLen),
		cut:     make([]byte, 0, 16384),
		whole:   make([]byte, 0, 16384),
		evict:   make([]expect.Expectation, 0, 4),
		ops:     make([]rules.Op, 0, 8),
		grants:  make([]pending, 0, 4),
	}
	w.text = &w.txt
	return w
}

// Handle decides what to do with one packet (an IP datagram). With
// DecisionModified the returned slice holds the packet to send instead.
//
// The packet meets the layers in turn: decode; the session (learned from
// the kernel's conntrack entry); the stream normaliser (acknowledgements,
// completed resends, held bytes, gaps, replays); the FTP layer for the new
// bytes (lines, announcements), which asks the policy for each announcement;
// then the one place that sends (send) or drops (drop).
func (w *Worker) Handle(pkt []byte) (Decision, []byte) { return w.HandleID(0, pkt) }

// HandleID is Handle for a queued packet the caller names with tag (its
// packet id, and queue). With hole commits deferred (Engine.Defer) it may
// return DecisionPending: the packet's decision is given later, with tag, to
// the engine's VerdictFunc (see deferred.go).
func (w *Worker) HandleID(tag uint64, pkt []byte) (Decision, []byte) {
	return w.HandleMarked(tag, pkt, false)
}

// HandleMarked is HandleID for a packet that was queued with the hold mark
// when held is true (Engine.HoldInPath): the divert chains held its flow
// before they queued it again. See holdpath.go.
func (w *Worker) HandleMarked(tag uint64, pkt []byte, held bool) (Decision, []byte) {
	w.Decided() // if the caller did not
	e := w.e
	e.stats.Packets.Add(1)
	w.marked, w.hold = false, false
	var s segment
	if err := rewrite.Decode(pkt, &s.p); err != nil {
		e.stats.NotTCP.Add(1)
		return DecisionAccept, nil
	}
	if w.guardSYN(tag, &s.p) {
		return DecisionPending, nil
	}
	s.in, s.payload = pkt, s.p.Payload(pkt)
	now := e.now()
	sess, dir, ok := w.session(&s, now)
	if !ok {
		return DecisionAccept, nil
	}
	sess.Lock()
	defer sess.Unlock()
	if d, out, ok := w.repeated(tag, sess, dir, &s, held, now); ok {
		return d, out
	}
	if e.async.behind(sess, dir, tag, pkt, held) {
		e.stats.Deferred.Add(1)
		return DecisionPending, nil
	}
	return w.locked(tag, sess, dir, &s, now, true, held)
}

// decide runs the layers on segment s of the locked session sess.
func (w *Worker) decide(sess *conntrack.Session, dir conntrack.Dir, s *segment, now time.Time) (Decision, []byte) {
	e := w.e
	cfg := e.policy()
	sess.Touch(now)
	if s.p.Flags&(rewrite.FlagFIN|rewrite.FlagRST) != 0 {
		sess.Closing = true
	}
	w.acknowledged(sess, dir, &s.p, now)
	w.begin(sess, dir)
	// limit: the most payload bytes to send in one segment when held bytes
	// are put in front of the sender's (see read): as many as the sender
	// sent, or more while the packet stays within the smallest MTU IPv6
	// guarantees (so a short split command is sent whole with what follows).
	limit := max(len(s.payload), minMTU-s.p.PayloadOff)

	o := w.normalise(sess, dir, s, limit, cfg, now)
	switch o.act {
	case actDrop:
		return w.drop(sess, dir, &s.p, o.why)
	case actTrim:
		return w.finish(sess, dir, s, o.seq, o.head, now)
	case actSend:
		if o.why != "" && e.log.Enabled(context.Background(), slog.LevelDebug) {
			h := &sess.Stream[dir]
			e.log.Debug(o.why, "session", sess.ID, "from", dir.String(),
				"seq", uint32(s.p.Seq), "len", len(s.payload), "next", uint32(h.Next), "replays", len(w.splices))
		}
		return w.send(sess, dir, s, now)
	}
	if trimAt := w.read(sess, dir, &s.p, s.payload, o.off, limit, cfg, now); trimAt >= 0 {
		return w.finish(sess, dir, s, s.p.Seq, s.payload[:trimAt], now)
	}
	return w.send(sess, dir, s, now)
}

// begin readies the worker for a packet of sess's direction dir.
func (w *Worker) begin(sess *conntrack.Session, dir conntrack.Dir) {
	w.splices = w.splices[:0]
	w.repl = w.repl[:0]
	w.txt = ftpText{own: sess.Tuple(dir).Src, seenAs: sess.SeenAs(dir)}
	w.kept = len(sess.Stream[dir].Records())
	if w.e.persist.enabled() {
		w.before = sess.Stream[dir].Snapshot()
	}
}

// splice adds a splice to w.splices, keeping them sorted by offset.
func (w *Worker) splice(sp rewrite.Splice) {
	w.splices = append(w.splices, sp)
	for i := len(w.splices) - 1; i > 0 && w.splices[i].Off < w.splices[i-1].Off; i-- {
		w.splices[i], w.splices[i-1] = w.splices[i-1], w.splices[i]
	}
}

// finish sends the segment with sequence number seq and payload head instead
// of its own (the rest are bytes the normaliser holds back).
func (w *Worker) finish(sess *conntrack.Session, dir conntrack.Dir, s *segment, seq seqnum.Value, head []byte, now time.Time) (Decision, []byte) {
	var q rewrite.Packet
	t, err := rewrite.Resegment(w.trim[:0], s.in, &s.p, seq, head, nil, &q)
	if err != nil {
		w.e.stats.Errors.Add(1)
		return w.drop(sess, dir, &s.p, err.Error())
	}
	w.trim = t[:0]
	s.set(t, q)
	return w.send(sess, dir, s, now)
}

// send applies w.splices and the sequence mapping to the segment and returns
// the decision: one of the two places a packet leaves (drop is the other).
func (w *Worker) send(sess *conntrack.Session, dir conntrack.Dir, s *segment, now time.Time) (Decision, []byte) {
	e := w.e
	h := &sess.Stream[dir]
	out, changed, err := rewrite.Rewrite(w.out[:0], s.in, &s.p, w.splices, h, &sess.Stream[dir.Other()])
	if err == nil && changed && len(w.ops) == 0 && !e.persist.after(sess, dir, w.before, now) { // before the verdict
		err = errNotHeld
	} // with holes to commit: once they are (deferred.go)
	if err != nil {
		// The rewrites of this packet were not sent: forget them.
		h.Truncate(w.kept)
		e.stats.Errors.Add(1)
		if e.errLim.Allow(now) {
			e.log.Warn("rewrite failed", "session", sess.ID, "err", err)
		}
		if s.forced {
			// The original would not fit the stream as already sent.
			return w.drop(sess, dir, &s.p, err.Error())
		}
		return DecisionAccept, nil
	}
	if !changed {
		if s.forced {
			e.stats.Modified.Add(1)
			return DecisionModified, s.in
		}
		return DecisionAccept, nil
	}
	w.out = out[:0]
	e.stats.Modified.Add(1)
	return DecisionModified, out
}

// drop counts a dropped segment of sess's direction dir and logs why at
// debug level (the sender retransmits it).
func (w *Worker) drop(sess *conntrack.Session, dir conntrack.Dir, p *rewrite.Packet, why string) (Decision, []byte) {
	e := w.e
	e.stats.Dropped.Add(1)
	if e.log.Enabled(context.Background(), slog.LevelDebug) {
		h := &sess.Stream[dir]
		e.log.Debug("segment dropped", "session", sess.ID, "from", dir.String(), "why", why,
			"seq", uint32(p.Seq), "len", p.Len-p.PayloadOff, "next", uint32(h.Next), "held", len(h.Held()), "acked", uint32(h.Acked))
	}
	return DecisionDrop, nil
}

// session finds the session of the packet, or learns it from the kernel's
// conntrack entry when the packet carries payload (handshakes and bare ACKs
// before any data need nothing).
func (w *Worker) session(s *segment, now time.Time) (*conntrack.Session, conntrack.Dir, bool) {
	e := w.e
	p := &s.p
	key := conntrack.MakeKey(p.Src, p.Dst, p.SrcPort, p.DstPort)
	opening := p.Flags&(rewrite.FlagSYN|rewrite.FlagACK) == rewrite.FlagSYN
	if sess, dir, ok := e.sessions.Lookup(key); ok {
		if !opening || !closed(sess) {
			// A SYN on a connection that did not end is not a new
			// connection (the kernel ignores it too): keep the session.
			return sess, dir, true
		}
		// A new connection reuses the addresses and ports of one that
		// ended (the kernel replaces its conntrack entry on the SYN): the
		// old stream state and holes must not meet the new stream.
		e.retire(sess)
	} else if opening {
		e.persist.unforeign(key)
	}
	if len(s.payload) == 0 {
		return nil, 0, false
	}
	t := conntrack.Tuple{Src: p.Src, Dst: p.Dst, SrcPort: p.SrcPort, DstPort: p.DstPort}
	if e.persist.isForeign(t.Key()) {
		return nil, 0, false
	}
	b, err := e.kernel.Lookup(t)
	if err != nil {
		e.stats.NoConntrack.Add(1)
		return nil, 0, false
	}
	st, err := e.persist.decode(b, now)
	if err != nil {
		return nil, 0, false
	}
	sess, created, err := e.sessions.AddLocked(b, now)
	if err != nil {
		e.stats.SessionsFull.Add(1)
		if e.errLim.Allow(now) {
			e.log.Warn("control connection not tracked", "conn", t.String(), "err", err)
		}
		return nil, 0, false
	}
	if created {
		// Restored before the session is unlocked: a worker handling the
		// other direction (another queue) may have found it already.
		e.stats.Sessions.Add(1)
		e.persist.restore(sess, st)
		sess.Unlock()
	}
	_, dir, ok := e.sessions.Lookup(t.Key())
	if !ok {
		// The packet's tuple is neither of the kernel's: should not happen.
		e.stats.NoConntrack.Add(1)
		return nil, 0, false
	}
	if created {
		if e.log.Enabled(context.Background(), slog.LevelDebug) {
			e.log.Debug("session learned", "session", sess.ID, "orig", b.Orig.String(), "reply", b.Reply.String(),
				"from", dir.String(), "seq", uint32(p.Seq))
		}
	}
	return sess, dir, true
}

// closed reports whether a FIN or RST of sess was seen.
func closed(sess *conntrack.Session) bool {
	sess.Lock()
	defer sess.Unlock()
	return sess.Closing
}
