package engine

// policy returns the policy in force. The packet path reads it through an
// atomic pointer: no lock, and a Reload never leaves half of it changed.
func (e *Engine) policy() *Config { return e.pol.Load() }

// Policy returns a copy of the policy in force.
func (e *Engine) Policy() Config { return *e.policy() }

// Reload replaces the policy while the engine runs, keeping every session,
// expectation and stream offset. Timeout, PerSession, MaxExpect,
// MaxSessions, AllowLowPorts, MaxLine, HoldPatience and IdleCheck change
// live; a field left zero (or negative) keeps its current value. Lower
// limits forget nothing: pending expectations and tracked sessions past a
// new limit stay until they end, and new ones are refused meanwhile. A new
// Timeout applies to expectations created after it (the kernel's holes
// carry their own timeouts). The Logger cannot change: a different one is
// ignored and reported in notLive, by the name of the field.
func (e *Engine) Reload(cfg Config) (notLive []string) {
	cur := e.policy()
	next := *cur
	keep := func(dst *int, v int) {
		if v > 0 {
			*dst = v
		}
	}
	if cfg.Timeout > 0 {
		next.Timeout = cfg.Timeout
	}
	keep(&next.PerSession, cfg.PerSession)
	keep(&next.MaxExpect, cfg.MaxExpect)
	keep(&next.MaxSessions, cfg.MaxSessions)
	keep(&next.MaxLine, cfg.MaxLine)
	if cfg.HoldPatience > 0 {
		next.HoldPatience = cfg.HoldPatience
	}
	if cfg.IdleCheck > 0 {
		next.IdleCheck = cfg.IdleCheck
	}
	next.AllowLowPorts = cfg.AllowLowPorts
	if cfg.Logger != nil && cfg.Logger != cur.Logger {
		notLive = append(notLive, "Logger")
	}
	lim := e.exps.Limits()
	lim.PerSession, lim.Total, lim.Timeout = next.PerSession, next.MaxExpect, next.Timeout
	e.exps.SetLimits(lim)
	e.sessions.SetMax(next.MaxSessions)
	e.pol.Store(&next)
	return notLive
}
