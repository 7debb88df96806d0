package stream

import (
	"errors"
	"testing"

	"github.com/ftpct/ftpct/seqnum"

	"github.com/google/go-cmp/cmp"
)

// restoredSpan is a direction restored with four rewrites of +3 bytes not
// acknowledged before the newest at 1100 (+3, offset 30 before it): they
// start at 1000, where the offset is 18.
func restoredSpan() *Half {
	h := &Half{}
	h.RestoreSpan(Summary{Pos: 1100, Before: 30, Delta: 3}, 1000, 12)
	return h
}

// rec is a rewrite of 10 original bytes at pos changing the length by delta.
func rec(pos seqnum.Value, delta int16) Record {
	return Record{Pos: pos, OrigLen: 10, Delta: delta, Tag: uint64(pos)}
}

func TestRestoreSpanMapping(t *testing.T) {
	h := restoredSpan()
	from, to, ok := h.Unknown()
	if !ok || from != 1000 || to != 1100 {
		t.Fatalf("Unknown() = %d, %d, %v; want 1000, 1100, true", from, to, ok)
	}
	for _, tt := range []struct {
		name string
		orig seqnum.Value
		want int32
	}{
		{"acknowledged bytes before the span", 900, 18},
		{"the span's start", 1000, 18},
		{"after the newest change", 1101, 33},
	} {
		if got := h.Offset(tt.orig); got != tt.want {
			t.Errorf("%s: Offset(%d) = %d, want %d", tt.name, tt.orig, got, tt.want)
		}
	}
	for _, tt := range []struct {
		name string
		wire seqnum.Value
		want seqnum.Value
	}{
		{"before the span", 1000, 982},
		{"the span's start", 1018, 1000},
		{"inside the unknown part: the span's start", 1060, 1000},
		{"the newest change's wire start: still unknown before it", 1130, 1000},
		{"after the newest change", 1143, 1110},
	} {
		if got := h.UnmapAck(tt.wire); got != tt.want {
			t.Errorf("%s: UnmapAck(%d) = %d, want %d", tt.name, tt.wire, got, tt.want)
		}
	}
}

func TestRestoreSpanMadeAgain(t *testing.T) {
	tests := []struct {
		name       string
		adds       []Record
		wantErr    []error
		wantRecs   []posDelta
		wantLumped bool
		wantBefore int32 // Offset(1100)
	}{
		{
			name:       "all made again: the lump goes",
			adds:       []Record{rec(1005, 3), rec(1030, 3), rec(1060, 3), rec(1080, 3), rec(1100, 3)},
			wantErr:    []error{nil, nil, nil, nil, nil},
			wantRecs:   []posDelta{{1005, 3}, {1030, 3}, {1060, 3}, {1080, 3}, {1100, 3}},
			wantBefore: 30,
		},
		{
			name:       "part made again: the lump keeps the rest",
			adds:       []Record{rec(1005, 3), rec(1030, 3)},
			wantErr:    []error{nil, nil},
			wantRecs:   []posDelta{{1005, 3}, {1030, 3}, {1040, 6}, {1100, 3}},
			wantLumped: true,
			wantBefore: 30,
		},
		{
			name:       "a rewrite before the span is not one of it",
			adds:       []Record{rec(990, 3)},
			wantErr:    []error{ErrOutOfOrder},
			wantRecs:   []posDelta{{1000, 12}, {1100, 3}},
			wantLumped: true,
			wantBefore: 30,
		},
		{
			name:       "the newest made with another length",
			adds:       []Record{rec(1100, 4)},
			wantErr:    []error{ErrConflict},
			wantRecs:   []posDelta{{1000, 12}, {1100, 3}},
			wantLumped: true,
			wantBefore: 30,
		},
		{
			name:       "the newest made again with a change of the span missing: the lump stays, given up",
			adds:       []Record{rec(1005, 3), rec(1100, 3)},
			wantErr:    []error{nil, nil},
			wantRecs:   []posDelta{{1005, 3}, {1015, 9}, {1100, 3}},
			wantBefore: 30,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := restoredSpan()
			for i, r := range tt.adds {
				if err := h.Add(r); !errors.Is(err, tt.wantErr[i]) {
					t.Errorf("Add(%d, %d) = %v, want %v", r.Pos, r.Delta, err, tt.wantErr[i])
				}
			}
			if diff := cmp.Diff(tt.wantRecs, pairs(h)); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
			if h.Lumped() != tt.wantLumped {
				t.Errorf("Lumped() = %v, want %v", h.Lumped(), tt.wantLumped)
			}
			if got := h.Offset(1100); got != tt.wantBefore {
				t.Errorf("Offset(1100) = %d, want %d", got, tt.wantBefore)
			}
			if got := h.Offset(1101); got != 33 {
				t.Errorf("Offset(1101) = %d, want 33", got)
			}
			h.Reset()
		})
	}
}

