//go:build integration

package rules

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/nftables"
)

// BenchmarkCommitPass: one committer pass of a storm, as the profile of
// 2026-11-30 (BENCHMARKS.md, branch cpu) saw them: 18 announcements, each
// evicting its session's last hole (committed in the pass before) and
// opening a new one with its DNAT mapping and owner. "flush" is the
// transaction alone (Manager.flush: 36 adds, 36 deletes), "commit" the
// whole pass (prepare, plan, ledger, flush, the callers told). The holes
// alternate between two sets of ports, so every pass is like the last.
//
//	go test -tags integration -run '^$' -bench CommitPass -count 6 ./rules/
func BenchmarkCommitPass(b *testing.B) {
	_, path := newNS(b)
	cfg := DefaultConfig()
	cfg.NetNS, cfg.Accept, cfg.IPv6 = path, false, false
	m := newManager(b, cfg)
	if err := m.Install(); err != nil {
		b.Fatalf("Install: %v", err)
	}
	b.Cleanup(func() { m.Remove() })
	const perPass = 18
	hole := func(gen, i int) Hole {
		port := uint16(2000 + gen%2*1000 + i)
		return Hole{Peer: netip.MustParseAddr("192.0.2.7"), Addr: netip.MustParseAddr("198.51.100.1"), Port: port,
			To: netip.AddrPortFrom(netip.MustParseAddr("10.1.2.3"), port), Timeout: time.Minute,
			Owner: Flow{Src: netip.AddrPortFrom(netip.MustParseAddr("10.1.2.3"), uint16(40000+i)), Dst: netip.MustParseAddrPort("192.0.2.7:21")}}
	}
	o := m.tables[0]
	b.Run("flush", func(b *testing.B) {
		var add, del [2]setElems
		for gen := range 2 {
			for i := range perPass {
				h := hole(gen, i)
				add[gen].put(o.xlate, nftables.SetElement{Key: h.expectKey(), Val: h.xlateValue(), Timeout: h.timeoutDuration()}, i)
				add[gen].put(o.expect, nftables.SetElement{Key: h.expectKey(), Timeout: h.timeoutDuration(), Comment: h.Owner.String()}, i)
				del[gen].put(o.expect, nftables.SetElement{Key: h.expectKey()}, i)
				del[gen].put(o.xlate, nftables.SetElement{Key: h.expectKey()}, i)
			}
		}
		if _, err := m.flush(setElems{}, add[0], setElems{}, setElems{}); err != nil {
			b.Fatal(err)
		}
		gen := 1
		b.ReportAllocs()
		for b.Loop() {
			if _, err := m.flush(setElems{}, add[gen], setElems{}, del[1-gen]); err != nil {
				b.Fatal(err)
			}
			gen = 1 - gen
		}
		if _, err := m.flush(setElems{}, setElems{}, setElems{}, del[1-gen]); err != nil {
			b.Fatal(err)
		}
	})
	b.Run("commit", func(b *testing.B) {
		c := m.Committer()
		failed := 0
		done := func(r Result) {
			if r.Err != nil || r.CloseErr != nil {
				failed++
			}
		}
		pass := func(gen int) {
			reqs := make([]request, perPass)
			for i := range reqs {
				reqs[i] = request{ops: []Op{{Kind: OpClose, Hole: hole(gen-1, i)}, {Kind: OpOpen, Hole: hole(gen, i)}}, done: done}
			}
			c.commit(reqs)
		}
		pass(0)
		gen := 1
		b.ReportAllocs()
		for b.Loop() {
			pass(gen)
			gen++
		}
		if failed > 0 {
			b.Fatalf("%d requests failed", failed)
		}
		if rej, _ := c.Rejections(); rej > 0 {
			b.Fatalf("%d passes rejected", rej)
		}
	})
}
