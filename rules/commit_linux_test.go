package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
)

// TestPlanNetting: what a pass sends to the kernel, per element, given
// what the ledger knows was in the kernel before the pass.
func TestPlanNetting(t *testing.T) {
	peer, addr := netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("198.51.100.1")
	hole := func(port uint16) Hole {
		return Hole{Peer: peer, Addr: addr, Port: port, To: netip.AddrPortFrom(netip.MustParseAddr("10.1.2.3"), port), Timeout: time.Minute}
	}
	open := func(port uint16) Op { return Op{Kind: OpOpen, Hole: hole(port)} }
	closeOp := func(port uint16) Op { return Op{Kind: OpClose, Hole: hole(port)} }
	used := func(port uint16) Op { h := hole(port); h.Used = true; return Op{Kind: OpClose, Hole: h} }
	flow := Flow{Src: netip.MustParseAddrPort("10.0.0.1:40000"), Dst: netip.MustParseAddrPort("10.0.0.2:21")}
	tests := []struct {
		name       string
		incomplete bool     // the table was adopted and not reconciled
		before     []uint16 // holes committed before the pass
		expired    []uint16 // holes committed before and expired since
		subs       [][]Op
		failed     []int // submissions whose adds cannot be made
		// want is what is sent: "pre|add|opdel|pure set port".
		want       []string
		wantNetted int
	}{
		{
			name:       "added and deleted in one pass, never in the kernel: nothing sent",
			subs:       [][]Op{{open(2000)}, {closeOp(2000), open(2001)}},
			want:       []string{"add xlate 2001", "add expect 2001"},
			wantNetted: 4,
		},
		{
			name:       "a storm's evictions: only the last hole is sent",
			subs:       [][]Op{{open(2000)}, {closeOp(2000), open(2001)}, {closeOp(2001), open(2002)}, {closeOp(2002), open(2003)}},
			want:       []string{"add xlate 2003", "add expect 2003"},
			wantNetted: 12,
		},
		{
			name:   "committed before, deleted now: the delete is sent",
			before: []uint16{2000},
			subs:   [][]Op{{closeOp(2000), open(2001)}},
			want:   []string{"add xlate 2001", "add expect 2001", "pure expect 2000", "pure xlate 2000"},
		},
		{
			// A refresh of an element in the kernel, then its close:
			// the add may be a no-op, the delete must go.
			name:       "committed before, opened again and deleted: add and delete sent",
			before:     []uint16{2000},
			subs:       [][]Op{{open(2000)}, {closeOp(2000)}},
			want:       []string{"add xlate 2000", "add expect 2000", "opdel xlate 2000", "opdel expect 2000"},
			wantNetted: 0,
		},
		{
			name:       "adopted table not reconciled: nothing counts as absent",
			incomplete: true,
			subs:       [][]Op{{open(2000)}, {closeOp(2000)}, {closeOp(2005)}},
			want:       []string{"add xlate 2000", "add expect 2000", "opdel xlate 2000", "opdel expect 2000", "pure expect 2005", "pure xlate 2005"},
		},
		{
			name:       "a delete of a hole surely gone is not sent",
			subs:       [][]Op{{closeOp(2000)}},
			wantNetted: 2,
		},
		{
			name:       "a delete of a hole whose timeout passed is not sent",
			expired:    []uint16{2000},
			subs:       [][]Op{{closeOp(2000)}},
			wantNetted: 2,
		},
		{
			name:       "closed and opened again, not in the kernel before: no delete first",
			subs:       [][]Op{{closeOp(2000)}, {open(2000)}},
			want:       []string{"add expect 2000", "add xlate 2000"},
			wantNetted: 2,
		},
		{
			name:   "closed and opened again, in the kernel before: deleted first",
			before: []uint16{2000},
			subs:   [][]Op{{closeOp(2000)}, {open(2000)}},
			want:   []string{"pre expect 2000", "pre xlate 2000", "add expect 2000", "add xlate 2000"},
		},
		{
			// The kernel consumed the element: only the mapping goes.
			name:   "a used hole in the kernel: its mapping is deleted",
			before: []uint16{2000},
			subs:   [][]Op{{used(2000)}},
			want:   []string{"pure xlate 2000"},
		},
		{
			// Held flows are not in the ledger: never netted.
			name: "hold and release in one pass are both sent",
			subs: [][]Op{{{Kind: OpHold, Flow: flow}}, {{Kind: OpRelease, Flow: flow}}},
			want: []string{"add hold 0", "opdel hold 0"},
		},
		{
			name:       "a failed submission's operations are left out",
			subs:       [][]Op{{open(2000)}, {closeOp(2000), open(2001)}},
			failed:     []int{1},
			want:       []string{"add xlate 2000", "add expect 2000"},
			wantNetted: 0,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &Manager{tables: []*tableObjs{newTableObjs("ftpct", familyIPv4)}}
			o := m.tables[0]
			now := time.Now()
			if !tc.incomplete {
				m.known.reset(0)
			}
			for _, p := range tc.before {
				k := hole(p).expectKey()
				m.known.added(0, ledgerExpect, k, now, time.Minute)
				m.known.added(0, ledgerXlate, k, now, time.Minute)
			}
			for _, p := range tc.expired {
				k := hole(p).expectKey()
				m.known.added(0, ledgerExpect, k, now.Add(-time.Hour), time.Minute)
				m.known.added(0, ledgerXlate, k, now.Add(-time.Hour), time.Minute)
			}
			ops := make([][]prepared, len(tc.subs))
			for i, sub := range tc.subs {
				var res Result
				if ops[i], res = m.prepare(sub); res.Err != nil || res.CloseErr != nil {
					t.Fatalf("prepare %d: %+v", i, res)
				}
			}
			live := func(i int) bool {
				for _, f := range tc.failed {
					if f == i {
						return false
					}
				}
				return true
			}
			p := plan(ops, live, m.absentAt(now))
			var got []string
			for _, part := range []struct {
				name string
				e    setElems
			}{{"pre", p.pre}, {"add", p.add}, {"opdel", p.opdel}, {"pure", p.pure}} {
				for _, s := range part.e.sets {
					for _, el := range part.e.elems[s] {
						port := 0
						if s != o.hold {
							var h Hole
							parseExpectKey(el.Key, 4, &h)
							port = int(h.Port)
						}
						got = append(got, fmt.Sprintf("%s %s %d", part.name, s.Name, port))
					}
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("sent (-want +got):\n%s", diff)
			}
			if p.netted != tc.wantNetted {
				t.Errorf("netted %d, want %d", p.netted, tc.wantNetted)
			}
		})
	}
}

