package seqnum

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSeq(t *testing.T) {
	type result struct {
		Before, After bool
		Diff          int32
	}
	tests := []struct {
		name string
		a, b Value
		want result
	}{
		{name: "equal", a: 5, b: 5, want: result{Diff: 0}},
		{name: "smaller", a: 5, b: 9, want: result{Before: true, Diff: -4}},
		{name: "larger", a: 9, b: 5, want: result{After: true, Diff: 4}},
		{name: "wrap: just below zero is before zero", a: 0xFFFFFFF0, b: 0x10, want: result{Before: true, Diff: -0x20}},
		{name: "wrap: zero is after 0xFFFFFFF0", a: 0x10, b: 0xFFFFFFF0, want: result{After: true, Diff: 0x20}},
		{name: "half window ahead", a: 0x7FFFFFFF, b: 0, want: result{After: true, Diff: 0x7FFFFFFF}},
		{name: "exactly half: treated as before", a: 0x80000000, b: 0, want: result{Before: true, Diff: -0x80000000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := result{Before: tt.a.Before(tt.b), After: tt.a.After(tt.b), Diff: tt.a.Diff(tt.b)}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Value(%#x) vs Value(%#x) (-want +got):\n%s", tt.a, tt.b, diff)
			}
		})
	}
}

func TestSeqAdd(t *testing.T) {
	tests := []struct {
		name string
		a    Value
		n    int32
		want Value
	}{
		{name: "plus", a: 100, n: 4, want: 104},
		{name: "minus", a: 100, n: -2, want: 98},
		{name: "wrap forward", a: 0xFFFFFFFE, n: 4, want: 2},
		{name: "wrap backward", a: 1, n: -2, want: 0xFFFFFFFF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.a.Add(tt.n)); diff != "" {
				t.Errorf("Add (-want +got):\n%s", diff)
			}
		})
	}
}
