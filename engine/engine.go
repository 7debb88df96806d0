package engine

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ftpct/ftpct/conntrack"
	"github.com/ftpct/ftpct/expect"
	"github.com/ftpct/ftpct/rules"
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

// Engine holds the state shared by all Workers.
type Engine struct {
	// pol is the policy (Config), replaced whole by Reload; the packet
	// path reads it through policy(), without a lock.
	pol      atomic.Pointer[Config]
	sessions *conntrack.Table
	exps     *expect.Table
	kernel   Kernel
	holes    Holes
	log      *slog.Logger
	logLim   *limiter
	// errLim limits warnings and errors apart from logLim's information
	// lines, which a storm of announcements uses up.
	errLim  *limiter
	stats   Stats
	obs     observer // audit log and watchers (audit.go)
	persist *persister
	async   *deferrer // nil: holes are opened inline (Defer)
	now     func() time.Time
	// syncUsed hands DataConnection every data connection the kernel has
	// let in so far (UsedEvents); nil: none is pending anywhere.
	syncUsed func()

	// events: conntrack DESTROY events reach SessionGone; lost: some were
	// dropped since the last full check (KernelEvents, EventsLost).
	events, lost atomic.Bool
	// The fallback sweep's position (Table.Some), buffer, and when its last round (or
	// a full check) ended: Run's goroutine only.
	cursor    int
	sweepBuf  []*conntrack.Session
	lastSweep time.Time
}

// New returns an engine.
func New(cfg Config, kernel Kernel, holes Holes) *Engine {
	cfg = cfg.withDefaults()
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		sessions: conntrack.NewTable(cfg.MaxSessions),
		exps:     expect.NewTable(expectLimits(cfg)),
		kernel:   kernel,
		holes:    holes,
		log:      log,
		logLim:   newLimiter(20, 100),
		errLim:   newLimiter(20, 100),
		now:      time.Now,
	}
	e.persist = newPersister(log, &e.stats)
	e.pol.Store(&cfg)
	return e
}

// Expectations lists the pending expectations.
func (e *Engine) Expectations() []expect.Expectation { return e.exps.List() }

// Sessions lists the tracked control connections.
func (e *Engine) Sessions() []*conntrack.Session { return e.sessions.Sessions(nil) }

// Run does the engine's housekeeping until ctx is cancelled: it expires
// expectations and forgets control connections the kernel no longer tracks.
//
// While conntrack DESTROY events reach SessionGone (KernelEvents), that
// is how ended sessions go; Run then only sweeps slowly through the table
// (every session once per sweepRounds × IdleCheck, a share each second),
// for events the kernel never sent, and checks every idle session at once
// after events were lost (EventsLost). Without events it checks every
// session idle for IdleCheck, every IdleCheck/4.
func (e *Engine) Run(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastGC := e.now()
	var expired []expect.Expectation
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		now := e.now()
		expired = e.expire(now, expired[:0])
		switch {
		case e.lost.Swap(false):
			lastGC = now
			e.collect(now)
		case e.events.Load():
			e.sweep(now, time.Second)
		case now.Sub(lastGC) >= e.policy().IdleCheck/4:
			lastGC = now
			e.collect(now)
		}
	}
}

// sweepRounds: with DESTROY events, the fallback sweep checks each session
// once per sweepRounds × IdleCheck (10 minutes by default): at 100,000 idle
// sessions about 170 kernel lookups a second, where checking every idle
// one each IdleCheck/4 made 6,700.
const sweepRounds = 10

// KernelEvents tells the housekeeping whether conntrack DESTROY events
// reach SessionGone (the daemon's conntrack.DestroyWatcher runs).
func (e *Engine) KernelEvents(on bool) { e.events.Store(on) }

// UsedEvents gives the engine sync, which has DataConnection called, before
// it returns, for every data connection the kernel has let in through a
// hole so far (conntrack.NewWatcher.Sync). Data connections are reported
// by conntrack events, read apart from the queue: without sync, a
// session's next announcement could evict an expectation whose data
// connection came long before, but whose event was not read yet, and the
// expectation would be counted (and audited) evicted instead of used. Set
// before the engine sees packets.
func (e *Engine) UsedEvents(sync func()) { e.syncUsed = sync }

