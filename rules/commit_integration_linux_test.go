//go:build integration

package rules

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// committed runs c until every submission made before is committed and
// returns what each done got, in submission order.
func runPass(t testing.TB, c *Committer, subs [][]Op) []Result {
	t.Helper()
	res := make([]Result, len(subs))
	var wg sync.WaitGroup
	for i, ops := range subs {
		wg.Add(1)
		if err := c.Submit(func(r Result) { res[i] = r; wg.Done() }, ops...); err != nil {
			t.Fatalf("Submit: %v", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { c.Run(ctx); close(stopped) }()
	wg.Wait()
	cancel()
	<-stopped
	return res
}

func TestCommitter(t *testing.T) {
	ns, _, m := installed(t, nil)
	peer, addr := netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("198.51.100.1")
	hole := func(port uint16) Hole {
		return Hole{Peer: peer, Addr: addr, Port: port, To: netip.AddrPortFrom(netip.MustParseAddr("10.1.2.3"), port), Timeout: time.Minute}
	}
	open := func(port uint16) Op { return Op{Kind: OpOpen, Hole: hole(port)} }
	closeOp := func(port uint16) Op { return Op{Kind: OpClose, Hole: hole(port)} }
	used := func(port uint16) Hole { h := hole(port); h.Used = true; return h }
	flow := Flow{Src: netip.MustParseAddrPort("10.0.0.1:40000"), Dst: netip.MustParseAddrPort("10.0.0.2:21")}
	tests := []struct {
		name   string
		before [][]string // nft commands run before the pass
		subs   [][]Op
		// wantErr[i]: submission i's adds failed.
		wantErr   []bool
		wantHoles []uint16 // ports in the expect set and xlate map after the pass
		wantSet   []uint16 // ports in the expect set only
		wantHeld  bool
	}{
		{
			name:      "opens of several submissions in one pass",
			subs:      [][]Op{{open(2000)}, {open(2001)}, {open(2002)}},
			wantErr:   []bool{false, false, false},
			wantHoles: []uint16{2000, 2001, 2002},
		},
		{
			name:      "evict and open in one submission",
			subs:      [][]Op{{closeOp(2000), open(2003)}},
			wantErr:   []bool{false},
			wantHoles: []uint16{2001, 2002, 2003},
		},
		{
			// The hole is gone (used or expired) without the ledger
			// knowing: its delete fails the transaction with ENOENT;
			// the opens are committed anyway. (A close of a hole the
			// ledger knows is gone, 2000 and 2006, is not sent.)
			name: "a close of a missing hole fails no one",
			before: [][]string{
				{"delete", "element", "ip", "ftpct", "expect", "{ 192.0.2.7 . 198.51.100.1 . 2002 }"},
				{"delete", "element", "ip", "ftpct", "xlate", "{ 192.0.2.7 . 198.51.100.1 . 2002 }"},
			},
			subs:      [][]Op{{closeOp(2002), open(2004)}, {open(2005)}, {closeOp(2006)}, {closeOp(2000)}},
			wantErr:   []bool{false, false, false, false},
			wantHoles: []uint16{2001, 2003, 2004, 2005},
		},
		{
			// The kernel consumed the element (its data connection
			// came): only the mapping is deleted, and nothing fails.
			name:      "a used hole closes its mapping",
			subs:      [][]Op{{{Kind: OpClose, Hole: used(2001)}}},
			wantErr:   []bool{false},
			wantHoles: []uint16{2003, 2004, 2005},
			wantSet:   []uint16{2001},
		},
		{
			name:      "an invalid hole fails its submission alone",
			subs:      [][]Op{{open(2006)}, {{Kind: OpOpen, Hole: Hole{Peer: peer, Addr: addr, Port: 2007}}}, {closeOp(2001), closeOp(2002), closeOp(2003), closeOp(2004), closeOp(2005)}},
			wantErr:   []bool{false, true, false},
			wantHoles: []uint16{2006},
		},
		{
			name:      "hold with an open",
			subs:      [][]Op{{{Kind: OpHold, Flow: flow}, open(2008)}},
			wantErr:   []bool{false},
			wantHoles: []uint16{2006, 2008},
			wantHeld:  true,
		},
		{
			// Each announcement of a burst evicts the one before it:
			// netted, the pass adds and deletes them again in one
			// transaction that cannot miss, and only the last stays.
			name: "a burst evicting itself in one pass",
			subs: [][]Op{
				{open(2010), closeOp(2010), open(2011)},
				{closeOp(2011), open(2012)},
				{closeOp(2012), open(2013)},
			},
			wantErr:   []bool{false, false, false},
			wantHoles: []uint16{2006, 2008, 2013},
			wantHeld:  true,
		},
		{
			name:      "release, and a release of a flow not held",
			subs:      [][]Op{{{Kind: OpRelease, Flow: flow}}, {{Kind: OpRelease, Flow: flow}, closeOp(2006), closeOp(2008), closeOp(2013)}},
			wantErr:   []bool{false, false},
			wantHoles: nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, args := range tc.before {
				nsExec(t, ns, append([]string{"nft"}, args...)...)
			}
			res := runPass(t, m.Committer(), tc.subs)
			var gotErr []bool
			for i, r := range res {
				gotErr = append(gotErr, r.Err != nil)
				if r.CloseErr != nil {
					t.Errorf("submission %d: CloseErr %v", i, r.CloseErr)
				}
			}
			if diff := cmp.Diff(tc.wantErr, gotErr); diff != "" {
				t.Errorf("failed submissions (-want +got):\n%s", diff)
			}
			set := nsExec(t, ns, "nft", "list", "set", "ip", "ftpct", "expect")
			xlate := nsExec(t, ns, "nft", "list", "map", "ip", "ftpct", "xlate")
			for port := uint16(2000); port < 2015; port++ {
				key := fmt.Sprintf("192.0.2.7 . 198.51.100.1 . %d ", port)
				want := false
				for _, p := range tc.wantHoles {
					want = want || p == port
				}
				inSet := want
				for _, p := range tc.wantSet {
					inSet = inSet || p == port
				}
				if got := strings.Contains(set, key); got != inSet {
					t.Errorf("hole %d in the expect set: %v, want %v:\n%s", port, got, inSet, set)
				}
				if got := strings.Contains(xlate, key); got != want {
					t.Errorf("hole %d in the xlate map: %v, want %v:\n%s", port, got, want, xlate)
				}
			}
			held := nsExec(t, ns, "nft", "list", "set", "ip", "ftpct", "hold")
			if got := strings.Contains(held, "10.0.0.1 . 10.0.0.2 . 40000 . 21"); got != tc.wantHeld {
				t.Errorf("flow held: %v, want %v:\n%s", got, tc.wantHeld, held)
			}
		})
	}

	// A pass whose transaction the kernel rejects settles halves of it
	// again: the one culprit is refused, every other submission committed,
	// in about 2·log2(n) transactions, not one per submission. The culprit
	// maps an expected tuple to another target than its element has
	// (EEXIST, whatever the flags).
	t.Run("one culprit among many", func(t *testing.T) {
		const n = 64
		if res := runPass(t, m.Committer(), [][]Op{{open(3000)}}); res[0].Err != nil {
			t.Fatalf("open: %v", res[0].Err)
		}
		clash := hole(3000)
		clash.To = netip.MustParseAddrPort("10.9.9.9:3000")
		subs := make([][]Op, n)
		for i := range subs {
			subs[i] = []Op{open(uint16(3001 + i))}
		}
		subs[n/3] = []Op{{Kind: OpOpen, Hole: clash}}
		before := m.txs.Load()
		c := m.Committer()
		res := runPass(t, c, subs)
		txs := m.txs.Load() - before
		// One pass (all were submitted before Run), rejected whole:
		// every transaction after its first was a retry.
		if passes, retries := c.Rejections(); passes != 1 || retries != txs-1 {
			t.Errorf("Rejections: %d passes, %d retry transactions; want 1 pass, %d", passes, retries, txs-1)
		}
		for i, r := range res {
			if got, want := r.Err != nil, i == n/3; got != want {
				t.Errorf("submission %d: err %v, want failed %v", i, r.Err, want)
			}
		}
		if txs > 2*7+2 {
			t.Errorf("%d transactions for %d submissions with one culprit, want at most %d", txs, n, 2*7+2)
		}
		t.Logf("%d transactions", txs)
		xlate := nsExec(t, ns, "nft", "list", "map", "ip", "ftpct", "xlate")
		if strings.Contains(xlate, "10.9.9.9") || !strings.Contains(xlate, ": 10.1.2.3 . 3000") || !strings.Contains(xlate, ": 10.1.2.3 . 3064") {
			t.Errorf("the first mapping changed, or the last submission's is missing:\n%s", xlate)
		}
		closes := make([][]Op, n+1)
		for i := range closes {
			closes[i] = []Op{closeOp(uint16(3000 + i))}
		}
		runPass(t, m.Committer(), closes)
	})

	// A rejected pass (here by a close of a hole already gone, ENOENT)
	// still applies each key's opens and closes in their order: a hole
	// opened, closed and opened again to another target ends with the
	// second target. (Settled request by request without each one's
	// deletes, the first target stayed and the second open failed with
	// EEXIST.)
	t.Run("a rejected pass keeps each key's order", func(t *testing.T) {
		other := hole(3100)
		other.To = netip.MustParseAddrPort("10.9.9.9:3100")
		res := runPass(t, m.Committer(), [][]Op{{open(3100)}, {closeOp(3100)}, {{Kind: OpOpen, Hole: other}}, {closeOp(3199)}})
		for i, r := range res {
			if r.Err != nil || r.CloseErr != nil {
				t.Errorf("submission %d: %v %v", i, r.Err, r.CloseErr)
			}
		}
		if xlate := nsExec(t, ns, "nft", "list", "map", "ip", "ftpct", "xlate"); !strings.Contains(xlate, ": 10.9.9.9 . 3100") {
			t.Errorf("hole 3100 does not map to its second target:\n%s", xlate)
		}
		runPass(t, m.Committer(), [][]Op{{{Kind: OpClose, Hole: other}}})
	})

	// Cancelled: what was submitted is committed in a last pass and told
	// before Run returns; later Submits are refused.
	t.Run("stopped", func(t *testing.T) {
		c := m.Committer()
		var told []Result
		if err := c.Submit(func(r Result) { told = append(told, r) }, open(2014)); err != nil {
			t.Fatalf("Submit: %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		c.Run(ctx)
		if diff := cmp.Diff([]Result{{}}, told, cmp.Comparer(func(a, b error) bool { return (a == nil) == (b == nil) })); diff != "" {
			t.Errorf("results of the last pass (-want +got):\n%s", diff)
		}
		if set := nsExec(t, ns, "nft", "list", "set", "ip", "ftpct", "expect"); !strings.Contains(set, ". 2014 ") {
			t.Errorf("the last pass did not open its hole:\n%s", set)
		}
		if err := c.Submit(func(Result) { t.Error("done called") }, open(2009)); !errors.Is(err, ErrClosed) {
			t.Errorf("Submit after Run = %v, want ErrClosed", err)
		}
	})
}

// BenchmarkCommit: k announcements in flight at once (k sessions), each
// opening one hole, through the Committer (group commit) and one by one
// (Manager.Open, one transaction each). ns/op is per hole.
//
//	go test -tags integration -run '^$' -bench Commit -benchtime 4000x ./rules/
func BenchmarkCommit(b *testing.B) {
	if testing.Short() {
		b.Skip("needs the kernel")
	}
	_, path := newNS(b)
	cfg := DefaultConfig()
	cfg.NetNS = path
	m := newManager(b, cfg)
	if err := m.Install(); err != nil {
		b.Fatalf("Install: %v", err)
	}
	b.Cleanup(func() { m.Remove() })
	peer := netip.MustParseAddr("192.0.2.7")
	hole := func(g, i int) Hole {
		// Unique per goroutine and iteration (within 60000 ports per
		// address), translated like a masqueraded PORT.
		n := g*1_000_003 + i
		addr := netip.AddrFrom4([4]byte{198, 51, byte(n / 60000 % 256), 1})
		port := uint16(1024 + n%60000)
		return Hole{Peer: peer, Addr: addr, Port: port, To: netip.AddrPortFrom(netip.MustParseAddr("10.1.2.3"), port), Timeout: 2 * time.Second}
	}
	for _, k := range []int{1, 8, 64} {
		run := func(b *testing.B, open func(h Hole) error) {
			var wg sync.WaitGroup
			errc := make(chan error, k)
			per := (b.N + k - 1) / k
			b.ResetTimer()
			for g := range k {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range per {
						if err := open(hole(g, i)); err != nil {
							errc <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			close(errc)
			for err := range errc {
				b.Fatal(err)
			}
		}
		b.Run(fmt.Sprintf("one-by-one/in-flight=%d", k), func(b *testing.B) {
			run(b, m.Open)
		})
		b.Run(fmt.Sprintf("committer/in-flight=%d", k), func(b *testing.B) {
			c := m.Committer()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go c.Run(ctx)
			defer func() { b.ReportMetric(float64(b.N)/float64(c.Passes()), "holes/pass") }()
			run(b, func(h Hole) error {
				done := make(chan error, 1)
				if err := c.Submit(func(r Result) { done <- r.Err }, Op{Kind: OpOpen, Hole: h}); err != nil {
					return err
				}
				c.Hurry() // it waits, as an announcement's first resize
				return <-done
			})
		})
	}
}
