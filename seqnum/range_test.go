package seqnum

import "testing"

func TestRange(t *testing.T) {
	r := RangeOf(0xfffffffe, 4) // wraps: [0xfffffffe, 2)
	tests := []struct {
		name                     string
		o                        Range
		overlaps, covers, inside bool
	}{
		{name: "same", o: r, overlaps: true, covers: true, inside: true},
		{name: "before", o: RangeOf(0xfffffff0, 14), inside: false},
		{name: "touching end", o: RangeOf(2, 3)},
		{name: "straddles start", o: RangeOf(0xfffffffa, 5), overlaps: true},
		{name: "inside across the wrap", o: RangeOf(0xffffffff, 2), overlaps: true, covers: true, inside: true},
		{name: "straddles end", o: RangeOf(1, 5), overlaps: true, inside: true},
		{name: "empty inside", o: RangeOf(0, 0), covers: true, inside: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.Overlaps(tt.o); got != tt.overlaps {
				t.Errorf("Overlaps = %v, want %v", got, tt.overlaps)
			}
			if got := r.Covers(tt.o); got != tt.covers {
				t.Errorf("Covers = %v, want %v", got, tt.covers)
			}
			if got := r.Contains(tt.o.Start); got != tt.inside {
				t.Errorf("Contains(start) = %v, want %v", got, tt.inside)
			}
		})
	}
	if r.Len() != 4 || r.Empty() || !RangeOf(7, 0).Empty() {
		t.Errorf("Len %d Empty %v", r.Len(), r.Empty())
	}
}
