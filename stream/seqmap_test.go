package stream

import (
	"errors"
	"testing"

	"github.com/ftpct/ftpct/seqnum"

	"github.com/google/go-cmp/cmp"
)

// posDelta is a record as the sequence mapping sees it.
type posDelta struct {
	Pos   seqnum.Value
	Delta int32
}

// add keeps a rewrite of delta bytes at pos (of an original length that
// can shrink by delta).
func add(h *Half, pos seqnum.Value, delta int32) error {
	return h.Add(Record{Pos: pos, OrigLen: uint16(max(1, -delta)), Delta: int16(delta)})
}

// pairs returns h's records as posDelta.
func pairs(h *Half) []posDelta {
	var out []posDelta
	for _, r := range h.Records() {
		out = append(out, posDelta{r.Pos, int32(r.Delta)})
	}
	return out
}

// fold acknowledges up to upTo on a direction that sent far past it.
func fold(h *Half, upTo seqnum.Value) int {
	h.Started, h.Next = true, upTo.Add(1<<20)
	return h.Acknowledge(upTo)
}

type recordOp struct {
	pos     seqnum.Value
	delta   int32
	wantErr error
}

func TestHalfRecord(t *testing.T) {
	tests := []struct {
		name     string
		ops      []recordOp
		wantRecs []posDelta
		wantBase int32
	}{
		{name: "zero value", wantRecs: nil},
		{name: "one record", ops: []recordOp{{pos: 100, delta: 4}}, wantRecs: []posDelta{{100, 4}}},
		// A rewrite that keeps the length is kept too (a retransmission
		// replays it); it shifts nothing.
		{name: "zero delta kept, shifting nothing", ops: []recordOp{{pos: 100, delta: 0}}, wantRecs: []posDelta{{100, 0}}},
		{
			name:     "increasing records",
			ops:      []recordOp{{pos: 100, delta: 4}, {pos: 200, delta: -2}, {pos: 300, delta: 1}},
			wantRecs: []posDelta{{100, 4}, {200, -2}, {300, 1}},
		},
		{
			name:     "retransmission of newest is idempotent",
			ops:      []recordOp{{pos: 100, delta: 4}, {pos: 100, delta: 4}},
			wantRecs: []posDelta{{100, 4}},
		},
		{
			name:     "retransmission of an older record is idempotent",
			ops:      []recordOp{{pos: 100, delta: 4}, {pos: 200, delta: -2}, {pos: 100, delta: 4}},
			wantRecs: []posDelta{{100, 4}, {200, -2}},
		},
		{
			name:     "same position with another delta conflicts",
			ops:      []recordOp{{pos: 100, delta: 4}, {pos: 100, delta: 3, wantErr: ErrConflict}},
			wantRecs: []posDelta{{100, 4}},
		},
		{
			name:     "unrecorded position before newest is out of order",
			ops:      []recordOp{{pos: 100, delta: 4}, {pos: 200, delta: -2}, {pos: 150, delta: 1, wantErr: ErrOutOfOrder}},
			wantRecs: []posDelta{{100, 4}, {200, -2}},
		},
		{
			name:     "position before oldest is out of order",
			ops:      []recordOp{{pos: 100, delta: 4}, {pos: 50, delta: 1, wantErr: ErrOutOfOrder}},
			wantRecs: []posDelta{{100, 4}},
		},
		{
			name:     "wrap-around: records crossing zero are in order",
			ops:      []recordOp{{pos: 0xFFFFFFF0, delta: 4}, {pos: 0xFFFFFFFC, delta: 2}, {pos: 0x10, delta: -1}},
			wantRecs: []posDelta{{0xFFFFFFF0, 4}, {0xFFFFFFFC, 2}, {0x10, -1}},
		},
		{
			name:     "wrap-around: before zero after a record past zero is out of order",
			ops:      []recordOp{{pos: 0x10, delta: 4}, {pos: 0xFFFFFFF0, delta: 1, wantErr: ErrOutOfOrder}},
			wantRecs: []posDelta{{0x10, 4}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a Half
			for i, op := range tt.ops {
				before := a
				err := add(&a, op.pos, op.delta)
				if !errors.Is(err, op.wantErr) || (err == nil) != (op.wantErr == nil) {
					t.Fatalf("op %d Record(%d, %d) = %v, want %v", i, op.pos, op.delta, err, op.wantErr)
				}
				if err != nil && !cmp.Equal(before, a, cmp.AllowUnexported(Half{})) {
					t.Errorf("op %d: failed Record changed the Half", i)
				}
			}
			if diff := cmp.Diff(tt.wantRecs, pairs(&a)); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
			if a.Base() != tt.wantBase {
				t.Errorf("base = %d, want %d", a.Base(), tt.wantBase)
			}
		})
	}
}

