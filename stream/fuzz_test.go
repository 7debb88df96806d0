package stream

import (
	"testing"

	"github.com/ftpct/ftpct/seqnum"
)

// FuzzHalf drives one direction with rewrites, acknowledgements and
// retransmitted rewrites as the fuzzer chooses, from a start near the
// wrap-around, and checks after every step what the normaliser promises:
// records stay sorted and apart, at most MaxRecords; a position outside
// every rewrite maps to the wire and back to itself; an acknowledgement
// moves no position at or after it; Overlapping finds exactly the records a
// range shares bytes with; and Restore(Snapshot()) maps every position after
// the newest rewrite as before.
func FuzzHalf(f *testing.F) {
	f.Add(uint32(0xffffff00), []byte{0x01, 0x11, 0x82, 0x05, 0x33, 0x91, 0x02, 0xc4})
	f.Add(uint32(100), []byte{0x10, 0x10, 0x10, 0x10, 0xa0, 0x10, 0xe0})
	f.Add(uint32(0xfffffff0), make([]byte, 80))
	f.Fuzz(func(t *testing.T, isn uint32, ops []byte) {
		ops = ops[:min(len(ops), 200)]
		start := seqnum.Value(isn)
		h := Half{Started: true, Next: start}
		for i, op := range ops {
			switch op >> 6 {
			case 0, 1: // a rewrite a little after the newest
				pos := h.Next.Add(int32(op & 0x0f))
				n := 1 + int(op>>4&0x3)*5
				d := int16(op&0x7) - int16(min(n-1, 3))
				h.Next = pos.Add(int32(n))
				_ = h.Add(Record{Pos: pos, OrigLen: uint16(n), Delta: d, Tag: uint64(i)})
			case 2: // an acknowledgement somewhere before Next
				ack := h.Next.Add(-int32(op & 0x3f))
				probes := probesAfter(ack, h.Next)
				before := mapAll(&h, probes)
				h.Acknowledge(ack)
				if after := mapAll(&h, probes); after != before {
					t.Fatalf("step %d: acknowledging %d moved positions after it: %v, was %v", i, ack, after, before)
				}
			case 3: // a retransmission of a kept rewrite
				if recs := h.Records(); len(recs) > 0 {
					r := recs[int(op&0x3f)%len(recs)]
					if err := h.Add(r); err != nil {
						t.Fatalf("step %d: Add of kept %+v: %v", i, r, err)
					}
				}
			}
			check(t, &h, start)
		}
	})
}

func probesAfter(from, to seqnum.Value) (p [8]seqnum.Value) {
	span := max(to.Diff(from), 1)
	for i := range p {
		p[i] = from.Add(int32(i) * span / 7)
	}
	return p
}

func mapAll(h *Half, probes [8]seqnum.Value) (out [8]seqnum.Value) {
	for i, s := range probes {
		out[i] = h.MapSeq(s)
	}
	return out
}

func check(t *testing.T, h *Half, start seqnum.Value) {
	t.Helper()
	recs := h.Records()
	if len(recs) > MaxRecords {
		t.Fatalf("%d records", len(recs))
	}
	if spilled := h.spill != nil; spilled != (len(recs) > inlineRecords) {
		t.Fatalf("%d records kept with a spill block %v: a burst's block is taken past %d and given back at it", len(recs), spilled, inlineRecords)
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].Pos.Before(recs[i-1].Range().End) {
			t.Fatalf("records %d and %d overlap or are unsorted: %+v %+v", i-1, i, recs[i-1], recs[i])
		}
	}

	from := start.Add(-8)
	if h.Next.Diff(from) > 300 {
		from = h.Next.Add(-300)
	}
	for s := from; s != h.Next.Add(8); s++ {
		if !inside(h, s) && h.UnmapAck(h.MapSeq(s)) != s {
			t.Fatalf("UnmapAck(MapSeq(%d)) = %d; records %+v base %d", s, h.UnmapAck(h.MapSeq(s)), recs, h.Base())
		}
	}
	for _, seg := range []seqnum.Range{seqnum.RangeOf(start, 7), seqnum.RangeOf(h.Next.Add(-12), 9), {Start: start, End: h.Next}} {
		var want []Record
		for i := range recs {
			if recs[i].Range().Overlaps(seg) {
				want = append(want, recs[i])
			}
		}
		got := h.Overlapping(seg)
		if len(got) != len(want) || (len(got) > 0 && got[0] != want[0]) {
			t.Fatalf("Overlapping(%v) = %+v, want %+v", seg, got, want)
		}
	}
	var r Half
	r.Restore(h.Snapshot())
	after := h.Next.Add(-40)
	if len(recs) > 0 && recs[len(recs)-1].Pos.Add(1).After(after) {
		after = recs[len(recs)-1].Pos.Add(1)
	}
	for s := after; s != h.Next.Add(8); s++ {
		if r.MapSeq(s) != h.MapSeq(s) {
			t.Fatalf("restored MapSeq(%d) = %d, want %d (summary %+v)", s, r.MapSeq(s), h.MapSeq(s), h.Snapshot())
		}
	}
	if r.Snapshot() != h.Snapshot() {
		t.Fatalf("Snapshot of the restored %+v, want %+v", r.Snapshot(), h.Snapshot())
	}
	r.Reset()
	checkSpan(t, h, from)
}

// inside reports whether s lies inside one of h's rewrites (after its first
// byte), where a wire position has no original one.
func inside(h *Half, s seqnum.Value) bool {
	for _, rec := range h.Records() {
		if r := rec.Range(); r.Start.Before(s) && s.Before(r.End) {
			return true
		}
	}
	return false
}

// checkSpan checks RestoreSpan(Snapshot(), Span()): positions up to the
// span's start and after the newest change map as in h; no acknowledgement
// maps back beyond where h maps it; and once the kept rewrites are made
// again in order, every position maps as in h.
func checkSpan(t *testing.T, h *Half, from seqnum.Value) {
	t.Helper()
	spanFrom, lump, ok := h.Span()
	if !ok {
		return
	}
	var r Half
	r.RestoreSpan(h.Snapshot(), spanFrom, lump)
	defer r.Reset()
	sm := h.Snapshot()
	if !r.Lumped() {
		t.Fatalf("RestoreSpan(%+v, %d, %d) keeps no lump", sm, spanFrom, lump)
	}
	for s := from; s != h.Next.Add(8); s++ {
		if (!s.After(spanFrom) || s.After(sm.Pos)) && r.MapSeq(s) != h.MapSeq(s) {
			t.Fatalf("span-restored MapSeq(%d) = %d, want %d (span %d..%d, lump %d)", s, r.MapSeq(s), h.MapSeq(s), spanFrom, sm.Pos, lump)
		}
		if w := h.MapSeq(s); !inside(h, s) && r.UnmapAck(w).After(s) {
			t.Fatalf("span-restored UnmapAck(%d) = %d, beyond %d", w, r.UnmapAck(w), s)
		}
	}
	for _, rec := range h.Records() {
		if err := r.Add(rec); err != nil {
			t.Fatalf("made again: Add(%+v): %v (records %+v)", rec, err, r.Records())
		}
	}
	if r.Lumped() {
		t.Fatalf("every rewrite made again, still lumped: %+v", r.Records())
	}
	for s := from; s != h.Next.Add(8); s++ {
		if r.MapSeq(s) != h.MapSeq(s) {
			t.Fatalf("made again: MapSeq(%d) = %d, want %d", s, r.MapSeq(s), h.MapSeq(s))
		}
	}
}