func TestRestoreSpanTruncate(t *testing.T) {
	h := restoredSpan()
	if err := h.Add(rec(1005, 3)); err != nil {
		t.Fatal(err)
	}
	n := len(h.Records())
	for _, r := range []Record{rec(1030, 3), rec(1060, 3)} {
		if err := h.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	h.Truncate(n) // the packet that made the last two was not sent
	if diff := cmp.Diff([]posDelta{{1005, 3}, {1030, 9}, {1100, 3}}, pairs(h)); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if !h.Lumped() {
		t.Errorf("lump lost")
	}
}

func TestRestoreSpanSettleAndAcknowledge(t *testing.T) {
	h := restoredSpan()
	h.Started, h.Next = true, 1050 // a resend of [990, 1050) was read, nothing rewritten in it
	h.Settle()
	if from, to, _ := h.Unknown(); from != 1050 || to != 1100 {
		t.Errorf("after Settle: Unknown() = %d, %d; want 1050, 1100", from, to)
	}
	if got := h.UnmapAck(1080); got != 1050 {
		t.Errorf("UnmapAck(1080) = %d, want 1050 (the read part's end)", got)
	}
	if k := h.Acknowledge(h.UnmapAck(1080)); k != 0 || !h.Lumped() {
		t.Errorf("Acknowledge inside the unknown part forgot %d records (lumped %v), want 0 (true)", k, h.Lumped())
	}
	h.Next = 1200
	if k := h.Acknowledge(h.UnmapAck(1160)); k != 2 || h.Lumped() || h.Base() != 33 {
		t.Errorf("Acknowledge past the newest: forgot %d, lumped %v, base %d; want 2, false, 33", k, h.Lumped(), h.Base())
	}
	h.Reset()

	h = restoredSpan()
	h.Started, h.Next = true, 1150 // read past the newest without making it again
	h.Settle()
	if h.Lumped() {
		t.Errorf("Settle past the newest change kept the lump")
	}
	h.Reset()
}

func TestSpan(t *testing.T) {
	tests := []struct {
		name     string
		recs     []Record
		ok       bool
		from     seqnum.Value
		wantLump int32
	}{
		{name: "none"},
		{name: "only the newest", recs: []Record{rec(100, 3)}},
		{name: "a same-length rewrite after the newest change", recs: []Record{rec(100, 3), rec(200, 0)}},
		{name: "three", recs: []Record{rec(100, 3), rec(200, -1), rec(300, 3)}, ok: true, from: 100, wantLump: 2},
		{name: "a same-length rewrite first", recs: []Record{rec(100, 0), rec(200, 3)}, ok: true, from: 100, wantLump: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Half
			for _, r := range tt.recs {
				if err := h.Add(r); err != nil {
					t.Fatal(err)
				}
			}
			from, lump, ok := h.Span()
			if ok != tt.ok || from != tt.from || lump != tt.wantLump {
				t.Errorf("Span() = %d, %d, %v; want %d, %d, %v", from, lump, ok, tt.from, tt.wantLump, tt.ok)
			}
			h.Reset()
		})
	}
}
