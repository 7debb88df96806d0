package engine

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ftpct/ftpct/conntrack"
)

// liveKernel is a kernel conntrack table that can forget entries, counting
// lookups; safe for concurrent use.
type liveKernel struct {
	mu      sync.Mutex
	live    map[conntrack.Tuple]conntrack.Binding
	lookups int
}

func newLiveKernel() *liveKernel {
	return &liveKernel{live: map[conntrack.Tuple]conntrack.Binding{}}
}

func (k *liveKernel) Lookup(t conntrack.Tuple) (conntrack.Binding, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.lookups++
	if b, ok := k.live[t]; ok {
		return b, nil
	}
	return conntrack.Binding{}, conntrack.ErrNoEntry
}

func (k *liveKernel) add(b conntrack.Binding) {
	k.mu.Lock()
	k.live[b.Orig], k.live[b.Reply] = b, b
	k.mu.Unlock()
}

func (k *liveKernel) forget(b conntrack.Binding) {
	k.mu.Lock()
	delete(k.live, b.Orig)
	delete(k.live, b.Reply)
	k.mu.Unlock()
}

func (k *liveKernel) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lookups
}

// masqBinding is masqueraded control connection number i.
func masqBinding(i int) conntrack.Binding {
	cli := netip.AddrFrom4([4]byte{10, 0, byte(1 + i>>8), byte(i)})
	srv, pub := netip.MustParseAddr("203.0.113.2"), netip.MustParseAddr("203.0.113.1")
	port := uint16(20000 + i)
	return conntrack.Binding{
		Orig:  conntrack.Tuple{Src: cli, Dst: srv, SrcPort: port, DstPort: 21},
		Reply: conntrack.Tuple{Src: srv, Dst: pub, SrcPort: 21, DstPort: port},
	}
}

// goneEngine is an engine over k with n sessions learned at t0, all of
// them in k.
func goneEngine(t *testing.T, k *liveKernel, n int, t0 time.Time) (*Engine, []*conntrack.Session) {
	t.Helper()
	e := New(Config{IdleCheck: time.Minute}, k, &fakeHoles{})
	e.now = func() time.Time { return t0 }
	var list []*conntrack.Session
	for i := range n {
		b := masqBinding(i)
		k.add(b)
		s, err := e.sessions.Add(b, t0)
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, s)
	}
	return e, list
}

