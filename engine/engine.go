package engine

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/ftpct/ftpct/conntrack"
	"github.com/ftpct/ftpct/ftpparse"
	"github.com/ftpct/ftpct/rewrite"
	"github.com/ftpct/ftpct/rules"
	"github.com/ftpct/ftpct/seqnum"
)

// Kernel finds a control connection's NAT binding (conntrack.Kernel).
type Kernel interface {
	Lookup(conntrack.Tuple) (conntrack.Binding, error)
}

// Holes opens and closes pinholes (rules.Manager).
type Holes interface {
	Open(rules.Hole) error
	Close(rules.Hole) error
}

// Config is the engine's policy.
type Config struct {
	// Timeout is how long an expectation waits for its data connection.
	Timeout time.Duration
	// PerSession is the most pending expectations per control connection.
	PerSession int
	// MaxExpect is the most pending expectations altogether.
	MaxExpect int
	// MaxSessions is the most control connections tracked.
	MaxSessions int
	// AllowLowPorts allows holes to privileged ports (< 1024).
	AllowLowPorts bool
	// MaxLine is the longest line beginning held back while waiting for the
	// rest of a possible announcement; longer ones pass unparsed.
	MaxLine int
	// HoldPatience: when the sender resends held bytes from their start
	// (its retransmission timer fired: it will send nothing new until they
	// are acknowledged) after they were held this long, the line is given
	// up and passed unparsed so that the session goes on.
	HoldPatience time.Duration
	// IdleCheck: sessions idle this long are checked against the kernel's
	// table and forgotten when the kernel no longer tracks them.
	IdleCheck time.Duration
	// Logger receives rate-limited events; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig is the kernel helper's behaviour with ftpct's safer defaults.
func DefaultConfig() Config {
	return Config{Timeout: 5 * time.Minute, PerSession: 1, MaxExpect: 4096, MaxSessions: 65536, MaxLine: 4096, HoldPatience: 150 * time.Millisecond, IdleCheck: time.Minute}
}

// Engine holds the state shared by all Workers.
type Engine struct {
	// pol is the policy (Config), replaced whole by Reload; the packet
	// path reads it through policy(), without a lock.
	pol      atomic.Pointer[Config]
	sessions *conntrack.Table
	exps     *conntrack.ExpectTable
	kernel   Kernel
	holes    Holes
	log      *slog.Logger
	logLim   *limiter
	stats    Stats
	obs      observer // audit log and watchers (audit.go)
	persist  *persister
	now      func() time.Time
}

// New returns an engine.
func New(cfg Config, kernel Kernel, holes Holes) *Engine {
	d := DefaultConfig()
	if cfg.Timeout <= 0 {
		cfg.Timeout = d.Timeout
	}
	if cfg.PerSession <= 0 {
		cfg.PerSession = d.PerSession
	}
	if cfg.MaxExpect <= 0 {
		cfg.MaxExpect = d.MaxExpect
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = d.MaxSessions
	}
	if cfg.IdleCheck <= 0 {
		cfg.IdleCheck = d.IdleCheck
	}
	if cfg.MaxLine <= 0 {
		cfg.MaxLine = d.MaxLine
	}
	if cfg.HoldPatience <= 0 {
		cfg.HoldPatience = d.HoldPatience
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		sessions: conntrack.NewTable(cfg.MaxSessions),
		exps:     conntrack.NewExpectTable(conntrack.ExpectLimits{PerSession: cfg.PerSession, Total: cfg.MaxExpect, Timeout: cfg.Timeout}),
		kernel:   kernel,
		holes:    holes,
		log:      log,
		logLim:   newLimiter(20, 100),
		now:      time.Now,
	}
	e.persist = newPersister(log, &e.stats)
	e.pol.Store(&cfg)
	return e
}

// Expectations lists the pending expectations.
func (e *Engine) Expectations() []conntrack.Expectation { return e.exps.List() }

// Sessions lists the tracked control connections.
func (e *Engine) Sessions() []*conntrack.Session { return e.sessions.Sessions(nil) }

// hole returns the pinhole of expectation x. Its timeout is what is left of
// x's lifetime, at least the millisecond the kernel counts in (rules rounds up
// to it): a hole about to expire, or just expired, can still be named to close.
func (e *Engine) hole(x conntrack.Expectation) rules.Hole {
	return rules.Hole{Peer: x.Peer, Addr: x.Addr, Port: x.Port, To: x.To, Timeout: max(x.Expires.Sub(e.now()), time.Millisecond)}
}

// DataConnection is called for each new connection the kernel let in
// through one of our holes (conntrack event with our mark). It marks the
// matching expectation used.
func (e *Engine) DataConnection(b conntrack.Binding) {
	k := conntrack.MakeExpectKey(b.Orig.Src, b.Orig.Dst, b.Orig.DstPort)
	x, ok := e.exps.Take(k)
	if !ok {
		return
	}
	e.stats.ExpectUsed.Add(1)
	e.eventUsed(x, b, e.now())
	// The set element is gone (one-shot); drop the DNAT mapping too.
	if x.To.IsValid() {
		if err := e.holes.Close(e.hole(x)); err != nil {
			e.stats.Errors.Add(1)
		}
	}
	if e.logLim.Allow(e.now()) {
		e.log.Info("data connection", "session", x.Session, "kind", x.Kind.String(),
			"from", netip.AddrPortFrom(b.Orig.Src, b.Orig.SrcPort).String(),
			"to", netip.AddrPortFrom(b.Orig.Dst, b.Orig.DstPort).String(),
			"translated_to", addrPortString(x.To))
	}
}

func addrPortString(a netip.AddrPort) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// Run does the engine's housekeeping until ctx is cancelled: it expires
// expectations and forgets control connections the kernel no longer tracks.
func (e *Engine) Run(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastGC := e.now()
	var expired []conntrack.Expectation
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		now := e.now()
		expired = e.exps.Expire(now, expired[:0])
		e.stats.ExpectExpired.Add(uint64(len(expired)))
		e.eventsExpired(expired, now)
		if now.Sub(lastGC) >= e.policy().IdleCheck/4 {
			lastGC = now
			e.collect(now)
		}
	}
}