// TestRecord: a committed transaction updates the ledger: adds may be in
// the kernel, deletes are not; plan then nets by it.
func TestRecord(t *testing.T) {
	m := &Manager{tables: []*tableObjs{newTableObjs("ftpct", familyIPv4)}}
	m.known.reset(0)
	o := m.tables[0]
	key := Hole{Peer: netip.MustParseAddr("192.0.2.7"), Addr: netip.MustParseAddr("198.51.100.1"), Port: 2000}.expectKey()
	el := nftables.SetElement{Key: key, Timeout: time.Minute}
	var add, del setElems
	add.put(o.expect, el, 0)
	add.put(o.xlate, el, 0)
	del.put(o.expect, nftables.SetElement{Key: key}, 0)
	absent := func() [2]bool {
		a := m.absentAt(time.Now())
		return [2]bool{a(o, o.expect, key), a(o, o.xlate, key)}
	}
	if got := absent(); got != [2]bool{true, true} {
		t.Fatalf("before: absent %v, want both", got)
	}
	m.record(setElems{}, add, setElems{}, setElems{})
	if got := absent(); got != [2]bool{false, false} {
		t.Fatalf("after the add: absent %v, want neither", got)
	}
	m.record(setElems{}, setElems{}, setElems{}, del)
	if got := absent(); got != [2]bool{true, false} {
		t.Fatalf("after the expect delete: absent %v, want the expect element only", got)
	}
	// Added and deleted again in one transaction: gone.
	m.record(setElems{}, add, del, setElems{})
	if got := absent(); got != [2]bool{true, false} {
		t.Fatalf("after add and delete: absent %v, want the expect element only", got)
	}
	if a := m.absentAt(time.Now()); a(o, o.hold, key) {
		t.Error("a held flow counts as absent; the ledger does not keep them")
	}
}

