package engine

import (
	"context"
	"log/slog"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ftpct/ftpct/conntrack"
	"github.com/ftpct/ftpct/expect"
	"github.com/ftpct/ftpct/ftpparse"
)

// The audit log and the event stream of `ftpct expect watch`: one Event for
// each expectation created, used, expired or deleted by hand, and for each
// announcement refused. The packet path and the housekeeping report them
// with one call each (created, refused, used, expired); the observer logs
// them through a rate limiter and hands them to the watchers without ever
// waiting for one.

// EventKind is what happened.
type EventKind uint8

const (
	// EventCreated: an announcement opened a hole.
	EventCreated EventKind = iota + 1
	// EventRefused: an announcement opened no hole (Event.Reason says why).
	EventRefused
	// EventUsed: the expected data connection arrived.
	EventUsed
	// EventExpired: the expectation timed out unused.
	EventExpired
	// EventDeleted: an operator closed the hole (ftpct expect delete).
	EventDeleted
)

var eventKindNames = [...]string{
	EventCreated: "created",
	EventRefused: "refused",
	EventUsed:    "used",
	EventExpired: "expired",
	EventDeleted: "deleted",
}

func (k EventKind) String() string {
	if uint(k) < uint(len(eventKindNames)) && eventKindNames[k] != "" {
		return eventKindNames[k]
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// Event is one thing that happened to an expectation, or to an
// announcement that got none.
type Event struct {
	Kind EventKind
	Time time.Time
	// ID is the expectation's, as `ftpct expect list` shows it; 0 for a
	// refused announcement.
	ID uint64
	// Session is the control connection's ID (`ftpct sessions list`).
	Session uint64
	// Ctl is the control connection's kernel tuples (original and reply).
	Ctl conntrack.Binding
	// Announce is the announcement's kind (PORT, EPRT, PASV for 227, EPSV for 229).
	Announce ftpparse.Kind
	// Peer is the address the data connection may come from.
	Peer netip.Addr
	// Announced is the endpoint the sender announced (its own address; a
	// 229 names only the port).
	Announced netip.AddrPort
	// Translated is the endpoint the receiver was told instead, when NAT
	// translates the control connection (the data connection is DNATed
	// back to Announced); invalid otherwise.
	Translated netip.AddrPort
	// Data is the data connection's original tuple (EventUsed only).
	Data conntrack.Tuple
	// Reason is why no hole was opened (EventRefused only).
	Reason Reason
}

// AuditConfig configures the audit log.
type AuditConfig struct {
	// Logger receives one Info line per event (message "audit"); nil
	// writes none. Events still reach the watchers.
	Logger *slog.Logger
	// Rate and Burst bound the lines per second (token bucket); lines
	// past them are counted (audit_suppressed), not written.
	Rate, Burst float64
	// SummaryEvery is how often a line tells how many lines were
	// suppressed since the last such line (when any were).
	SummaryEvery time.Duration
}

// DefaultAuditConfig returns the audit limits without a logger.
func DefaultAuditConfig() AuditConfig {
	return AuditConfig{Rate: 100, Burst: 1000, SummaryEvery: 10 * time.Second}
}

// SetAudit configures the audit log. Call it before the engine handles
// packets.
func (e *Engine) SetAudit(cfg AuditConfig) {
	d := DefaultAuditConfig()
	if cfg.Rate <= 0 {
		cfg.Rate = d.Rate
	}
	if cfg.Burst < 1 {
		cfg.Burst = d.Burst
	}
	if cfg.SummaryEvery <= 0 {
		cfg.SummaryEvery = d.SummaryEvery
	}
	o := &e.obs
	o.mu.Lock()
	defer o.mu.Unlock()
	o.log = cfg.Logger
	o.lim = newLimiter(cfg.Rate, cfg.Burst)
	o.summaryEvery = cfg.SummaryEvery
}

// observer fans events out to the audit log and the watchers. Its zero
// value works (no audit lines until SetAudit).
type observer struct {
	mu           sync.Mutex
	log          *slog.Logger
	lim          *limiter
	summaryEvery time.Duration
	suppressed   uint64    // lines suppressed since the last summary
	lastSummary  time.Time // when the last summary was due
	// ctl is the control connection of each expectation reported
	// created and not yet used, expired or deleted: used, expired and
	// deleted events carry it too.
	ctl      map[uint64]conntrack.Binding
	ctlPeak  int // the most entries in ctl since it was made (see forgetCtl)
	watchers map[*Watcher]struct{}
}

// eventCreated reports a new expectation of sess.
func (e *Engine) eventCreated(sess *conntrack.Session, x expect.Expectation, now time.Time) {
	ev := expectEvent(EventCreated, x, now)
	ev.Ctl = sess.Binding
	e.obs.emit(e, ev)
	if !e.exps.Pending(x) {
		// Evicted before its commit reported it created (a guarded
		// announcement's packet leaves before its commit, and the next
		// announcement can come first): observer.left found nothing
		// then. Both run with sess locked, so one sees the other.
		e.obs.left(x.ID)
	}
}

// eventRefused reports an announcement of sess that opened no hole.
func (e *Engine) eventRefused(sess *conntrack.Session, m ftpparse.Match, r Reason, now time.Time) {
	dir := conntrack.DirOrig
	if m.Kind == ftpparse.KindPASV || m.Kind == ftpparse.KindEPSV {
		dir = conntrack.DirReply
	}
	sender, seenAs := sess.Tuple(dir).Src, sess.SeenAs(dir)
	addr := m.Addr
	if !addr.IsValid() {
		addr = sender // a 229 announces only a port
	}
	ev := Event{Kind: EventRefused, Time: now, Session: sess.ID, Ctl: sess.Binding, Announce: m.Kind,
		Peer: sess.Tuple(dir.Other()).Src, Announced: netip.AddrPortFrom(addr, m.Port), Reason: r}
	if seenAs != sender {
		ev.Translated = netip.AddrPortFrom(seenAs, m.Port)
	}
	e.obs.emit(e, ev)
}

// eventUsed reports that the data connection b arrived for x.
func (e *Engine) eventUsed(x expect.Expectation, b conntrack.Binding, now time.Time) {
	ev := expectEvent(EventUsed, x, now)
	ev.Data = b.Orig
	e.obs.emit(e, ev)
}

// eventsExpired reports the expectations the housekeeping expired. It is called
// on every housekeeping tick (also with none): it writes the summary of
// suppressed lines when due and forgets the control connections of
// expectations that left the table unreported and were not forgotten as
// they left (observer.left): one a refused commit removed after it was
// refreshed, one taken by a data connection the kernel reported before
// its commit reported it created.
func (e *Engine) eventsExpired(list []expect.Expectation, now time.Time) {
	for _, x := range list {
		e.obs.emit(e, expectEvent(EventExpired, x, now))
	}
	o := &e.obs
	o.mu.Lock()
	var n uint64
	log := o.log
	if o.summaryEvery > 0 && now.Sub(o.lastSummary) >= o.summaryEvery {
		o.lastSummary = now
		n, o.suppressed = o.suppressed, 0
	}
	tracked := len(o.ctl)
	o.mu.Unlock()
	stale := tracked > e.exps.Len()
	if n > 0 && log != nil {
		log.LogAttrs(context.Background(), slog.LevelWarn, "audit lines suppressed by the rate limit",
			slog.Uint64("suppressed", n), slog.Uint64("suppressed_total", e.stats.AuditSuppressed.Load()))
	}
	if stale {
		o.prune(e)
	}
}

// eventDeleted reports an expectation closed by hand.
func (e *Engine) eventDeleted(x expect.Expectation, now time.Time) {
	e.obs.emit(e, expectEvent(EventDeleted, x, now))
}

// prune forgets the control connections of expectations no longer pending.
func (o *observer) prune(e *Engine) {
	pending := e.exps.List()
	o.mu.Lock()
	defer o.mu.Unlock()
	keep := make(map[uint64]conntrack.Binding, len(pending))
	for _, x := range pending {
		if b, ok := o.ctl[x.ID]; ok {
			keep[x.ID] = b
		}
	}
	o.ctl, o.ctlPeak = keep, len(keep)
}

// left forgets the control connection of expectation id, which left the
// table without an event (evicted by a newer announcement, deleted when its
// announcement was refused after all, removed with its session). Without it
// the housekeeping's prune would drop it within a second, but an
// announcement storm evicts thousands a second: the map would grow by them
// between ticks and be made again each time, the heap's largest swing.
func (o *observer) left(id uint64) {
	o.mu.Lock()
	o.forgetCtl(id)
	o.mu.Unlock()
}

// forgetCtl deletes expectation id's control connection. Once at most a
// quarter of the most ever kept are left, the map is made again: Go maps
// keep their room when emptied, and a burst of expectations would keep it.
// Call with o.mu held.
func (o *observer) forgetCtl(id uint64) {
	delete(o.ctl, id)
	if o.ctlPeak < 1024 || len(o.ctl) > o.ctlPeak/4 {
		return
	}
	keep := make(map[uint64]conntrack.Binding, len(o.ctl))
	for k, b := range o.ctl {
		keep[k] = b
	}
	o.ctl, o.ctlPeak = keep, len(keep)
}

func expectEvent(k EventKind, x expect.Expectation, now time.Time) Event {
	ev := Event{Kind: k, Time: now, ID: x.ID, Session: x.Session, Announce: x.Kind, Peer: x.Peer,
		Announced: netip.AddrPortFrom(x.Addr, x.Port)}
	if x.To.IsValid() {
		ev.Announced, ev.Translated = x.To, netip.AddrPortFrom(x.Addr, x.Port)
	}
	return ev
}

// emit hands ev to the watchers (never waiting: a full watcher loses it)
// and to the audit log (rate-limited).
func (o *observer) emit(e *Engine, ev Event) {
	o.mu.Lock()
	switch ev.Kind {
	case EventCreated:
		if o.ctl == nil {
			o.ctl = make(map[uint64]conntrack.Binding)
		}
		o.ctl[ev.ID] = ev.Ctl
		o.ctlPeak = max(o.ctlPeak, len(o.ctl))
	case EventUsed, EventExpired, EventDeleted:
		ev.Ctl = o.ctl[ev.ID]
		o.forgetCtl(ev.ID)
	}
	for w := range o.watchers {
		select {
		case w.c <- ev:
		default:
			w.lost.Add(1)
			e.stats.WatchLost.Add(1)
		}
	}
	log := o.log
	write := log != nil && o.lim.Allow(ev.Time)
	if log != nil && !write {
		o.suppressed++
		e.stats.AuditSuppressed.Add(1)
	}
	o.mu.Unlock()
	if write {
		log.LogAttrs(context.Background(), slog.LevelInfo, "audit", ev.attrs()...)
	}
}

// attrs are the audit line's fields.
func (ev *Event) attrs() []slog.Attr {
	a := make([]slog.Attr, 0, 11)
	a = append(a, slog.String("event", ev.Kind.String()))
	if ev.ID != 0 {
		a = append(a, slog.Uint64("id", ev.ID))
	}
	a = append(a, slog.Uint64("session", ev.Session), slog.String("kind", ev.Announce.String()))
	if ev.Ctl.Orig.Src.IsValid() {
		a = append(a, slog.Group("ctl", slog.String("orig", ev.Ctl.Orig.String()), slog.String("reply", ev.Ctl.Reply.String())))
	}
	a = append(a, slog.String("peer", ev.Peer.String()), slog.String("announced", ev.Announced.String()))
	if ev.Translated.IsValid() {
		a = append(a, slog.String("translated", ev.Translated.String()))
	}
	if ev.Kind == EventUsed {
		a = append(a, slog.String("data", ev.Data.String()))
	}
	if ev.Kind == EventRefused {
		a = append(a, slog.String("reason", ev.Reason.String()))
	}
	return a
}

// Watcher receives the engine's events (Engine.Watch).
type Watcher struct {
	e    *Engine
	c    chan Event
	lost atomic.Uint64
}

// Watch returns a watcher that receives every event from now on. Up to
// buffer events wait for the reader; later ones are lost (counted, see
// TakeLost) rather than waited for. Close it when done.
func (e *Engine) Watch(buffer int) *Watcher {
	if buffer < 1 {
		buffer = 1
	}
	w := &Watcher{e: e, c: make(chan Event, buffer)}
	o := &e.obs
	o.mu.Lock()
	if o.watchers == nil {
		o.watchers = make(map[*Watcher]struct{})
	}
	o.watchers[w] = struct{}{}
	o.mu.Unlock()
	return w
}

// Events delivers the events.
func (w *Watcher) Events() <-chan Event { return w.c }

// TakeLost returns how many events were lost since the last call.
func (w *Watcher) TakeLost() uint64 { return w.lost.Swap(0) }

// Close stops the deliveries. Idempotent.
func (w *Watcher) Close() {
	o := &w.e.obs
	o.mu.Lock()
	delete(o.watchers, w)
	o.mu.Unlock()
}

func (o *observer) watcherCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.watchers)
}