// collect forgets idle sessions the kernel no longer tracks.
func (e *Engine) collect(now time.Time) {
	var gone []conntrack.Expectation
	for _, s := range e.sessions.Sessions(nil) {
		s.Lock()
		idle, limit := now.Sub(s.LastSeen), e.policy().IdleCheck
		if s.Closing {
			limit /= 6 // a FIN or RST was seen: the kernel forgets it soon
		}
		s.Unlock()
		if idle < limit {
			continue
		}
		if _, err := e.kernel.Lookup(s.Binding.Orig); !errors.Is(err, conntrack.ErrNoEntry) {
			continue
		}
		e.sessions.Remove(s)
		e.persist.forget(s)
		gone = e.exps.RemoveSession(s.ID, gone[:0])
		for _, x := range gone {
			_ = e.holes.Close(e.hole(x))
		}
	}
	e.persist.collect(e.kernel)
}

// minMTU is the smallest MTU of an IPv6 path (RFC 8200); IPv4 paths with a
// smaller one are rare enough to not hold lines for.
const minMTU = 1280

// Worker handles packets for one queue reader. Not safe for concurrent use.
type Worker struct {
	e     *Engine
	out   []byte
	join  []byte // a segment with held bytes put back in front
	trim  []byte // a segment without the line beginning it holds back
	edits []rewrite.Splice
	repl  []byte
	orig  []byte // an argument's original text, made again (Edit.AppendOrig)
	cut   []byte // the payload of a resent segment completed (complete)
	whole []byte // that segment
	evict []conntrack.Expectation
}

// NewWorker returns a worker with its own buffers.
func (e *Engine) NewWorker() *Worker {
	return &Worker{
		e:     e,
		out:   make([]byte, 0, 65536+256),
		join:  make([]byte, 0, 16384),
		trim:  make([]byte, 0, 16384),
		edits: make([]rewrite.Splice, 0, 16),
		repl:  make([]byte, 0, (conntrack.MaxInFlight+1)*ftpparse.MaxArgLen),
		orig:  make([]byte, 0, ftpparse.MaxArgLen),
		cut:   make([]byte, 0, 16384),
		whole: make([]byte, 0, 16384),
		evict: make([]conntrack.Expectation, 0, 4),
	}
}

