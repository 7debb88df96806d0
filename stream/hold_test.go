package stream

import (
	"testing"
	"time"

	"github.com/ftpct/ftpct/seqnum"
)

func TestJoin(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	const patience = 150 * time.Millisecond
	// Held: [110, 120) of a stream seen up to 120.
	tests := []struct {
		name  string
		seg   seqnum.Range
		after time.Duration // since the bytes were held
		want  Join
	}{
		{name: "gap", seg: seqnum.RangeOf(125, 5), want: JoinDrop},
		{name: "only before", seg: seqnum.RangeOf(100, 10), want: JoinBefore},
		{name: "before and some held", seg: seqnum.RangeOf(100, 15), want: JoinTrim},
		{name: "held again", seg: seqnum.RangeOf(110, 10), want: JoinDrop},
		{name: "inside held", seg: seqnum.RangeOf(113, 4), want: JoinDrop},
		{name: "from before past held", seg: seqnum.RangeOf(100, 30), want: JoinReplace},
		{name: "from held start past held", seg: seqnum.RangeOf(110, 12), want: JoinReplace},
		{name: "continues", seg: seqnum.RangeOf(120, 6), want: JoinPrepend},
		{name: "overlapping continuation", seg: seqnum.RangeOf(115, 10), want: JoinPrepend},
		{name: "held again after patience", seg: seqnum.RangeOf(110, 10), after: patience, want: JoinGiveUp},
		{name: "trim after patience", seg: seqnum.RangeOf(100, 15), after: patience, want: JoinGiveUp},
		{name: "inside held after patience", seg: seqnum.RangeOf(113, 4), after: patience, want: JoinDrop},
		{name: "before after patience", seg: seqnum.RangeOf(100, 10), after: patience, want: JoinBefore},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := Half{Started: true, Next: 120}
			h.Hold([]byte("PORT 10,0,"), t0)
			if got := h.Join(tt.seg, t0.Add(tt.after), patience); got != tt.want {
				t.Errorf("Join(%v) = %v, want %v", tt.seg, got, tt.want)
			}
		})
	}
}

func TestHoldRelease(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	h := Half{Started: true, Next: 110}
	h.Hold([]byte("PORT 10,0,"), t0)
	if !h.HeldSince().Equal(t0) || h.HoldStart() != 100 {
		t.Errorf("held: since %v start %d, want %v 100", h.HeldSince(), h.HoldStart(), t0)
	}
	h.Release()
	if len(h.Held()) != 0 || h.Next != 100 {
		t.Errorf("after Release: held %q next %d, want none and 100", h.Held(), h.Next)
	}
}

// Held bytes live in a pooled buffer only while held: a released direction
// owns none, and holding again reuses one without allocating.
func TestHoldPooled(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	h := Half{Started: true, Next: 110}
	line := []byte("PORT 10,0,")
	h.Hold(line, t0)
	h.Release()
	if h.held != nil || h.Held() != nil || !h.HeldSince().IsZero() {
		t.Errorf("after Release: buffer %v, held %q since %v; want none", h.held != nil, h.Held(), h.HeldSince())
	}
	h.Hold(nil, t0)
	if h.held != nil {
		t.Error("holding nothing took a buffer")
	}
	if n := testing.AllocsPerRun(100, func() {
		h.Next = 110
		h.Hold(line, t0)
		h.Release()
	}); n != 0 {
		t.Errorf("Hold and Release: %v allocations, want 0", n)
	}
}
