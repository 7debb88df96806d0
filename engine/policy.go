package engine

// The expectation and policy service: may an announcement open a hole, where
// does its data connection translate to, and what becomes of the
// expectation (created, refused, used, expired, forgotten). Each of those
// outcomes is counted and logged in exactly one place below.

import (
	"errors"
	"net/netip"
	"time"

	"github.com/ftpct/ftpct/conntrack"
	"github.com/ftpct/ftpct/expect"
	"github.com/ftpct/ftpct/ftpparse"
	"github.com/ftpct/ftpct/rules"
)

// expectLimits are the expectation table's limits under cfg.
func expectLimits(cfg Config) expect.Limits {
	return expect.Limits{PerSession: cfg.PerSession, Total: cfg.MaxExpect, Timeout: cfg.Timeout}
}

// grant is what the policy allowed for an announcement: the expectation,
// and the address the receiver sees the sender as (what the announcement
// must carry, with x.Port).
type grant struct {
	x      expect.Expectation
	seenAs netip.Addr
}

// admit decides on announcement m of sess's direction dir: it applies the
// policy, creates the expectation (or refreshes it) and opens its hole.
// room reports whether the stream can keep one more rewrite, needed when
// the announcement must be translated. ok is false when no hole was opened.
func (w *Worker) admit(sess *conntrack.Session, dir conntrack.Dir, m ftpparse.Match, room bool, cfg *Config, now time.Time) (g grant, ok bool) {
	e := w.e
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
	if reason := check(announced, sender, m.Port, cfg); reason != ReasonNone {
		return g, e.refuse(sess, m, reason, now)
	}
	if seenAs != sender && !room {
		// The announcement needs a rewrite, and the rewrites that
		// retransmissions may still need fill the session's room.
		e.stats.RewritesRefused.Add(1)
		return g, e.refuse(sess, m, ReasonInFlight, now)
	}
	if seenAs != sender && !m.Kind.Carries(seenAs) {
		// A 227 or PORT cannot announce the translated (IPv6) address.
		return g, e.refuse(sess, m, ReasonFamily, now)
	}
	req := expect.Request{Session: sess.ID, Kind: m.Kind, Peer: peer, Addr: seenAs, Port: m.Port}
	if seenAs != sender {
		req.To = netip.AddrPortFrom(sender, m.Port)
	}
	if e.syncUsed != nil && e.exps.Full(sess.ID) {
		// The oldest expectation is evicted unless its data connection
		// came already: it did if the kernel reported it before this
		// announcement (which the peer sent after that connection).
		e.syncUsed()
	}
	x, created, evicted, err := e.exps.Add(req, now, w.evict[:0])
	w.evict = evicted[:0]
	for _, old := range evicted {
		e.stats.ExpectEvicted.Add(1)
		e.obs.left(old.ID)
		if e.async != nil {
			// Deleted in the transaction that opens the new hole.
			w.ops = append(w.ops, rules.Op{Kind: rules.OpClose, Hole: e.hole(old)})
		} else {
			if err := e.holes.Close(e.hole(old)); err != nil {
				e.stats.Errors.Add(1)
			}
			e.exps.Closed(old.Key())
		}
	}
	if err != nil {
		reason := ReasonLimit
		if errors.Is(err, expect.ErrConflict) || errors.Is(err, expect.ErrNoPort) {
			reason = ReasonConflict
		}
		return g, e.refuse(sess, m, reason, now)
	}
	if !e.persist.fits(sess, dir, w.growth(m, seenAs, x.Port)) {
		if created {
			e.exps.Remove(x) // its hole was not asked for yet
		} else if e.exps.Delete(x) {
			e.obs.left(x.ID)
			e.closeHole(e.hole(x)) // a refreshed expectation's hole is open
		}
		return g, e.refuse(sess, m, ReasonStateRange, now)
	}
	if e.async != nil {
		// Committed before the packet's verdict (deferred.go), which
		// counts it created or refuses it.
		w.ops = append(w.ops, rules.Op{Kind: rules.OpOpen, Hole: e.ownedHole(x, sess)})
		w.grants = append(w.grants, pending{x: x, created: created, m: m})
		return grant{x: x, seenAs: seenAs}, true
	}
	if err := e.holes.Open(e.ownedHole(x, sess)); err != nil {
		e.exps.Remove(x)
		e.stats.Errors.Add(1)
		if e.errLim.Allow(now) {
			e.log.Error("open hole", "err", err)
		}
		return g, e.refuse(sess, m, ReasonRules, now)
	}
	if created {
		e.created(sess, x, now)
	}
	return grant{x: x, seenAs: seenAs}, true
}