// Handle decides what to do with one packet (an IP datagram). With
// DecisionModified the returned slice holds the packet to send instead.
func (w *Worker) Handle(pkt []byte) (Decision, []byte) {
	e := w.e
	e.stats.Packets.Add(1)
	var p rewrite.Packet
	if err := rewrite.Decode(pkt, &p); err != nil {
		e.stats.NotTCP.Add(1)
		return DecisionAccept, nil
	}
	payload := p.Payload(pkt)
	sess, dir, ok := e.sessions.Lookup(conntrack.MakeKey(p.Src, p.Dst, p.SrcPort, p.DstPort))
	now := e.now()
	if !ok {
		if len(payload) == 0 {
			// Handshake and bare ACKs before any data: nothing to parse or adjust.
			return DecisionAccept, nil
		}
		var err error
		sess, dir, err = w.learn(&p, now)
		if err != nil {
			return DecisionAccept, nil
		}
	}

	sess.Lock()
	defer sess.Unlock()
	sess.LastSeen = now
	if p.Flags&(rewrite.FlagFIN|rewrite.FlagRST) != 0 {
		sess.Closing = true
	}
	if p.Flags&rewrite.FlagACK != 0 {
		// What the peer has received of the other direction no
		// retransmission will carry: forget its rewrites.
		o := &sess.Dir[dir.Other()]
		o.Acknowledge(o.Adj.UnmapAck(p.Ack))
	}
	d := &sess.Dir[dir]
	w.edits = w.edits[:0]
	w.repl = w.repl[:0]
	in := pkt
	// forced: the packet to send is not pkt (held bytes were added or
	// removed), so it is sent even when Rewrite changes nothing more.
	forced := false
	// limit: the most payload bytes to send in one segment when held bytes
	// are put in front of the sender's (see scan): as many as the sender
	// sent, or more while the packet stays within the smallest MTU IPv6
	// guarantees (so a short split command is sent whole with what follows).
	limit := max(len(payload), minMTU-p.PayloadOff)
	if len(payload) > 0 && d.Started && p.Seq.Before(d.Next) {
		if j, q, ok := w.complete(sess, dir, in, &p, payload, limit); ok {
			in, p, payload, forced = j, q, q.Payload(j), true
		}
	}
	if len(payload) > 0 {
		if len(d.Held) > 0 {
			hs := d.HoldStart()
			action := joinHeld(d, p.Seq, p.Seq.Add(int32(len(payload))))
			if (action == joinDrop || action == joinTrim) && !p.Seq.After(hs) && now.Sub(d.HeldSince) >= e.policy().HoldPatience {
				// The sender resends from the held start: it waits for an
				// acknowledgement that only delivering the bytes brings.
				action = joinGiveUp
			}
			switch action {
			case joinBefore:
				if _, why := w.scan(sess, dir, &p, payload, len(payload), now); why != "" {
					return w.drop(sess, dir, &p, why)
				}
				return w.send(sess, dir, in, &p, forced, now)
			case joinGiveUp:
				// Forget the held bytes and read the stream again from
				// this segment. If it completes no line, the sender will
				// not complete it soon either: pass that line unparsed.
				if ftpparse.LineEnd(payload, int(hs.Diff(p.Seq))) < 0 {
					e.stats.HoldAbandoned.Add(1)
					if e.logLim.Allow(now) {
						e.log.Warn("split line not completed before the sender retransmitted it; passed unparsed",
							"session", sess.ID, "from", dir.String(), "held_for", now.Sub(d.HeldSince).String())
					}
				} else {
					action = joinReplace
				}
			case joinDrop:
				if p.Seq.After(d.Next) {
					// A gap: the sender must fill it first.
					e.stats.OutOfOrder.Add(1)
					return w.drop(sess, dir, &p, "gap before a held line")
				}
				// Only bytes already held: send the segment on without
				// them, as an empty segment at the held start (nothing is
				// lost, nothing new is delivered).
				return w.finish(sess, dir, in, &p, hs, nil, now)
			case joinTrim:
				// Resent bytes from before the held ones: send those
				// (replaying rewrites), keep holding the rest.
				if _, why := w.scan(sess, dir, &p, payload, len(payload), now); why != "" {
					return w.drop(sess, dir, &p, why)
				}
				return w.finish(sess, dir, in, &p, p.Seq, payload[:min(int(hs.Diff(p.Seq)), len(payload))], now)
			case joinPrepend:
				var q rewrite.Packet
				j, err := rewrite.Resegment(w.join[:0], in, &p, hs, d.Held[:p.Seq.Diff(hs)], payload, &q)
				if err != nil {
					e.stats.Errors.Add(1)
					return w.drop(sess, dir, &p, err.Error())
				}
				w.join = j[:0]
				in, p, payload, forced = j, q, q.Payload(j), true
			}
			// The held bytes are new again: this segment (or the joined
			// one) carries them from hs on.
			d.Next = hs
			d.Held = d.Held[:0]
			if action == joinGiveUp {
				d.MidLine = true // pass the rest of this line unparsed
			}
		}
		trimAt, why := w.scan(sess, dir, &p, payload, limit, now)
		if why != "" {
			return w.drop(sess, dir, &p, why)
		}
		if trimAt >= 0 {
			return w.finish(sess, dir, in, &p, p.Seq, payload[:trimAt], now)
		}
	}
	return w.send(sess, dir, in, &p, forced, now)
}

