package ctstate

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		s    State
	}{
		{"zero", State{}},
		{"original grew", State{Valid: [2]bool{true, false}, Dir: [2]Adj{{Pos: 1000, Delta: 4, After: 4}}}},
		{"reply shrank", State{Valid: [2]bool{false, true}, Dir: [2]Adj{{}, {Pos: 0xfffffff0, Delta: -3, After: -7}}}},
		{"both at the limits", State{Valid: [2]bool{true, true}, Dir: [2]Adj{
			{Pos: 0xffffffff, Delta: MaxDelta, After: MaxOffset},
			{Pos: 0, Delta: MinDelta, After: MinOffset},
		}}},
		{"both small", State{Valid: [2]bool{true, true}, Dir: [2]Adj{{Pos: 1, Delta: -1, After: 0}, {Pos: 2, Delta: 1, After: 1}}}},
		{"original with a span", State{Valid: [2]bool{true, false}, Dir: [2]Adj{{Pos: 1200, Delta: 3, After: 300, Span: 1175, Lump: 147}}}},
		{"reply with a span at the limits", State{Valid: [2]bool{false, true}, Dir: [2]Adj{{}, {Pos: 5, Delta: MinDelta, After: MinOffset, Span: MaxSpan, Lump: MinLump}}}},
		{"span with no summed change", State{Valid: [2]bool{true, false}, Dir: [2]Adj{{Pos: 0xffffffff, Delta: MaxDelta, After: MaxOffset, Span: 1, Lump: 0}}}},
		{"span of the largest lump", State{Valid: [2]bool{true, false}, Dir: [2]Adj{{Pos: 77, Delta: 1, After: 1, Span: 9, Lump: MaxLump}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Encode(tt.s)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode(%x): %v", b, err)
			}
			if diff := cmp.Diff(tt.s, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEncodeLayout(t *testing.T) {
	s := State{Valid: [2]bool{true, false}, Dir: [2]Adj{{Pos: 0x01020304, Delta: 4, After: 8}}}
	b, err := Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	// version 1, original valid: 0x18; then Pos, After (0x00008), Delta (0x04) over 60 bits.
	want := [Size]byte{0x18, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x80, 0x40}
	if diff := cmp.Diff(want, b); diff != "" {
		t.Errorf("layout (-want +got):\n%s", diff)
	}
}

// TestEncodeSpanLayout: the span format puts the direction where format 1
// puts the original direction, then Span and Lump.
func TestEncodeSpanLayout(t *testing.T) {
	s := State{Valid: [2]bool{false, true}, Dir: [2]Adj{{}, {Pos: 0x01020304, Delta: 4, After: 8, Span: 0x0506, Lump: -2}}}
	b, err := Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	// version 2, reply valid: 0x24; Pos, After (0x00008), Delta (0x04);
	// Span 0x0506; Lump -2 (14 bits: 0x3ffe); then 30 zero bits.
	want := [Size]byte{0x24, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x80, 0x40, 0x50, 0x6f, 0xff, 0x80}
	if diff := cmp.Diff(want, b); diff != "" {
		t.Errorf("layout (-want +got):\n%s", diff)
	}
}

func TestEncodeRefuses(t *testing.T) {
	tests := []struct {
		name string
		s    State
	}{
		{"delta too big", State{Valid: [2]bool{true}, Dir: [2]Adj{{Pos: 1, Delta: MaxDelta + 1, After: 200}}}},
		{"delta too small", State{Valid: [2]bool{true}, Dir: [2]Adj{{Pos: 1, Delta: MinDelta - 1, After: -200}}}},
		{"zero delta", State{Valid: [2]bool{true}, Dir: [2]Adj{{Pos: 1, Delta: 0, After: 5}}}},
		{"offset too big", State{Valid: [2]bool{false, true}, Dir: [2]Adj{{}, {Pos: 1, Delta: 1, After: MaxOffset + 1}}}},
		{"offset too small", State{Valid: [2]bool{false, true}, Dir: [2]Adj{{}, {Pos: 1, Delta: -1, After: MinOffset - 1}}}},
		{"invalid direction set", State{Valid: [2]bool{true, false}, Dir: [2]Adj{{Pos: 1, Delta: 1, After: 1}, {Pos: 2}}}},
		{"span too long", State{Valid: [2]bool{true}, Dir: [2]Adj{{Pos: 1 << 20, Delta: 1, After: 1, Span: MaxSpan + 1}}}},
		{"lump too big", State{Valid: [2]bool{true}, Dir: [2]Adj{{Pos: 100, Delta: 1, After: 1, Span: 10, Lump: MaxLump + 1}}}},
		{"lump too small", State{Valid: [2]bool{true}, Dir: [2]Adj{{Pos: 100, Delta: 1, After: 1, Span: 10, Lump: MinLump - 1}}}},
		{"lump without a span", State{Valid: [2]bool{true}, Dir: [2]Adj{{Pos: 100, Delta: 1, After: 1, Lump: 3}}}},
		{"span with the other direction valid", State{Valid: [2]bool{true, true}, Dir: [2]Adj{{Pos: 100, Delta: 1, After: 1, Span: 10, Lump: 3}, {Pos: 1, Delta: 1, After: 1}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Encode(tt.s); !errors.Is(err, ErrRange) {
				t.Errorf("Encode(%+v) = %v, want ErrRange", tt.s, err)
			}
		})
	}
}

func TestDecodeRefuses(t *testing.T) {
	good, err := Encode(State{Valid: [2]bool{true, true}, Dir: [2]Adj{{Pos: 7, Delta: 2, After: 2}, {Pos: 9, Delta: -2, After: -2}}})
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(b *[Size]byte)) [Size]byte { b := good; f(&b); return b }
	span, err := Encode(State{Valid: [2]bool{true, false}, Dir: [2]Adj{{Pos: 700, Delta: 3, After: 30, Span: 40, Lump: 6}}})
	if err != nil {
		t.Fatal(err)
	}
	withSpan := func(f func(b *[Size]byte)) [Size]byte { b := span; f(&b); return b }
	tests := []struct {
		name string
		b    [Size]byte
		want error
	}{
		{"version 0 with bits", [Size]byte{0x08, 1}, ErrVersion},
		{"version 3", with(func(b *[Size]byte) { b[0] = 0x3c }), ErrVersion},
		{"version 15", with(func(b *[Size]byte) { b[0] |= 0xf0 }), ErrVersion},
		{"reserved bit", with(func(b *[Size]byte) { b[0] |= 0x01 }), ErrCorrupt},
		{"no direction", [Size]byte{0x10}, ErrCorrupt},
		{"invalid direction with bits", with(func(b *[Size]byte) { b[0] &^= 0x04 }), ErrCorrupt},
		{"zero delta", with(func(b *[Size]byte) { b[Size-1] = 0 }), ErrCorrupt},
		{"span format with both directions", withSpan(func(b *[Size]byte) { b[0] |= 0x0c }), ErrCorrupt},
		{"span format without a direction", withSpan(func(b *[Size]byte) { b[0] &^= 0x0c }), ErrCorrupt},
		{"span format with span 0", withSpan(func(b *[Size]byte) { b[9], b[10] = 0, b[10]&0x0f }), ErrCorrupt},
		{"span format with reserved bits", withSpan(func(b *[Size]byte) { b[Size-1] = 1 }), ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Decode(tt.b)
			if !errors.Is(err, tt.want) {
				t.Errorf("Decode(%x) error = %v, want %v", tt.b, err, tt.want)
			}
			if !s.IsZero() {
				t.Errorf("Decode(%x) = %+v with error, want the zero State", tt.b, s)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(make([]byte, Size))
	for _, s := range []State{
		{Valid: [2]bool{true, true}, Dir: [2]Adj{{Pos: 7, Delta: 2, After: 2}, {Pos: 9, Delta: -2, After: -2}}},
		{Valid: [2]bool{false, true}, Dir: [2]Adj{{}, {Pos: 0xffffffff, Delta: MinDelta, After: MaxOffset}}},
		{Valid: [2]bool{true, false}, Dir: [2]Adj{{Pos: 700, Delta: 3, After: 30, Span: 40, Lump: 6}}},
	} {
		b, err := Encode(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:])
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) != Size {
			return
		}
		b := [Size]byte(in)
		s, err := Decode(b)
		if err != nil {
			if !s.IsZero() {
				t.Fatalf("Decode(%x) returned state %+v with error %v", b, s, err)
			}
			if b[0]>>4 == Version && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode(%x) = %v, want ErrCorrupt for this version", b, err)
			}
			return
		}
		// Whatever decodes encodes back to the same bits: nothing is
		// read that was not written.
		again, err := Encode(s)
		if err != nil {
			t.Fatalf("Encode(Decode(%x) = %+v): %v", b, s, err)
		}
		if again != b {
			t.Fatalf("Encode(Decode(%x)) = %x", b, again)
		}
	})
}

func FuzzEncode(f *testing.F) {
	f.Add(true, uint32(1), int32(4), int32(4), uint32(0), int32(0), false, uint32(0), int32(0), int32(0), uint32(0), int32(0))
	f.Add(true, uint32(700), int32(3), int32(30), uint32(40), int32(6), false, uint32(0), int32(0), int32(0), uint32(0), int32(0))
	f.Fuzz(func(t *testing.T, v0 bool, p0 uint32, d0, a0 int32, s0 uint32, l0 int32, v1 bool, p1 uint32, d1, a1 int32, s1 uint32, l1 int32) {
		s := State{Valid: [2]bool{v0, v1}, Dir: [2]Adj{{p0, d0, a0, s0, l0}, {p1, d1, a1, s1, l1}}}
		b, err := Encode(s)
		if err != nil {
			return
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(Encode(%+v)): %v", s, err)
		}
		if got != s {
			t.Fatalf("round trip %+v -> %+v", s, got)
		}
	})
}
