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
	stats    Stats
	obs      observer // audit log and watchers (audit.go)
	persist  *persister
	async    *deferrer // nil: holes are opened inline (Defer)
	now      func() time.Time
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
		if now.Sub(lastGC) >= e.policy().IdleCheck/4 {
			lastGC = now
			e.collect(now)
		}
	}
}

// retire forgets session s at once, with its persisted state and holes:
// a new connection (a client's SYN) reuses its addresses and ports.
func (e *Engine) retire(s *conntrack.Session) {
	e.sessions.Remove(s)
	e.persist.forget(s)
	e.forget(s.ID, nil)
	e.stats.SessionsReused.Add(1)
}

// collect forgets idle sessions the kernel no longer tracks.
func (e *Engine) collect(now time.Time) {
	var gone []expect.Expectation
	idleCheck := e.policy().IdleCheck
	for _, s := range e.sessions.Sessions(nil) {
		s.Lock()
		idle, limit := now.Sub(s.LastSeen()), idleCheck
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
		gone = e.forget(s.ID, gone[:0])
	}
	e.persist.collect(e.kernel)
}