// check applies the policy to an announcement.
func check(announced, sender netip.Addr, port uint16, cfg *Config) Reason {
	if announced.Unmap() != sender.Unmap() {
		return ReasonAddress
	}
	if port < 1024 && !cfg.AllowLowPorts {
		return ReasonLowPort
	}
	return ReasonNone
}

// created is where a new expectation is counted and logged.
func (e *Engine) created(sess *conntrack.Session, x expect.Expectation, now time.Time) {
	e.stats.ExpectCreated.Add(1)
	e.eventCreated(sess, x, now)
	if e.logLim.Allow(now) {
		e.log.Info("expect", "session", sess.ID, "kind", x.Kind.String(), "peer", x.Peer.String(),
			"dst", netip.AddrPortFrom(x.Addr, x.Port).String(), "translated_to", addrPortString(x.To))
	}
}

// refuse is where a refused announcement is counted and logged. It returns
// false, for admit's ok.
func (e *Engine) refuse(sess *conntrack.Session, m ftpparse.Match, r Reason, now time.Time) bool {
	e.stats.ExpectRefused.Add(1)
	e.eventRefused(sess, m, r, now)
	if e.errLim.Allow(now) {
		e.log.Warn("announcement refused, no hole opened", "session", sess.ID, "kind", m.Kind.String(),
			"addr", m.Addr.String(), "port", m.Port, "reason", r.String())
	}
	return false
}

// DataConnection is called for each new connection the kernel let in
// through one of our holes (conntrack event with our mark). It marks the
// matching expectation used: where that is counted and logged.
func (e *Engine) DataConnection(b conntrack.Binding) {
	k := expect.MakeKey(b.Orig.Src, b.Orig.Dst, b.Orig.DstPort)
	x, ok := e.exps.Take(k)
	if !ok {
		return
	}
	e.stats.ExpectUsed.Add(1)
	e.eventUsed(x, b, e.now())
	// The set element is gone (one-shot): drop the DNAT mapping only.
	if x.To.IsValid() {
		h := e.hole(x)
		h.Used = true
		e.closeHole(h)
	}
	if e.logLim.Allow(e.now()) {
		e.log.Info("data connection", "session", x.Session, "kind", x.Kind.String(),
			"from", netip.AddrPortFrom(b.Orig.Src, b.Orig.SrcPort).String(),
			"to", netip.AddrPortFrom(b.Orig.Dst, b.Orig.DstPort).String(),
			"translated_to", addrPortString(x.To))
	}
}

// expire removes the expectations whose time is up, appends them to dst and
// counts them: where expiry is counted. Their holes expire in the kernel on
// their own.
func (e *Engine) expire(now time.Time, dst []expect.Expectation) []expect.Expectation {
	n := len(dst)
	dst = e.exps.Expire(now, dst)
	e.stats.ExpectExpired.Add(uint64(len(dst) - n))
	e.eventsExpired(dst[n:], now)
	return dst
}

// forget removes the expectations of a session that is gone and closes their
// holes; it appends them to dst.
func (e *Engine) forget(session uint64, dst []expect.Expectation) []expect.Expectation {
	n := len(dst)
	dst = e.exps.RemoveSession(session, dst)
	for _, x := range dst[n:] {
		e.obs.left(x.ID)
		e.closeHole(e.hole(x))
	}
	return dst
}

// hole returns the pinhole of expectation x. Its timeout is what is left of
// x's lifetime, at least the millisecond the kernel counts in (rules rounds up
// to it): a hole about to expire, or just expired, can still be named to close.
func (e *Engine) hole(x expect.Expectation) rules.Hole {
	return rules.Hole{Peer: x.Peer, Addr: x.Addr, Port: x.Port, To: x.To, Timeout: max(x.Expires.Sub(e.now()), time.Millisecond)}
}

func addrPortString(a netip.AddrPort) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