// A DESTROY event forgets the session of its connection once the kernel
// confirms the entry is gone, and nothing else.
func TestSessionGone(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name        string
		event       func(b conntrack.Binding) conntrack.Tuple
		kernelKeeps bool // the kernel has an entry for the tuple (reused)
		events      int
		wantOpen    int
		wantLookups int
		wantEnded   uint64
	}{
		{name: "ended", event: orig, events: 1, wantOpen: 0, wantLookups: 1, wantEnded: 1},
		{name: "event twice", event: orig, events: 2, wantOpen: 0, wantLookups: 1, wantEnded: 1},
		{name: "tuple reused since", event: orig, kernelKeeps: true, events: 1, wantOpen: 1, wantLookups: 1},
		{name: "reply tuple is not a connection's original", event: func(b conntrack.Binding) conntrack.Tuple { return b.Reply }, events: 1, wantOpen: 1},
		{name: "untracked connection", event: func(conntrack.Binding) conntrack.Tuple { return masqBinding(7).Orig }, events: 1, wantOpen: 1},
		{name: "same key, another NAT", event: func(b conntrack.Binding) conntrack.Tuple {
			o := b.Orig
			o.Dst = netip.MustParseAddr("203.0.113.9")
			return o
		}, events: 1, wantOpen: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newLiveKernel()
			e, list := goneEngine(t, k, 1, t0)
			b := list[0].Binding
			if !tt.kernelKeeps {
				k.forget(b)
			}
			for range tt.events {
				e.SessionGone(tt.event(b))
			}
			st := e.Stats()
			type result struct {
				Open, Lookups int
				Ended, Swept  uint64
			}
			got := result{e.sessions.Len(), k.count(), st.SessionsEnded, st.SessionsSwept}
			want := result{tt.wantOpen, tt.wantLookups, tt.wantEnded, 0}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func orig(b conntrack.Binding) conntrack.Tuple { return b.Orig }

// The fallback sweep checks a share of the table per step, so that every
// session is checked once per sweepRounds × IdleCheck; it forgets only
// sessions idle for IdleCheck (a sixth of it once closing) that the kernel
// no longer has.
func TestSweep(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	const n = 25
	step := time.Minute // a share of ceil(25 × 1 / 10) = 3 per step
	type state struct {
		busy, closing, inKernel bool
	}
	tests := []struct {
		name string
		s    state
		gone bool
	}{
		{name: "idle, ended", s: state{}, gone: true},
		{name: "idle, still tracked by the kernel", s: state{inKernel: true}},
		{name: "busy, ended (not checked yet)", s: state{busy: true}},
		{name: "closing, idle a sixth of IdleCheck, ended", s: state{busy: true, closing: true}, gone: true},
		{name: "closing, still tracked", s: state{busy: true, closing: true, inKernel: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newLiveKernel()
			e, list := goneEngine(t, k, n, t0)
			now := t0.Add(2 * time.Minute)
			for _, s := range list {
				s.Lock()
				if tt.s.busy {
					s.Touch(now.Add(-20 * time.Second)) // idle 20 s: > 1m/6, < 1m
				}
				s.Closing = tt.s.closing
				s.Unlock()
				if !tt.s.inKernel {
					k.forget(s.Binding)
				}
			}
			e.sweep(now, step)
			if got := k.count(); got > 3 {
				t.Errorf("first step: %d lookups, want at most a share of 3", got)
			}
			// A round ends when the walk is back at the top; the share
			// shrinks with the table.
			for i := 0; e.cursor != 0; i++ {
				if i == n {
					t.Fatalf("no round done in %d steps", n)
				}
				e.sweep(now, step)
			}
			wantOpen, wantEnded := n, uint64(0)
			if tt.gone {
				wantOpen, wantEnded = 0, n
			}
			st := e.Stats()
			got := [3]uint64{uint64(e.sessions.Len()), st.SessionsEnded, st.SessionsSwept}
			if diff := cmp.Diff([3]uint64{uint64(wantOpen), wantEnded, wantEnded}, got); diff != "" {
				t.Errorf("open, ended, swept after a round (-want +got):\n%s", diff)
			}
		})
	}
}

// With events on, Run only sweeps slowly; after events were lost it
// checks every idle session at once.
func TestRunAfterEventsLost(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	const n = 100 // a sweep share of 1 per second (10 minutes a round)
	tests := []struct {
		name     string
		lose     bool
		wait     time.Duration
		wantOpen func(open int) bool
		want     string
	}{
		{name: "events lost: all at once", lose: true, wait: 5 * time.Second, wantOpen: func(o int) bool { return o == 0 }, want: "0"},
		{name: "events flowing: a share per second", wait: 2500 * time.Millisecond, wantOpen: func(o int) bool { return o >= n-4 }, want: "at least 96"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newLiveKernel()
			e, list := goneEngine(t, k, n, t0)
			for _, s := range list {
				k.forget(s.Binding)
			}
			e.now = func() time.Time { return t0.Add(time.Hour) }
			e.KernelEvents(true)
			if tt.lose {
				e.EventsLost()
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- e.Run(ctx) }()
			deadline := time.Now().Add(tt.wait)
			for time.Now().Before(deadline) && e.sessions.Len() > 0 && tt.lose {
				time.Sleep(50 * time.Millisecond)
			}
			if !tt.lose {
				time.Sleep(tt.wait)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if open := e.sessions.Len(); !tt.wantOpen(open) {
				t.Errorf("%d sessions open, want %s", open, tt.want)
			}
			wantLost := uint64(0)
			if tt.lose {
				wantLost = 1
			}
			if got := e.Stats().EventsLost; got != wantLost {
				t.Errorf("conntrack_events_lost = %d, want %d", got, wantLost)
			}
		})
	}
}