// DataEventsLost records that the kernel dropped conntrack NEW events.
func (e *Engine) DataEventsLost() { e.stats.DataEventsLost.Add(1) }

// EventsLost records that the kernel dropped DESTROY events: the next
// housekeeping pass checks every idle session against the kernel.
func (e *Engine) EventsLost() {
	e.stats.EventsLost.Add(1)
	e.lost.Store(true)
}

// SessionGone is told of a conntrack DESTROY event: the kernel forgot the
// connection whose original tuple is t. A tracked session of that
// connection is forgotten, with its expectations and holes, once the
// kernel confirms it has no entry for t: a new connection may have reused
// the addresses and ports since (its session is kept). Safe for concurrent
// use.
func (e *Engine) SessionGone(t conntrack.Tuple) {
	s, d, ok := e.sessions.Lookup(t.Key())
	if !ok || d != conntrack.DirOrig || s.Binding.Orig != t {
		return
	}
	if _, err := e.kernel.Lookup(t); !errors.Is(err, conntrack.ErrNoEntry) {
		return
	}
	e.end(s)
}

// retire forgets session s at once, with its persisted state and holes:
// a new connection (a client's SYN) reuses its addresses and ports.
func (e *Engine) retire(s *conntrack.Session) {
	e.sessions.Remove(s)
	e.async.forgetRepeats(s.ID)
	e.persist.forget(s)
	e.forget(s.ID, nil)
	e.stats.SessionsReused.Add(1)
}

// end forgets session s, which the kernel no longer tracks, with its
// persisted state, expectations and holes. It reports whether s was still
// tracked (an event and the sweep may find it at once).
func (e *Engine) end(s *conntrack.Session) bool {
	if !e.sessions.Remove(s) {
		return false
	}
	e.async.forgetRepeats(s.ID)
	e.persist.forget(s)
	e.forget(s.ID, nil)
	e.stats.SessionsEnded.Add(1)
	return true
}

// idleGone reports whether session s has been idle for its limit (idleCheck,
// a sixth of it after a FIN or RST) and the kernel no longer tracks it.
func (e *Engine) idleGone(s *conntrack.Session, now time.Time, idleCheck time.Duration) bool {
	s.Lock()
	idle, limit := now.Sub(s.LastSeen()), idleCheck
	if s.Closing {
		limit /= 6 // a FIN or RST was seen: the kernel forgets it soon
	}
	s.Unlock()
	if idle < limit {
		return false
	}
	_, err := e.kernel.Lookup(s.Binding.Orig)
	return errors.Is(err, conntrack.ErrNoEntry)
}

// collect forgets idle sessions the kernel no longer tracks: all of them.
func (e *Engine) collect(now time.Time) {
	idleCheck := e.policy().IdleCheck
	for _, s := range e.sessions.Sessions(nil) {
		if e.idleGone(s, now, idleCheck) && e.end(s) {
			e.stats.SessionsSwept.Add(1)
		}
	}
	e.persist.collect(e.kernel)
	e.lastSweep = now
}

// sweep is collect in steps: each call, for step of time, checks the share
// of the table that makes every session checked once per sweepRounds ×
// IdleCheck. Called by Run only.
func (e *Engine) sweep(now time.Time, step time.Duration) {
	idleCheck := e.policy().IdleCheck
	period := sweepRounds * idleCheck
	n := e.sessions.Len()
	share := int((int64(n)*int64(step) + int64(period) - 1) / int64(period))
	e.sweepBuf, e.cursor = e.sessions.Some(e.sweepBuf[:0], e.cursor, share)
	for _, s := range e.sweepBuf {
		if e.idleGone(s, now, idleCheck) && e.end(s) {
			e.stats.SessionsSwept.Add(1)
		}
	}
	clear(e.sweepBuf) // keep no session alive
	if e.cursor == 0 && now.Sub(e.lastSweep) >= idleCheck/4 {
		// A round is done: the persister's foreign sessions too.
		e.persist.collect(e.kernel)
		e.lastSweep = now
	}
}
