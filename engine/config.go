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
	// table and forgotten when the kernel no longer tracks them.
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
	if c.Timeout <= 0 {
		c.Timeout = d.Timeout
	}
	if c.PerSession <= 0 {
		c.PerSession = d.PerSession
	}
	if c.MaxExpect <= 0 {
		c.MaxExpect = d.MaxExpect
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = d.MaxSessions
	}
	if c.IdleCheck <= 0 {
		c.IdleCheck = d.IdleCheck
	}
	if c.MaxLine <= 0 {
		c.MaxLine = d.MaxLine
	}
	if c.HoldPatience <= 0 {
		c.HoldPatience = d.HoldPatience
	}
	return c
}