func TestHalfFull(t *testing.T) {
	var a Half
	for i := range MaxRecords {
		if err := add(&a, seqnum.Value(1000+100*i), int32(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if !a.Full() {
		t.Fatal("Full() = false with MaxRecords records")
	}
	before := a
	// A full Half never folds on its own: an unacknowledged record would be
	// applied to the segment that carries it.
	if err := add(&a, seqnum.Value(1000+100*MaxRecords), 1); !errors.Is(err, ErrFull) {
		t.Errorf("Record(new) when full = %v, want ErrFull", err)
	}
	if diff := cmp.Diff(before, a, cmp.AllowUnexported(Half{})); diff != "" {
		t.Errorf("failed Record changed the value (-want +got):\n%s", diff)
	}
	// A retransmission of a kept record is still recognised.
	if err := add(&a, seqnum.Value(1000+100*(MaxRecords-1)), MaxRecords); err != nil {
		t.Errorf("Record(newest again) when full = %v", err)
	}
}

func TestHalfFold(t *testing.T) {
	sumTo := func(k int) int32 { return int32(k * (k + 1) / 2) } // deltas 1..k
	tests := []struct {
		name     string
		records  int // records 1..n with delta i at 1000+100*(i-1)
		upTo     seqnum.Value
		wantN    int
		wantBase int32
		wantLen  int
	}{
		{name: "before all", records: 5, upTo: 1000, wantN: 0, wantBase: 0, wantLen: 5},
		{name: "just after the first", records: 5, upTo: 1001, wantN: 1, wantBase: 1, wantLen: 4},
		{name: "between", records: 5, upTo: 1250, wantN: 3, wantBase: sumTo(3), wantLen: 2},
		{name: "after all", records: 5, upTo: 5000, wantN: 5, wantBase: sumTo(5), wantLen: 0},
		{name: "full, then three", records: MaxRecords, upTo: 1201, wantN: 3, wantBase: sumTo(3), wantLen: MaxRecords - 3},
		{name: "empty", records: 0, upTo: 5000, wantN: 0, wantBase: 0, wantLen: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a Half
			for i := range tt.records {
				if err := add(&a, seqnum.Value(1000+100*i), int32(i+1)); err != nil {
					t.Fatal(err)
				}
			}
			// Wire positions at or after upTo must not move.
			probes := []seqnum.Value{tt.upTo, tt.upTo + 1, tt.upTo + 99, seqnum.Value(1000 + 100*tt.records + 7)}
			var wantMap, wantUnmap []seqnum.Value
			for _, s := range probes {
				wantMap = append(wantMap, a.MapSeq(s))
				wantUnmap = append(wantUnmap, a.UnmapAck(a.MapSeq(s)))
			}
			if n := fold(&a, tt.upTo); n != tt.wantN {
				t.Errorf("Fold = %d, want %d", n, tt.wantN)
			}
			if a.Base() != tt.wantBase || len(a.Records()) != tt.wantLen {
				t.Errorf("base %d len %d, want %d and %d", a.Base(), len(a.Records()), tt.wantBase, tt.wantLen)
			}
			for i, s := range probes {
				if got := a.MapSeq(s); got != wantMap[i] {
					t.Errorf("MapSeq(%d) = %d after Fold, was %d", s, got, wantMap[i])
				}
				if got := a.UnmapAck(wantMap[i]); got != wantUnmap[i] {
					t.Errorf("UnmapAck(%d) = %d after Fold, was %d", wantMap[i], got, wantUnmap[i])
				}
			}
			// Acknowledged bytes resent from before upTo end at or before
			// the mapped upTo: inside what the receiver already has.
			if tt.records > 0 {
				s := seqnum.Value(999)
				if end := a.MapSeq(s).Add(int32(tt.upTo.Diff(s))); end.After(a.MapSeq(tt.upTo)) {
					t.Errorf("resent [%d,%d) maps past the acknowledged point", s, tt.upTo)
				}
			}
			if a.Full() {
				t.Error("Full() after Fold")
			}
		})
	}
}

func TestHalfMapping(t *testing.T) {
	// Stream: +4 at original 100, -2 at original 200, +10 at original 300.
	// Wire positions of the records: 100, 204, 302.
	var a Half
	for _, r := range []posDelta{{100, 4}, {200, -2}, {300, 10}} {
		if err := add(&a, r.Pos, r.Delta); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name       string
		s          seqnum.Value // original, for Offset/MapSeq
		wantOffset int32
		wantMap    seqnum.Value
		w          seqnum.Value // wire, for UnmapAck
		wantUnmap  seqnum.Value
	}{
		{name: "before everything", s: 50, wantOffset: 0, wantMap: 50, w: 50, wantUnmap: 50},
		{name: "at first record", s: 100, wantOffset: 0, wantMap: 100, w: 100, wantUnmap: 100},
		{name: "just after first record", s: 101, wantOffset: 4, wantMap: 105, w: 101, wantUnmap: 97},
		{name: "at second record", s: 200, wantOffset: 4, wantMap: 204, w: 204, wantUnmap: 200},
		{name: "after second record", s: 250, wantOffset: 2, wantMap: 252, w: 252, wantUnmap: 250},
		{name: "at third record", s: 300, wantOffset: 2, wantMap: 302, w: 302, wantUnmap: 300},
		{name: "after third record", s: 400, wantOffset: 12, wantMap: 412, w: 412, wantUnmap: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			type res struct {
				Offset int32
				Map    seqnum.Value
				Unmap  seqnum.Value
			}
			want := res{tt.wantOffset, tt.wantMap, tt.wantUnmap}
			got := res{a.Offset(tt.s), a.MapSeq(tt.s), a.UnmapAck(tt.w)}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestHalfWrapAround(t *testing.T) {
	// +4 at 0xFFFFFFF0, -3 at 0x8 (after crossing zero).
	var a Half
	if err := add(&a, 0xFFFFFFF0, 4); err != nil {
		t.Fatal(err)
	}
	if err := add(&a, 0x8, -3); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		s         seqnum.Value
		wantMap   seqnum.Value
		w         seqnum.Value
		wantUnmap seqnum.Value
	}{
		{name: "before first", s: 0xFFFFFFE0, wantMap: 0xFFFFFFE0, w: 0xFFFFFFE0, wantUnmap: 0xFFFFFFE0},
		{name: "after first, before zero", s: 0xFFFFFFF8, wantMap: 0xFFFFFFFC, w: 0xFFFFFFFC, wantUnmap: 0xFFFFFFF8},
		{name: "crossing zero by the offset", s: 0xFFFFFFFE, wantMap: 0x2, w: 0x2, wantUnmap: 0xFFFFFFFE},
		{name: "at second record", s: 0x8, wantMap: 0xC, w: 0xC, wantUnmap: 0x8},
		{name: "after second record", s: 0x20, wantMap: 0x21, w: 0x21, wantUnmap: 0x20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := a.MapSeq(tt.s); got != tt.wantMap {
				t.Errorf("MapSeq(%#x) = %#x, want %#x", tt.s, got, tt.wantMap)
			}
			if got := a.UnmapAck(tt.w); got != tt.wantUnmap {
				t.Errorf("UnmapAck(%#x) = %#x, want %#x", tt.w, got, tt.wantUnmap)
			}
		})
	}
}

// TestHalfRoundTrip checks UnmapAck(MapSeq(s)) == s for positions not inside a shrunk
// range, and the nil receiver.
func TestHalfRoundTrip(t *testing.T) {
	var a Half
	for _, r := range []posDelta{{0xFFFFFF00, 7}, {0xFFFFFFF0, -5}, {0x40, 3}} {
		if err := add(&a, r.Pos, r.Delta); err != nil {
			t.Fatal(err)
		}
	}
	// A shrinking record at pos removes |delta| bytes after pos: original positions
	// (pos, pos+|delta|] lie inside its replaced range and have no wire image of their own.
	inside := func(s seqnum.Value) bool { return s.After(0xFFFFFFF0) && !s.After(0xFFFFFFF5) }
	for s := seqnum.Value(0xFFFFFE00); s != 0x200; s++ {
		if inside(s) {
			continue
		}
		if got := a.UnmapAck(a.MapSeq(s)); got != s {
			t.Fatalf("UnmapAck(MapSeq(%#x)) = %#x", s, got)
		}
	}
	var nilAdj *Half
	if nilAdj.MapSeq(5) != 5 || nilAdj.UnmapAck(5) != 5 || !nilAdj.IsZero() || len(nilAdj.Records()) != 0 {
		t.Error("nil Half must map to identity")
	}
}

func TestHalfAllocs(t *testing.T) {
	var a Half
	for i := range MaxRecords {
		_ = add(&a, seqnum.Value(100*i), 3)
	}
	n := testing.AllocsPerRun(1000, func() {
		_ = add(&a, seqnum.Value(100*(MaxRecords-1)), 3)
		_ = a.MapSeq(777)
		_ = a.UnmapAck(777)
		_ = a.Offset(5)
		_ = fold(&a, 0)
	})
	if n != 0 {
		t.Errorf("Half methods allocate %v times per run", n)
	}
}
