package engine

import (
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/ftpct/ftpct/conntrack"
	"github.com/ftpct/ftpct/rewrite"
	"github.com/ftpct/ftpct/rules"
)

// The guard: announcements without the commit wait. With Engine.Guard, the
// packet that carries an announcement gets its verdict at once, before its
// hole is committed, and the caller marks it (Worker.Marked; the queue's
// AcceptMark). At the packet's last hook the kernel adds its destination,
// the peer that will open the data connection, to the rules' guard set
// (rules package: set guard, chains guard_post and guard_in), before the
// packet leaves; the divert chains then queue that peer's first SYNs. A SYN
// whose source . destination . port is a hole submitted to the committer
// and not committed yet waits (DecisionPending) until the pass that
// commits it is done, then passes; it hurries that pass (Committer.Hurry),
// which the committer would otherwise hold back for up to its pass
// interval to gather more. Any other SYN passes at once. So the
// peer's data connection still never races its hole, and the
// announcement's flow goes on while the hole is committed.
//
// A commit that fails after the announcement left refuses its expectation
// (ReasonRules, audited): the packet is out already, and the peer's data
// connection finds no hole, as when the kernel's helper cannot create an
// expectation. The session must be held (set hold) before a resized
// packet leaves: with Engine.HoldInPath the kernel holds it in the packet
// path (holdpath.go), else the first resize of a session waits for its
// commit (DecisionPending, deferred.go), its flows added in the transaction
// that opens its holes. An announcement (or a first resize) that finds the
// committer guardBacklog holes behind waits for its commit too. Packets
// that waited behind another of their flow are decided by the committer's
// goroutine, which cannot mark them: they wait for their holes as without
// the guard.

// Guard makes announcements' packets leave before their holes are
// committed, marked (Worker.Marked), and holds the SYNs of those holes
// until they are. ports are the control ports: their SYNs are not counted
// as guarded. Call it after Defer and before the first packet is handled;
// it needs the rules' guard (set guard and its chains) to be safe.
func (e *Engine) Guard(ports []uint16) {
	if e.async == nil {
		panic("engine: Guard without Defer")
	}
	e.async.guard = &guard{holes: map[guardKey]*uncommitted{}, ports: slices.Clone(ports)}
}

// guard is the registry of holes submitted and not committed yet, shared
// by all workers.
type guard struct {
	ports []uint16

	mu    sync.Mutex
	holes map[guardKey]*uncommitted
	peak  int // the most holes registered since holes was made
}

// guardKey is what a data connection's SYN shows of its hole: source,
// destination, destination port, as the divert chains see them.
type guardKey struct {
	peer, addr netip.Addr
	port       uint16
}

func keyOf(h rules.Hole) guardKey {
	return guardKey{peer: h.Peer.Unmap(), addr: h.Addr.Unmap(), port: h.Port}
}

// uncommitted is a hole in one or more passes to come, and the SYNs that
// wait for it.
type uncommitted struct {
	n    int      // submissions that open it, not done
	syns []uint64 // tags of waiting SYNs
}

// guardBacklog is the most holes submitted and not committed yet with
// which an announcement is still guarded. Past it the committer is far
// behind (normally a pass holds a few holes and commits them within a
// millisecond or two; 256 is about 20 ms of a storm of 12,000 announcements
// a second): its announcements' packets then wait for their commits, as
// without the guard, so each flow waits for the committer and the backlog
// stays bounded. Unbounded, a committer starved of CPU for a second or two
// let a storm queue tens of thousands of requests, whose transaction then
// took tens of MB at once (BENCHMARKS.md, "Memory flat through the
// 10-minute storm").
const guardBacklog = 256

// busy reports whether the committer is guardBacklog holes behind.
func (g *guard) busy() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.holes) >= guardBacklog
}

// guardShrink is the fewest holes after which an emptied registry is made
// again.
const guardShrink = 1024

// submit registers the holes ops open: until done is called with them,
// their SYNs wait. It returns the keys to give done.
func (g *guard) submit(ops []rules.Op) []guardKey {
	var keys []guardKey
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, op := range ops {
		if op.Kind != rules.OpOpen {
			continue
		}
		k := keyOf(op.Hole)
		u := g.holes[k]
		if u == nil {
			u = &uncommitted{}
			g.holes[k] = u
		}
		u.n++
		keys = append(keys, k)
	}
	g.peak = max(g.peak, len(g.holes))
	return keys
}

// done unregisters keys and returns the tags of the SYNs that may go now.
func (g *guard) done(keys []guardKey) []uint64 {
	var free []uint64
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, k := range keys {
		u := g.holes[k]
		if u == nil {
			continue
		}
		if u.n--; u.n == 0 {
			free = append(free, u.syns...)
			delete(g.holes, k)
		}
	}
	if len(g.holes) == 0 && g.peak >= guardShrink {
		// Go maps keep their room: after a burst (a storm's pass
		// that waited long), make the registry again.
		g.holes, g.peak = map[guardKey]*uncommitted{}, 0
	}
	return free
}

