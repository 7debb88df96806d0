package stream

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ftpct/ftpct/seqnum"
)

func TestSnapshotRestore(t *testing.T) {
	tests := []struct {
		name string
		recs []posDelta // added in order, each 8 bytes long
		ack  seqnum.Value
		want Summary
	}{
		{name: "nothing rewritten", want: Summary{}},
		{name: "one", recs: []posDelta{{100, 4}}, want: Summary{Pos: 100, Delta: 4}},
		{name: "three", recs: []posDelta{{100, 4}, {200, -2}, {300, 3}}, want: Summary{Pos: 300, Before: 2, Delta: 3}},
		{name: "newest keeps the length", recs: []posDelta{{100, 4}, {200, 0}}, want: Summary{Pos: 100, Delta: 4}},
		{name: "all acknowledged", recs: []posDelta{{100, 4}, {200, -2}}, ack: 400, want: Summary{Before: 2}},
		{name: "older acknowledged", recs: []posDelta{{100, 4}, {200, -2}}, ack: 150, want: Summary{Pos: 200, Before: 4, Delta: -2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := Half{Started: true, Next: 500}
			for _, r := range tt.recs {
				if err := h.Add(Record{Pos: r.Pos, OrigLen: 8, Delta: int16(r.Delta), Tag: 7}); err != nil {
					t.Fatal(err)
				}
			}
			if tt.ack != 0 {
				h.Acknowledge(tt.ack)
			}
			if diff := cmp.Diff(tt.want, h.Snapshot()); diff != "" {
				t.Fatalf("Snapshot (-want +got):\n%s", diff)
			}
			var r Half
			r.Restore(h.Snapshot())
			for s := tt.want.Pos.Add(1); s != 600; s++ {
				if r.MapSeq(s) != h.MapSeq(s) {
					t.Fatalf("restored MapSeq(%d) = %d, want %d", s, r.MapSeq(s), h.MapSeq(s))
				}
			}
			// The rewrite made again fills the restored record in.
			if tt.want.Delta != 0 {
				if err := r.Add(Record{Pos: tt.want.Pos, OrigLen: 8, Delta: tt.want.Delta, Tag: 7}); err != nil {
					t.Fatal(err)
				}
				if got := r.Records(); len(got) != 1 || got[0].OrigLen != 8 || got[0].Tag != 7 {
					t.Errorf("restored record after Add: %+v", got)
				}
			}
		})
	}
}
