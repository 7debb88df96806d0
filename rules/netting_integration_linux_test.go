//go:build integration

package rules

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestCommitterNetting: through the kernel, what one pass sends and what
// the sets hold after it, in a table this Manager made, then in the same
// table adopted by another Manager before and after Reconcile.
func TestCommitterNetting(t *testing.T) {
	requireRoot(t)
	ns, path := newNS(t)
	cfg := DefaultConfig()
	cfg.NetNS = path
	peer, addr := netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("198.51.100.1")
	owner := Flow{Src: netip.MustParseAddrPort("10.0.1.2:40000"), Dst: netip.MustParseAddrPort("203.0.113.2:21")}
	hole := func(port uint16) Hole {
		return Hole{Peer: peer, Addr: addr, Port: port, To: netip.AddrPortFrom(netip.MustParseAddr("10.1.2.3"), port), Timeout: time.Minute, Owner: owner}
	}
	open := func(port uint16) Op { return Op{Kind: OpOpen, Hole: hole(port)} }
	closeOp := func(port uint16) Op { return Op{Kind: OpClose, Hole: hole(port)} }
	holes := func() []uint16 {
		set := nsExec(t, ns, "nft", "list", "set", "ip", "ftpct", "expect")
		xlate := nsExec(t, ns, "nft", "list", "map", "ip", "ftpct", "xlate")
		var ports []uint16
		for port := uint16(3000); port < 3020; port++ {
			key := fmt.Sprintf("192.0.2.7 . 198.51.100.1 . %d ", port)
			inSet, inMap := strings.Contains(set, key), strings.Contains(xlate, key)
			if inSet != inMap {
				t.Errorf("hole %d: in the expect set %v, in the xlate map %v", port, inSet, inMap)
			}
			if inSet {
				ports = append(ports, port)
			}
		}
		return ports
	}
	m := newManager(t, cfg)
	if err := m.Install(); err != nil {
		t.Fatalf("Install: %v", err)
	}
	t.Cleanup(func() { m.Remove() })
	adopted := newManager(t, cfg)
	steps := []struct {
		name       string
		setup      func()
		m          *Manager
		subs       [][]Op
		wantSent   uint64
		wantNetted uint64
		wantHoles  []uint16
	}{
		{
			// A storm: each announcement evicts the one before it.
			name:       "a storm in one pass: only the last hole reaches the kernel",
			m:          m,
			subs:       [][]Op{{open(3000)}, {closeOp(3000), open(3001)}, {closeOp(3001), open(3002)}},
			wantSent:   2,
			wantNetted: 8,
			wantHoles:  []uint16{3002},
		},
		{
			name:      "the next pass deletes the committed hole",
			m:         m,
			subs:      [][]Op{{closeOp(3002), open(3003)}, {closeOp(3003), open(3004)}},
			wantSent:  4,
			wantHoles: []uint16{3004},
			// 3003's add and delete
			wantNetted: 4,
		},
		{
			name:      "a refreshed hole closed in the same pass is deleted",
			m:         m,
			subs:      [][]Op{{open(3004)}, {closeOp(3004)}},
			wantSent:  4,
			wantHoles: nil,
		},
		{
			name:      "setup: a hole left for the adopting Manager",
			m:         m,
			subs:      [][]Op{{open(3010)}},
			wantSent:  2,
			wantHoles: []uint16{3010},
		},
		{
			// The adopting Manager does not know what was left.
			name: "adopted, not reconciled: nothing netted",
			setup: func() {
				if err := adopted.Install(); err != nil {
					t.Fatalf("Install (adopt): %v", err)
				}
			},
			m:         adopted,
			subs:      [][]Op{{open(3011)}, {closeOp(3011)}},
			wantSent:  4,
			wantHoles: []uint16{3010},
		},
		{
			name: "adopted and reconciled: netted again",
			setup: func() {
				left, err := adopted.Reconcile(func(Flow) bool { return true })
				if err != nil {
					t.Fatalf("Reconcile: %v", err)
				}
				if len(left.Holes) != 1 || left.Holes[0].Port != 3010 {
					t.Fatalf("Reconcile kept %v, want the hole 3010", left.Holes)
				}
			},
			m:          adopted,
			subs:       [][]Op{{open(3012)}, {closeOp(3012)}},
			wantNetted: 4,
			wantHoles:  []uint16{3010},
		},
		{
			name:      "adopted and reconciled: a hole left by the earlier run is deleted",
			m:         adopted,
			subs:      [][]Op{{closeOp(3010)}},
			wantSent:  2,
			wantHoles: nil,
		},
	}
	for _, st := range steps {
		if st.setup != nil {
			st.setup()
		}
		c := st.m.Committer()
		res := runPass(t, c, st.subs)
		for i, r := range res {
			if r.Err != nil || r.CloseErr != nil {
				t.Errorf("%s: submission %d: %+v", st.name, i, r)
			}
		}
		sent, netted := c.Elements()
		if sent != st.wantSent || netted != st.wantNetted {
			t.Errorf("%s: sent %d, netted %d elements; want %d, %d", st.name, sent, netted, st.wantSent, st.wantNetted)
		}
		if diff := cmp.Diff(st.wantHoles, holes()); diff != "" {
			t.Errorf("%s: holes in the kernel (-want +got):\n%s", st.name, diff)
		}
		if p := c.Passes(); p != 1 {
			t.Errorf("%s: %d passes, want 1", st.name, p)
		}
	}
}

// TestCommitterPacing: a pass starts at most once per interval unless
// hurried (something waits for it) or stopped.
func TestCommitterPacing(t *testing.T) {
	_, _, m := installed(t, nil)
	h := func(port uint16) Op {
		return Op{Kind: OpOpen, Hole: Hole{Peer: netip.MustParseAddr("192.0.2.7"), Addr: netip.MustParseAddr("198.51.100.1"), Port: port, Timeout: time.Minute}}
	}
	c := m.Committer()
	c.interval = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { c.Run(ctx); close(stopped) }()
	submit := func(port uint16) chan Result {
		done := make(chan Result, 1)
		if err := c.Submit(func(r Result) { done <- r }, h(port)); err != nil {
			t.Fatalf("Submit: %v", err)
		}
		return done
	}
	wait := func(what string, done chan Result) {
		t.Helper()
		select {
		case r := <-done:
			if r.Err != nil {
				t.Errorf("%s: %v", what, r.Err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: not committed", what)
		}
	}
	// The first pass after a quiet interval starts at once.
	wait("first submission", submit(4000))
	// Within the interval: held back...
	second := submit(4001)
	select {
	case <-second:
		t.Fatal("second submission committed within the interval without Hurry")
	case <-time.After(100 * time.Millisecond):
	}
	// ...until something waits for it.
	c.Hurry()
	wait("hurried submission", second)
	// Within the interval again: held back until Run stops, whose last
	// pass commits it.
	third := submit(4002)
	select {
	case <-third:
		t.Fatal("third submission committed within the interval without Hurry")
	case <-time.After(100 * time.Millisecond):
	}
	cancel()
	wait("submission pending at stop", third)
	<-stopped
	if p := c.Passes(); p != 3 {
		t.Errorf("%d passes, want 3", p)
	}
}
