package engine

import "time"

// policy returns the policy in force. The packet path reads it through an
// atomic pointer: no lock, and a Reload never leaves half of it changed.
func (e *Engine) policy() *Config { return e.pol.Load() }

// Policy returns a copy of the policy in force.
func (e *Engine) Policy() Config { return *e.policy() }

// Reload applies cfg to the running engine, keeping every session,
// expectation and stream offset; unset (zero or negative) values take their
// defaults, as in New. It returns the names of the settings that differ but
// cannot change while the engine runs (they keep their value): only Logger.
// A packet being handled finishes with the values it started with. Lower
// limits forget nothing: pending expectations and tracked sessions past a
// new limit stay until they end, and new ones are refused meanwhile. A new
// Timeout applies to expectations created after it (the kernel's holes
// carry their own timeouts).
func (e *Engine) Reload(cfg Config) (notLive []string) {
	cfg = cfg.withDefaults()
	old := e.policy()
	if cfg.Logger != old.Logger {
		notLive = append(notLive, "Logger")
		cfg.Logger = old.Logger
	}
	lim := e.exps.Limits()
	lim.PerSession, lim.Total, lim.Timeout = cfg.PerSession, cfg.MaxExpect, cfg.Timeout
	e.exps.SetLimits(lim)
	e.sessions.SetMax(cfg.MaxSessions)
	e.pol.Store(&cfg)
	return notLive
}

// orDefault returns v, or d when v is not positive.
func orDefault[T int | time.Duration](v, d T) T {
	if v <= 0 {
		return d
	}
	return v
}
