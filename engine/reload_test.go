package engine

import (
	"log/slog"
	"testing"
	"time"

	"github.com/ftpct/ftpct/expect"
	"github.com/google/go-cmp/cmp"
)

// TestReloadKeepsState changes the policy in the middle of a rewritten
// session: the new policy applies to the next announcement, and the
// session's sequence offsets are kept.
func TestReloadKeepsState(t *testing.T) {
	e, holes := newTestEngine(masqueradeBinding)
	w := e.NewWorker()
	low := "PORT 10,0,1,2,0,22\r\n"     // 20 bytes
	loww := "PORT 203,0,113,1,0,22\r\n" // 23 bytes: +3
	low21 := "PORT 10,0,1,2,0,21\r\n"   // 20 bytes
	runSteps(t, w, []step{
		{"privileged port refused", masqC2S(1000, 5000, low), got{Verdict: "accept", Seq: 1000, Ack: 5000, Payload: low}},
	})
	if n := e.Stats().ExpectRefused; n != 1 {
		t.Fatalf("expect_refused = %d, want 1", n)
	}
	if notLive := e.Reload(Config{AllowLowPorts: true, Timeout: 2 * time.Minute}); notLive != nil {
		t.Errorf("notLive = %v, want none", notLive)
	}
	runSteps(t, w, []step{
		{"allowed after reload, rewritten", masqC2S(1020, 5000, low), got{Verdict: "accept-modified", Seq: 1020, Ack: 5000, Payload: loww}},
		{"offset kept", masqC2S(1040, 5000, "NOOP\r\n"), got{Verdict: "accept-modified", Seq: 1043, Ack: 5000, Payload: "NOOP\r\n"}},
	})
	if len(holes.open) != 1 {
		t.Fatalf("holes = %v, want one", holes.open)
	}
	for _, h := range holes.open {
		if h.Timeout != 2*time.Minute {
			t.Errorf("hole timeout %v, want the reloaded 2m", h.Timeout)
		}
	}
	e.Reload(Config{}) // the defaults again: AllowLowPorts false
	runSteps(t, w, []step{
		{"refused again, offset still kept", masqC2S(1046, 5000, low21), got{Verdict: "accept-modified", Seq: 1049, Ack: 5000, Payload: low21}},
	})
	if n := e.Stats().ExpectRefused; n != 2 {
		t.Errorf("expect_refused = %d, want 2", n)
	}
	if e.sessions.Len() != 1 || e.exps.Len() != 1 {
		t.Errorf("sessions %d, expectations %d; want 1 and 1 kept across reloads", e.sessions.Len(), e.exps.Len())
	}
}

func TestReloadValues(t *testing.T) {
	other := slog.New(slog.DiscardHandler)
	tests := []struct {
		name        string
		cfg         Config
		wantPolicy  func(c *Config)
		wantLimits  expect.Limits
		wantNotLive []string
	}{
		{name: "zero takes the defaults", cfg: Config{},
			wantPolicy: func(c *Config) {},
			wantLimits: expect.Limits{PerSession: 1, Total: 4096, Timeout: 5 * time.Minute, MinPort: 1024}},
		{name: "limits", cfg: Config{PerSession: 3, MaxExpect: 10, MaxSessions: 7, Timeout: time.Minute, AllowLowPorts: true},
			wantPolicy: func(c *Config) {
				c.PerSession, c.MaxExpect, c.MaxSessions, c.Timeout, c.AllowLowPorts = 3, 10, 7, time.Minute, true
			},
			wantLimits: expect.Limits{PerSession: 3, Total: 10, Timeout: time.Minute, MinPort: 1024}},
		{name: "negative takes the defaults", cfg: Config{PerSession: -1, MaxExpect: -5, MaxLine: 100, HoldPatience: time.Second, IdleCheck: time.Hour},
			wantPolicy: func(c *Config) { c.MaxLine, c.HoldPatience, c.IdleCheck = 100, time.Second, time.Hour },
			wantLimits: expect.Limits{PerSession: 1, Total: 4096, Timeout: 5 * time.Minute, MinPort: 1024}},
		{name: "logger cannot change", cfg: Config{Logger: other},
			wantPolicy:  func(c *Config) {},
			wantLimits:  expect.Limits{PerSession: 1, Total: 4096, Timeout: 5 * time.Minute, MinPort: 1024},
			wantNotLive: []string{"Logger"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newTestEngine()
			// Away from the defaults first, so that a value kept by
			// mistake shows.
			e.Reload(Config{PerSession: 9, MaxExpect: 99, MaxSessions: 999, Timeout: time.Hour, MaxLine: 9, HoldPatience: time.Hour, IdleCheck: 9 * time.Hour})
			want := DefaultConfig()
			tt.wantPolicy(&want)
			notLive := e.Reload(tt.cfg)
			if diff := cmp.Diff(tt.wantNotLive, notLive); diff != "" {
				t.Errorf("notLive (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(want, e.Policy(), cmp.Comparer(func(a, b *slog.Logger) bool { return a == b })); diff != "" {
				t.Errorf("policy (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantLimits, e.exps.Limits()); diff != "" {
				t.Errorf("expectation limits (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReloadSessionLimit: a lower MaxSessions refuses new sessions and keeps
// the ones tracked.
func TestReloadSessionLimit(t *testing.T) {
	e, _ := newTestEngine(masqueradeBinding, dnatBinding)
	w := e.NewWorker()
	e.Reload(Config{MaxSessions: 1})
	runSteps(t, w, []step{
		{"first session tracked", masqC2S(1000, 5000, "NOOP\r\n"), got{Verdict: "accept", Seq: 1000, Ack: 5000, Payload: "NOOP\r\n"}},
	})
	in := build(t, seg{src: outsider, dst: gwPublic, sport: 5000, dport: 21, seq: 1, ack: 1, payload: "NOOP\r\n"})
	w.Handle(in)
	if st := e.Stats(); st.SessionsOpen != 1 || st.SessionsFull != 1 {
		t.Errorf("sessions_open %d, sessions_full %d; want 1 and 1", st.SessionsOpen, st.SessionsFull)
	}
	e.Reload(Config{MaxSessions: 2})
	w.Handle(in)
	if st := e.Stats(); st.SessionsOpen != 2 {
		t.Errorf("after raising the limit: sessions_open %d, want 2", st.SessionsOpen)
	}
}

// TestReloadAllocs: the packet path reads the policy without allocating.
func TestReloadAllocs(t *testing.T) {
	e, _ := newTestEngine()
	if n := testing.AllocsPerRun(100, func() { _ = e.policy().AllowLowPorts }); n != 0 {
		t.Errorf("policy read allocates %v times", n)
	}
}