// complete makes whole a resent segment that begins or ends inside the
// argument of a kept rewrite. That happens when a rewrite was made in a
// segment ftpct joined (a split line) and the joined packet was lost after
// the gateway: the sender resends its own, smaller pieces, and no piece can
// be rewritten alone. The missing original bytes of the argument are made
// again (Edit.AppendOrig) and put around the segment's, so the rewrite
// replays whole; bytes the receiver gets twice it discards. The result stays
// within limit bytes of payload: when it would not, the segment is cut
// short before a rewrite (the sender resends the rest).
//
// ok is false when the segment cuts no argument, or one whose original text
// cannot be made again; scan then drops it.
func (w *Worker) complete(sess *conntrack.Session, dir conntrack.Dir, in []byte, p *rewrite.Packet, payload []byte, limit int) (out []byte, q rewrite.Packet, ok bool) {
	d := &sess.Dir[dir]
	start := p.Seq
	end := start.Add(int32(len(payload)))
	edits := d.Edits()
	first, last := -1, -1
	for i := range edits {
		r := &edits[i]
		if !r.Pos.Before(end) {
			break
		}
		if r.End().After(start) {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 || (!edits[first].Pos.Before(start) && !edits[last].End().After(end)) {
		return nil, q, false
	}
	// The completed segment is [from, to).
	from, to := start, end
	if r := &edits[first]; r.Pos.Before(start) {
		from = r.Pos
	}
	if r := &edits[last]; r.End().After(end) {
		to = r.End()
	}
	if int(to.Diff(from)) > limit {
		to = from.Add(int32(limit))
		for i := range edits {
			if r := &edits[i]; r.Pos.Before(to) && r.End().After(to) {
				to = r.Pos
			}
		}
	}
	// The bytes added on either side are the original text of the rewrite
	// cut there, made again.
	if (from.Before(start) && !edits[first].Regen) || (to.After(end) && !edits[last].Regen) {
		return nil, q, false
	}
	own := sess.Tuple(dir).Src
	w.cut = w.cut[:0]
	if r := &edits[first]; from.Before(start) {
		w.orig = r.AppendOrig(w.orig[:0], own)
		w.cut = append(w.cut, w.orig[:start.Diff(r.Pos)]...)
	}
	w.cut = append(w.cut, payload[:max(0, min(int(to.Diff(start)), len(payload)))]...)
	if r := &edits[last]; to.After(end) {
		w.orig = r.AppendOrig(w.orig[:0], own)
		w.cut = append(w.cut, w.orig[end.Diff(r.Pos):]...)
	}
	j, err := rewrite.Resegment(w.whole[:0], in, p, from, w.cut, nil, &q)
	if err != nil {
		return nil, q, false
	}
	w.whole = j[:0]
	w.e.stats.ResendsCompleted.Add(1)
	return j, q, true
}

// finish sends the segment in with sequence number seq and payload head
// instead of its own (the rest are bytes the session holds back).
func (w *Worker) finish(sess *conntrack.Session, dir conntrack.Dir, in []byte, p *rewrite.Packet, seq seqnum.Value, head []byte, now time.Time) (Decision, []byte) {
	e := w.e
	var q rewrite.Packet
	t, err := rewrite.Resegment(w.trim[:0], in, p, seq, head, nil, &q)
	if err != nil {
		e.stats.Errors.Add(1)
		return w.drop(sess, dir, p, err.Error())
	}
	w.trim = t[:0]
	return w.send(sess, dir, t, &q, true, now)
}

// send applies w.edits and the sequence adjustments to in and returns the
// verdict. forced: in is not the packet that was queued, so it is sent even
// when nothing else changes.
func (w *Worker) send(sess *conntrack.Session, dir conntrack.Dir, in []byte, p *rewrite.Packet, forced bool, now time.Time) (Decision, []byte) {
	e := w.e
	d := &sess.Dir[dir]
	before, had := newest(&d.Adj)
	out, changed, err := rewrite.Rewrite(w.out[:0], in, p, w.edits, &d.Adj, &sess.Dir[dir.Other()].Adj)
	if err != nil {
		e.stats.Errors.Add(1)
		if e.logLim.Allow(now) {
			e.log.Warn("rewrite failed", "session", sess.ID, "err", err)
		}
		if forced {
			// The original would not fit the stream as already sent.
			return w.drop(sess, dir, p, err.Error())
		}
		return DecisionAccept, nil
	}
	if !changed {
		if forced {
			e.stats.Modified.Add(1)
			return DecisionModified, in
		}
		return DecisionAccept, nil
	}
	w.out = out[:0]
	e.persist.after(sess, dir, before, had, now) // before the verdict
	e.stats.Modified.Add(1)
	return DecisionModified, out
}

// drop counts a dropped segment of sess's direction dir and logs why at
// debug level (the sender retransmits it).
func (w *Worker) drop(sess *conntrack.Session, dir conntrack.Dir, p *rewrite.Packet, why string) (Decision, []byte) {
	e := w.e
	e.stats.Dropped.Add(1)
	if e.log.Enabled(context.Background(), slog.LevelDebug) {
		d := &sess.Dir[dir]
		e.log.Debug("segment dropped", "session", sess.ID, "from", dir.String(), "why", why,
			"seq", uint32(p.Seq), "len", p.Len-p.PayloadOff, "next", uint32(d.Next), "held", len(d.Held), "acked", uint32(d.Acked))
	}
	return DecisionDrop, nil
}

// joinAction says how a segment meets the held beginning of a line.
type joinAction uint8

const (
	// joinDrop: the segment only repeats held bytes, or follows a gap.
	joinDrop joinAction = iota
	// joinBefore: the segment resends only bytes from before the held
	// ones: an ordinary retransmission; the held bytes stay held.
	joinBefore
	// joinTrim: the segment resends bytes from before the held ones and
	// some held ones, nothing new: send the former, keep holding.
	joinTrim
	// joinReplace: the segment itself carries all held bytes (a
	// retransmission from before or at the held start).
	joinReplace
	// joinPrepend: the segment continues the held bytes; send them in front of it.
	joinPrepend
	// joinGiveUp: stop holding; send the segment with the bytes unparsed.
	joinGiveUp
)

// joinHeld decides what to do with a segment [s, e) while d holds bytes.
func joinHeld(d *conntrack.DirState, s, e seqnum.Value) joinAction {
	hs := d.HoldStart()
	switch {
	case s.After(d.Next):
		return joinDrop // a gap: wait for the sender to fill it
	case !e.After(hs):
		return joinBefore
	case !e.After(d.Next) && s.Before(hs):
		return joinTrim
	case !e.After(d.Next):
		return joinDrop // nothing new
	case !s.After(hs):
		return joinReplace
	default:
		return joinPrepend
	}
}

// learn creates the session of a packet from the kernel's conntrack entry.
func (w *Worker) learn(p *rewrite.Packet, now time.Time) (*conntrack.Session, conntrack.Dir, error) {
	e := w.e
	t := conntrack.Tuple{Src: p.Src, Dst: p.Dst, SrcPort: p.SrcPort, DstPort: p.DstPort}
	if e.persist.isForeign(t.Key()) {
		return nil, 0, errForeign
	}
	b, err := e.kernel.Lookup(t)
	if err != nil {
		e.stats.NoConntrack.Add(1)
		return nil, 0, err
	}
	st, err := e.persist.decode(b, now)
	if err != nil {
		return nil, 0, err
	}
	s, err := e.sessions.Add(b, now)
	if err != nil {
		e.stats.SessionsFull.Add(1)
		if e.logLim.Allow(now) {
			e.log.Warn("control connection not tracked", "conn", t.String(), "err", err)
		}
		return nil, 0, err
	}
	_, dir, ok := e.sessions.Lookup(t.Key())
	if !ok {
		// The packet's tuple is neither of the kernel's: should not happen.
		e.stats.NoConntrack.Add(1)
		return nil, 0, conntrack.ErrNoEntry
	}
	if s.Created.Equal(now) {
		e.stats.Sessions.Add(1)
		e.persist.restore(s, st)
		if e.log.Enabled(context.Background(), slog.LevelDebug) {
			e.log.Debug("session learned", "session", s.ID, "orig", b.Orig.String(), "reply", b.Reply.String(),
				"from", dir.String(), "seq", uint32(p.Seq))
		}
	}
	return s, dir, nil
}

// scan replays earlier rewrites on retransmitted bytes and parses the new
// bytes of a segment, filling w.edits. It returns why the segment must be
// dropped (its sender will retransmit it), or "", and trimAt >= 0 when the
// payload from trimAt on begins a possible announcement whose end has not
// arrived: those bytes are now held in the session and must not be sent.
//
// limit is the length of the payload the sender sent (or more, see Handle).
// When held bytes were put in front of it, the payload is longer, and the
// packet could exceed the path MTU the sender sized its segment for. So from the first line start
// after which the payload would run past limit, the bytes are held again
// (carried to the next segment) instead of sent: the packet grows past the
// sender's only when its first line alone does.
func (w *Worker) scan(sess *conntrack.Session, dir conntrack.Dir, p *rewrite.Packet, payload []byte, limit int, now time.Time) (trimAt int, why string) {
	e := w.e
	d := &sess.Dir[dir]
	start := p.Seq
	end := start.Add(int32(len(payload)))
	if !d.Started {
		d.Started = true
		d.Next = start
	}
	if start.After(d.Next) {
		// A gap: an earlier segment was lost. Line boundaries after it are
		// unknown, so let the sender retransmit this one in order.
		e.stats.OutOfOrder.Add(1)
		return -1, "gap"
	}
	// Bytes before d.Next were seen: replay the rewrites made in them that
	// the peer has not acknowledged (bytes it has are discarded by it).
	if start.Before(d.Next) {
		edits := d.Edits()
		for i := range edits {
			r := &edits[i]
			if !r.Pos.Before(end) {
				break // this and the later ones are after the segment
			}
			if !r.End().After(start) {
				continue // before the segment
			}
			if r.Pos.Before(start) || r.End().After(end) {
				// The segment cuts a rewritten argument that complete could
				// not make whole: it cannot be rewritten consistently. The
				// sender will retransmit.
				return -1, "cuts a rewritten argument"
			}
			off := int(r.Pos.Diff(start))
			n := len(w.repl)
			w.repl = r.AppendRepl(w.repl, sess.SeenAs(dir))
			w.insertEdit(rewrite.Splice{Off: off, End: off + int(r.OrigLen), Repl: w.repl[n:]})
			e.stats.Replays.Add(1)
		}
	}
	if !end.After(d.Next) {
		if e.log.Enabled(context.Background(), slog.LevelDebug) {
			e.log.Debug("retransmission", "session", sess.ID, "from", dir.String(),
				"seq", uint32(start), "end", uint32(end), "next", uint32(d.Next), "replays", len(w.edits))
		}
		return -1, ""
	}
	off := int(d.Next.Diff(start))
	d.Next = end
	for off < len(payload) {
		eol := ftpparse.LineEnd(payload, off)
		if off > 0 && len(payload) > limit && (eol < 0 || eol > limit) && len(payload)-off <= e.policy().MaxLine+limit {
			// Carry the rest (whole lines, unparsed) to the next segment.
			d.HeldSince = now
			d.Held = append(d.Held[:0], payload[off:]...)
			e.stats.HeldCarried.Add(1)
			return off, ""
		}
		if eol < 0 {
			rest := payload[off:]
			if !d.MidLine && !sess.TLS && p.Flags&(rewrite.FlagSYN|rewrite.FlagFIN|rewrite.FlagRST) == 0 &&
				ftpparse.MayAnnounce(rest, dir == conntrack.DirReply) {
				if len(rest) <= e.policy().MaxLine {
					if len(d.Held) == 0 || !d.HoldStart().Before(start.Add(int32(off))) {
						d.HeldSince = now
					}
					d.Held = append(d.Held[:0], rest...)
					e.stats.HeldLines.Add(1)
					return off, ""
				}
				e.stats.LineOverflow.Add(1)
				if e.logLim.Allow(now) {
					e.log.Warn("line too long to hold, passed unparsed", "session", sess.ID, "from", dir.String(), "max_line", e.policy().MaxLine)
				}
			} else if !d.MidLine && !sess.TLS {
				e.stats.PartialLines.Add(1)
			}
			d.MidLine = true
			break
		}
		if d.MidLine {
			d.MidLine = false
		} else {
			e.stats.Lines.Add(1)
			if !sess.TLS {
				w.line(sess, dir, payload[off:eol], off, start, now)
			}
		}
		off = eol
	}
	return -1, ""
}

// insertEdit keeps w.edits sorted by offset.
func (w *Worker) insertEdit(ed rewrite.Splice) {
	w.edits = append(w.edits, ed)
	for i := len(w.edits) - 1; i > 0 && w.edits[i].Off < w.edits[i-1].Off; i-- {
		w.edits[i], w.edits[i-1] = w.edits[i-1], w.edits[i]
	}
}

var (
	authPrefix = []byte("AUTH ")
	tlsReply   = []byte("234")
)

// line handles one complete line starting at payload offset off.
func (w *Worker) line(sess *conntrack.Session, dir conntrack.Dir, line []byte, off int, segStart seqnum.Value, now time.Time) {
	e := w.e
	var m ftpparse.Match
	var err error
	if dir == conntrack.DirOrig {
		m, err = ftpparse.ParseClient(line)
		if err == nil && m.Kind == ftpparse.KindNone && len(line) >= len(authPrefix) && bytes.EqualFold(line[:len(authPrefix)], authPrefix) {
			sess.AuthSent = true
		}
	} else {
		m, err = ftpparse.ParseServer(line)
		if err == nil && m.Kind == ftpparse.KindNone && sess.AuthSent && bytes.HasPrefix(line, tlsReply) {
			sess.TLS = true
			e.stats.TLSSessions.Add(1)
			e.log.Warn("control connection switched to TLS: its data connections cannot be opened by ftpct",
				"session", sess.ID, "client", sess.Binding.Orig.Src.String(), "server", sess.Binding.Orig.Dst.String())
		}
	}
	if err != nil {
		e.stats.Malformed.Add(1)
		if e.logLim.Allow(now) {
			e.log.Warn("malformed announcement passed untouched", "session", sess.ID, "from", dir.String(), "err", err)
		}
		return
	}
	if m.Kind == ftpparse.KindNone {
		return
	}
	e.stats.Commands.Add(1)

	// Addresses as the kernel's tuples tell them: the sender's own address,
	// how the receiver sees the sender (after NAT), and the receiver, who
	// will open the data connection.
	own := sess.Tuple(dir)
	seen := sess.Tuple(dir.Other())
	sender, seenAs, peer := own.Src, seen.Dst, seen.Src
	announced := m.Addr
	if m.Kind == ftpparse.KindEPSV {
		announced = sender
	}
	if reason := e.check(announced, sender, m.Port); reason != ReasonNone {
		e.refuse(sess, m, reason, now)
		return
	}
	if seenAs != sender && sess.Dir[dir].EditsFull() {
		// The announcement needs a rewrite, and the rewrites that
		// retransmissions may still need fill the session's room.
		e.stats.RewritesRefused.Add(1)
		e.refuse(sess, m, ReasonInFlight, now)
		return
	}
	if seenAs != sender && !m.Kind.Carries(seenAs) {
		// A 227 or PORT cannot announce the translated (IPv6) address.
		e.refuse(sess, m, ReasonFamily, now)
		return
	}
	req := conntrack.Request{Session: sess.ID, Kind: m.Kind, Peer: peer, Addr: seenAs, Port: m.Port}
	if seenAs != sender {
		req.To = netip.AddrPortFrom(sender, m.Port)
	}
	x, created, evicted, err := e.exps.Add(req, now, w.evict[:0])
	w.evict = evicted[:0]
	for _, old := range evicted {
		e.stats.ExpectEvicted.Add(1)
		if err := e.holes.Close(e.hole(old)); err != nil {
			e.stats.Errors.Add(1)
		}
	}
	if err != nil {
		reason := ReasonLimit
		if errors.Is(err, conntrack.ErrConflict) || errors.Is(err, conntrack.ErrNoPort) {
			reason = ReasonConflict
		}
		e.refuse(sess, m, reason, now)
		return
	}
	if !e.persist.fits(sess, dir, w.growth(m, seenAs, x.Port)) {
		e.exps.Remove(x)
		_ = e.holes.Close(e.hole(x)) // a refreshed expectation's hole is open
		e.refuse(sess, m, ReasonStateRange, now)
		return
	}
	if err := e.holes.Open(e.ownedHole(x, sess)); err != nil {
		e.exps.Remove(x)
		e.stats.Errors.Add(1)
		e.refuse(sess, m, ReasonRules, now)
		if e.logLim.Allow(now) {
			e.log.Error("open hole", "err", err)
		}
		return
	}
	if created {
		e.stats.ExpectCreated.Add(1)
		e.eventCreated(sess, x, now)
		if e.logLim.Allow(now) {
			e.log.Info("expect", "session", sess.ID, "kind", m.Kind.String(), "peer", x.Peer.String(),
				"dst", netip.AddrPortFrom(x.Addr, x.Port).String(), "translated_to", addrPortString(x.To))
		}
	}
	if seenAs == sender && x.Port == m.Port {
		return // nothing translated: the announcement stands as it is
	}
	n := len(w.repl)
	w.repl = ftpparse.AppendArg(w.repl, m, seenAs, x.Port)
	repl := w.repl[n:]
	orig := line[m.Start:m.End]
	if bytes.Equal(repl, orig) {
		return
	}
	at := off + m.Start
	ed := conntrack.Edit{Pos: segStart.Add(int32(at)), OrigLen: uint16(len(orig)), Port: x.Port, OrigPort: m.Port, Kind: m.Kind, Delim: m.Delim}
	ed.Regen = bytes.Equal(ed.AppendOrig(w.orig[:0], sender), orig)
	if !sess.Dir[dir].Remember(ed) {
		// Not reached: room was checked above and new bytes come in order.
		e.stats.Errors.Add(1)
		return
	}
	w.insertEdit(rewrite.Splice{Off: at, End: off + m.End, Repl: repl})
	e.stats.Rewrites.Add(1)
}

// check applies the policy to an announcement.
func (e *Engine) check(announced, sender netip.Addr, port uint16) Reason {
	if announced.Unmap() != sender.Unmap() {
		return ReasonAddress
	}
	if port < 1024 && !e.policy().AllowLowPorts {
		return ReasonLowPort
	}
	return ReasonNone
}

func (e *Engine) refuse(sess *conntrack.Session, m ftpparse.Match, r Reason, now time.Time) {
	e.stats.ExpectRefused.Add(1)
	e.eventRefused(sess, m, r, now)
	if e.logLim.Allow(now) {
		e.log.Warn("announcement refused, no hole opened", "session", sess.ID, "kind", m.Kind.String(),
			"addr", m.Addr.String(), "port", m.Port, "reason", r.String())
	}
}