// TestPlannerScratchShrinks: the planner's scratch, kept between passes,
// follows the passes of now: after one huge pass (a storm's pass that
// waited for the CPU), small passes make it small again.
func TestPlannerScratchShrinks(t *testing.T) {
	m := &Manager{tables: []*tableObjs{newTableObjs("ftpct", familyIPv4)}}
	peer, addr := netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("198.51.100.1")
	pass := func(n int) [][]prepared {
		ops := make([][]prepared, n)
		for i := range ops {
			h := Hole{Peer: peer, Addr: addr, Port: uint16(2000 + i), Timeout: time.Minute}
			var res Result
			if ops[i], res = m.prepare([]Op{{Kind: OpOpen, Hole: h}}); res.Err != nil {
				t.Fatal(res.Err)
			}
		}
		return ops
	}
	all := func(int) bool { return true }
	var pl planner
	pl.plan(pass(20000), all, nil)
	big := cap(pl.seqs)
	if big < 20000 {
		t.Fatalf("scratch of %d for 20000 holes", big)
	}
	for range 2 {
		pl.plan(pass(3), all, nil)
	}
	if c := cap(pl.seqs); c >= shrinkScratch {
		t.Errorf("scratch of %d after small passes (was %d), want under %d", c, big, shrinkScratch)
	}
	// A steady pass size keeps its scratch.
	pl.plan(pass(2000), all, nil)
	steady := cap(pl.seqs)
	pl.plan(pass(1500), all, nil)
	if c := cap(pl.seqs); c != steady {
		t.Errorf("scratch %d made again for a pass of 1500 after one of 2000 (was %d)", c, steady)
	}
}

// fakeNftables is the kernel for the Manager's element transactions: it
// rejects, with ENOENT, every transaction deleting an element whose key is
// missing (the key of an element the kernel no longer has), and accepts
// every other; it counts the transactions.
type fakeNftables struct {
	fakeKernel
	txs int
}

func (f *fakeNftables) send(b []byte) error {
	f.txs++
	return f.fakeKernel.send(b)
}