// wait makes the SYN tag wait when its tuple is an uncommitted hole.
func (g *guard) wait(tag uint64, k guardKey) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	u := g.holes[k]
	if u == nil {
		return false
	}
	u.syns = append(u.syns, tag)
	return true
}

// control reports whether port is a control port.
func (g *guard) control(port uint16) bool { return slices.Contains(g.ports, port) }

// guardSYN decides the first SYN of a connection, queued by the guard or
// as a control connection's: it waits when it is for a hole not committed
// yet. false: not a SYN, or it need not wait.
func (w *Worker) guardSYN(tag uint64, p *rewrite.Packet) bool {
	a := w.e.async
	if a == nil || a.guard == nil || p.Flags&(rewrite.FlagSYN|rewrite.FlagACK|rewrite.FlagRST|rewrite.FlagFIN) != rewrite.FlagSYN {
		return false
	}
	g := a.guard
	k := guardKey{peer: p.Src.Unmap(), addr: p.Dst.Unmap(), port: p.DstPort}
	if g.control(p.DstPort) {
		// A control connection (or a data connection to a control
		// port's number) may still be a hole's: checked, not counted.
		if !g.wait(tag, k) {
			return false
		}
		a.c.Hurry()
		return true
	}
	w.e.stats.GuardSyns.Add(1)
	if !g.wait(tag, k) {
		return false
	}
	// The SYN waits for its hole: commit it now rather than at the end of
	// the committer's interval.
	a.c.Hurry()
	w.e.stats.GuardWaits.Add(1)
	return true
}

// guarded gives the packet of segment s, whose holes are in w.ops, its
// decision d at once: it leaves marked (w.marked) while the holes are
// committed; ticket.committed settles its announcements. The session is
// locked.
func (w *Worker) guarded(tag uint64, sess *conntrack.Session, dir conntrack.Dir, s *segment, d Decision, out []byte, now time.Time) (Decision, []byte) {
	e := w.e
	g := e.async.guard
	t := &ticket{e: e, tag: tag, sess: sess, dir: dir, d: d, forced: s.forced, before: w.before,
		added: len(sess.Stream[dir].Records()) - w.kept, grants: slices.Clone(w.grants)}
	t.keys = g.submit(w.ops)
	err := e.async.c.Submit(t.committed, w.ops...)
	w.closesHandedOver()
	if err != nil {
		// The committer stopped: as without the guard (locked).
		e.async.release(g.done(t.keys))
		if d, _ := t.settle(rules.Result{Err: err}, now); d != DecisionDrop {
			e.stats.Dropped.Add(1)
		}
		return DecisionDrop, nil
	}
	if d == DecisionModified && !e.persist.after(sess, dir, w.before, now) { // before the verdict
		// Not reached: the guard is not used when the session must be
		// held first (locked). The holes stay (unused, they expire).
		e.stats.Errors.Add(1)
		if e.errLim.Allow(now) {
			e.log.Warn("rewrite failed", "session", sess.ID, "err", errNotHeld)
		}
		return t.unsent()
	}
	if d == DecisionAccept || d == DecisionModified {
		w.marked = true
		e.stats.Guarded.Add(1)
	}
	return d, out
}

// committed is called by the committer with the result of the operations
// of t, whose packet left already: its announcements are settled, then the
// SYNs that waited for its holes pass.
func (t *ticket) committed(r rules.Result) {
	e := t.e
	now := e.now()
	t.sess.Lock()
	if r.CloseErr != nil {
		e.stats.Errors.Add(1)
		if e.errLim.Allow(now) {
			e.log.Error("close hole", "err", r.CloseErr)
		}
	}
	if r.Err == nil {
		for _, g := range t.grants {
			if g.created {
				e.created(t.sess, g.x, now)
			}
		}
	} else {
		e.stats.Errors.Add(1)
		if e.errLim.Allow(now) {
			e.log.Error("open hole", "err", r.Err, "announcement", "sent already")
		}
		for _, g := range t.grants {
			e.exps.Remove(g.x)
			e.refuse(t.sess, g.m, ReasonRules, now)
		}
	}
	t.sess.Unlock()
	e.async.release(e.async.guard.done(t.keys))
}

// release lets the SYNs tags pass.
func (a *deferrer) release(tags []uint64) {
	for _, tag := range tags {
		a.verdict(tag, DecisionAccept, nil)
	}
}

// Marked reports whether the packet of the last Handle or HandleID must
// leave with the guard's mark (Engine.Guard): it carries an announcement
// whose hole may not be committed yet.
func (w *Worker) Marked() bool { return w.marked }
