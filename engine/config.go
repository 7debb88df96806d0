package engine

import (
	"log/slog"
	"time"
)

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
	// table and forgotten when the kernel no longer tracks them: every
	// IdleCheck/4 without conntrack DESTROY events, once per 10 ×
	// IdleCheck with them (Engine.Run).
	IdleCheck time.Duration
	// Logger receives rate-limited events; nil discards them. It cannot
	// change while the engine runs (Reload).
	Logger *slog.Logger
}

// DefaultConfig is the kernel helper's behaviour with ftpct's safer defaults.
func DefaultConfig() Config {
	return Config{Timeout: 5 * time.Minute, PerSession: 1, MaxExpect: 4096, MaxSessions: 65536, MaxLine: 4096, HoldPatience: 150 * time.Millisecond, IdleCheck: time.Minute}
}

// withDefaults replaces every unset (zero or negative) value by its default.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	c.Timeout = orDefault(c.Timeout, d.Timeout)
	c.PerSession = orDefault(c.PerSession, d.PerSession)
	c.MaxExpect = orDefault(c.MaxExpect, d.MaxExpect)
	c.MaxSessions = orDefault(c.MaxSessions, d.MaxSessions)
	c.IdleCheck = orDefault(c.IdleCheck, d.IdleCheck)
	c.MaxLine = orDefault(c.MaxLine, d.MaxLine)
	c.HoldPatience = orDefault(c.HoldPatience, d.HoldPatience)
	return c
}