// TestCommitterRejections: a pass the kernel rejects whole is counted with
// the transactions its retries took, and logged at warn with the kernel's
// error and the pass's size; the first at once, then at most one line per
// interval, which tells how many were not logged.
func TestCommitterRejections(t *testing.T) {
	peer, addr := netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("198.51.100.1")
	hole := func(port uint16) Hole {
		return Hole{Peer: peer, Addr: addr, Port: port, To: netip.AddrPortFrom(netip.MustParseAddr("10.1.2.3"), port), Timeout: time.Minute}
	}
	const gone = 2999 // a hole the kernel no longer has (used, expired)
	// pass: n requests, each opening its own hole; request culprit (if
	// not -1) also closes the missing hole.
	pass := func(base uint16, n, culprit int) []request {
		reqs := make([]request, n)
		for i := range reqs {
			reqs[i].ops = []Op{{Kind: OpOpen, Hole: hole(base + uint16(i))}}
			if i == culprit {
				reqs[i].ops = append(reqs[i].ops, Op{Kind: OpClose, Hole: hole(gone)})
			}
		}
		return reqs
	}
	type logLine struct {
		Level    string
		Err      string
		Elements int
		Requests int
		Retries  uint64 `json:"retry_transactions"`
		Unlogged uint64 `json:"unlogged_since_last"`
	}
	tests := []struct {
		name         string
		passes       [][]request
		every        time.Duration // between log lines
		lastLogAgo   time.Duration // before the last pass: the last line is made this old
		wantRejected uint64
		wantLines    []logLine
	}{
		{
			name:   "passes committed whole: nothing counted or logged",
			passes: [][]request{pass(2000, 4, -1), pass(2010, 1, -1)},
			every:  time.Hour,
		},
		{
			// 8 requests, the 6th at fault; 2 elements per open, 2
			// per close. Transactions: the whole, [0,4), [4,8), [4,6),
			// [4,5), [5,6), then its add alone and its 2 deletes one
			// by one, [6,8).
			name:         "one missing close among eight requests",
			passes:       [][]request{pass(2000, 8, 5)},
			every:        time.Hour,
			wantRejected: 1,
			wantLines:    []logLine{{Level: "WARN", Elements: 18, Requests: 8, Retries: 9}},
		},
		{
			name:         "a single request at fault",
			passes:       [][]request{pass(2000, 1, 0)},
			every:        time.Hour,
			wantRejected: 1,
			// The whole; then its add alone, its 2 deletes one by one.
			wantLines: []logLine{{Level: "WARN", Elements: 4, Requests: 1, Retries: 3}},
		},
		{
			name:         "rate limit: one line for three rejected passes",
			passes:       [][]request{pass(2000, 2, 1), pass(2010, 2, 0), pass(2020, 2, 1)},
			every:        time.Hour,
			wantRejected: 3,
			wantLines:    []logLine{{Level: "WARN", Elements: 6, Requests: 2, Retries: 5}},
		},
		{
			name:         "the next line after the interval counts those not logged",
			passes:       [][]request{pass(2000, 2, 1), pass(2010, 2, 0), pass(2020, 2, 1), pass(2030, 4, 3)},
			every:        time.Minute,
			lastLogAgo:   2 * time.Minute,
			wantRejected: 4,
			wantLines: []logLine{
				{Level: "WARN", Elements: 6, Requests: 2, Retries: 5},
				{Level: "WARN", Elements: 10, Requests: 4, Retries: 7, Unlogged: 2},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeNftables{fakeKernel: fakeKernel{missing: [][]byte{hole(gone).expectKey()}}}
			m := &Manager{cfg: DefaultConfig(), elems: newElemBatch(fake), tables: []*tableObjs{newTableObjs("ftpct", familyIPv4)}}
			c := m.Committer()
			var logs bytes.Buffer
			c.SetLogger(slog.New(slog.NewJSONHandler(&logs, nil)))
			c.rejectLog.every = tt.every
			var failed int
			for i, reqs := range tt.passes {
				if i == len(tt.passes)-1 && tt.lastLogAgo > 0 {
					c.rejectLog.last = time.Now().Add(-tt.lastLogAgo)
				}
				for j := range reqs {
					reqs[j].done = func(r Result) {
						if r.Err != nil || r.CloseErr != nil {
							failed++
						}
					}
				}
				c.commit(reqs)
			}
			if failed > 0 {
				t.Errorf("%d requests failed; a missing element fails no one", failed)
			}
			passes, retries := c.Rejections()
			if passes != tt.wantRejected {
				t.Errorf("Rejections: %d passes, want %d", passes, tt.wantRejected)
			}
			// Every transaction beyond one per pass was a retry.
			if want := uint64(fake.txs - len(tt.passes)); retries != want {
				t.Errorf("Rejections: %d retry transactions, want %d (%d transactions for %d passes)", retries, want, fake.txs, len(tt.passes))
			}
			var got []logLine
			for line := range strings.Lines(logs.String()) {
				var l logLine
				if err := json.Unmarshal([]byte(line), &l); err != nil {
					t.Fatalf("log line %q: %v", line, err)
				}
				if !strings.Contains(l.Err, "no such file or directory") {
					t.Errorf("log line %q: want the kernel's error (ENOENT)", line)
				}
				l.Err = ""
				got = append(got, l)
			}
			if diff := cmp.Diff(tt.wantLines, got); diff != "" {
				t.Errorf("log lines (-want +got):\n%s", diff)
			}
		})
	}
}
