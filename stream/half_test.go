package stream

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ftpct/ftpct/seqnum"
)

// withEdits returns a direction that sent up to next and rewrote 8-byte
// arguments at the given positions, each growing the stream by 4.
func withEdits(t *testing.T, next seqnum.Value, pos ...seqnum.Value) *Half {
	t.Helper()
	d := &Half{Next: next, Started: true}
	for _, p := range pos {
		if err := d.Add(Record{Pos: p, OrigLen: 8, Delta: 4, Tag: 40000}); err != nil {
			t.Fatalf("Add(%d): %v", p, err)
		}
	}
	return d
}

func positions(d *Half) []seqnum.Value {
	var ps []seqnum.Value
	for _, e := range d.Records() {
		ps = append(ps, e.Pos)
	}
	return ps
}

func TestAcknowledge(t *testing.T) {
	tests := []struct {
		name      string
		acks      []seqnum.Value
		wantKept  []seqnum.Value
		wantBase  int32
		wantAcked seqnum.Value
	}{
		{name: "nothing acknowledged yet", acks: []seqnum.Value{100}, wantKept: []seqnum.Value{100, 200, 300}, wantAcked: 100},
		{name: "first rewrite acknowledged", acks: []seqnum.Value{108}, wantKept: []seqnum.Value{200, 300}, wantBase: 4, wantAcked: 108},
		{name: "ack cuts a rewrite: it stays, with its record", acks: []seqnum.Value{204}, wantKept: []seqnum.Value{200, 300}, wantBase: 4, wantAcked: 204},
		{name: "all acknowledged", acks: []seqnum.Value{400}, wantKept: nil, wantBase: 12, wantAcked: 400},
		{name: "an older ack changes nothing", acks: []seqnum.Value{300, 150}, wantKept: []seqnum.Value{300}, wantBase: 8, wantAcked: 300},
		// The peer holds bytes this direction never saw (Resumes): kept,
		// but records go only up to what was seen.
		{name: "ack past what was sent is kept", acks: []seqnum.Value{9000}, wantKept: nil, wantBase: 12, wantAcked: 9000},
		{name: "an ack far past what was sent is bounded", acks: []seqnum.Value{500 + 1<<25}, wantKept: nil, wantBase: 12, wantAcked: 500 + maxUnseen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := withEdits(t, 500, 100, 200, 300)
			for _, a := range tt.acks {
				d.Acknowledge(a)
			}
			if diff := cmp.Diff(tt.wantKept, positions(d)); diff != "" {
				t.Errorf("kept rewrites (-want +got):\n%s", diff)
			}
			if d.Base() != tt.wantBase || d.Acked != tt.wantAcked || !d.AckSeen {
				t.Errorf("base %d acked %d (seen %v), want %d %d", d.Base(), d.Acked, d.AckSeen, tt.wantBase, tt.wantAcked)
			}
			// What is kept still maps: the mapping after a kept rewrite
			// counts every length change before it.
			for i, r := range d.Records() {
				if got, want := d.Offset(r.Pos.Add(1)), tt.wantBase+4*int32(i+1); got != want {
					t.Errorf("offset after the kept rewrite at %d = %d, want %d", r.Pos, got, want)
				}
			}
		})
	}
	var idle Half
	if idle.Acknowledge(5) != 0 || !idle.AckSeen || idle.Acked != 5 {
		t.Errorf("a direction that sent nothing: acked %d (seen %v), want 5 kept, nothing forgotten", idle.Acked, idle.AckSeen)
	}
}

func TestResumes(t *testing.T) {
	tests := []struct {
		name string
		ack  seqnum.Value // 0: none seen
		seq  seqnum.Value
		want bool
	}{
		{name: "no acknowledgement: a gap", seq: 600},
		{name: "acknowledged up to the segment", ack: 600, seq: 600, want: true},
		{name: "acknowledged past the segment's start", ack: 700, seq: 600, want: true},
		{name: "acknowledged short of it: a gap", ack: 599, seq: 600},
		{name: "not after Next", ack: 700, seq: 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := withEdits(t, 500, 100)
			if tt.ack != 0 {
				d.Acknowledge(tt.ack)
			}
			if got := d.Resumes(tt.seq); got != tt.want {
				t.Errorf("Resumes(%d) = %v, want %v", tt.seq, got, tt.want)
			}
			if tt.want {
				d.Resume(tt.seq)
				if d.Next != tt.seq {
					t.Errorf("Resume: Next = %d, want %d", d.Next, tt.seq)
				}
			}
		})
	}
}

func TestAddLikeRemember(t *testing.T) {
	d := withEdits(t, 10000, 100, 200)
	if err := d.Add(Record{Pos: 100, OrigLen: 8, Delta: 4}); err != nil {
		t.Errorf("Add of a kept position = %v, want nil (a retransmission)", err)
	}
	if err := d.Add(Record{Pos: 150, OrigLen: 8, Delta: 4}); !errors.Is(err, ErrOutOfOrder) {
		t.Errorf("Add before the newest, not kept = %v, want ErrOutOfOrder", err)
	}
	for i := len(d.Records()); i < MaxRecords; i++ {
		if err := d.Add(Record{Pos: seqnum.Value(300 + 10*i), OrigLen: 8}); err != nil {
			t.Fatalf("Add %d of %d: %v", i+1, MaxRecords, err)
		}
	}
	if err := d.Add(Record{Pos: 9000, OrigLen: 8}); !d.Full() || !errors.Is(err, ErrFull) {
		t.Errorf("full: Full %v, Add of one more = %v", d.Full(), err)
	}
	if len(d.Records()) != MaxRecords {
		t.Errorf("%d kept, want %d", len(d.Records()), MaxRecords)
	}
}

// A burst spills the records to a pooled block and acknowledgements bring
// them back inline; nothing about the records changes on the way.
func TestHalfSpill(t *testing.T) {
	tests := []struct {
		name      string
		records   int          // 8-byte rewrites at 1000, 1100, ...
		ack       seqnum.Value // then acknowledged up to
		truncate  int          // or truncated to (when >= 0)
		wantKept  int
		wantSpill bool
	}{
		{name: "inline", records: inlineRecords, truncate: -1, wantKept: inlineRecords},
		{name: "one past inline spills", records: inlineRecords + 1, truncate: -1, wantKept: inlineRecords + 1, wantSpill: true},
		{name: "full", records: MaxRecords, truncate: -1, wantKept: MaxRecords, wantSpill: true},
		{name: "acknowledged down to inline", records: MaxRecords, ack: seqnum.Value(1000 + 100*(MaxRecords-inlineRecords)), truncate: -1, wantKept: inlineRecords},
		{name: "acknowledged, still past inline", records: MaxRecords, ack: 1100, truncate: -1, wantKept: MaxRecords - 1, wantSpill: true},
		{name: "all acknowledged", records: MaxRecords, ack: 1 << 20, truncate: -1, wantKept: 0},
		{name: "truncated back inline", records: 10, truncate: 1, wantKept: 1},
		{name: "truncated, still past inline", records: 10, truncate: inlineRecords + 1, wantKept: inlineRecords + 1, wantSpill: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := Half{Started: true, Next: seqnum.Value(1000 + 100*tt.records)}
			var all []Record
			for i := range tt.records {
				r := Record{Pos: seqnum.Value(1000 + 100*i), OrigLen: 8, Delta: int16(i%5 - 2), Tag: uint64(i)}
				if err := h.Add(r); err != nil {
					t.Fatal(err)
				}
				all = append(all, r)
			}
			if tt.ack != 0 {
				h.Acknowledge(tt.ack)
			}
			if tt.truncate >= 0 {
				h.Truncate(tt.truncate)
			}
			want := all[len(all)-tt.wantKept:]
			if tt.truncate >= 0 {
				want = all[:tt.wantKept]
			}
			if diff := cmp.Diff(want, h.Records(), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
			if (h.spill != nil) != tt.wantSpill {
				t.Errorf("spilled %v, want %v", h.spill != nil, tt.wantSpill)
			}
			for i, r := range h.recs()[h.n:] {
				if r != (Record{}) {
					t.Fatalf("storage past the kept records not zero at %d: %+v", int(h.n)+i, r)
				}
			}
			if h.spill == nil {
				return
			}
			// Given back, the block is zero (the next burst starts clean).
			h.Reset()
			if h.spill != nil || h.n != 0 {
				t.Errorf("after Reset: spill %v, %d records", h.spill != nil, h.n)
			}
		})
	}
}

// A burst taken and given back costs no allocation once the pool has a
// block; an ordinary direction (records inline) none at all.
func TestHalfSpillAllocs(t *testing.T) {
	burst := func(n int) {
		var h Half
		h.Started, h.Next = true, seqnum.Value(1000+100*n)
		for i := range n {
			_ = h.Add(Record{Pos: seqnum.Value(1000 + 100*i), OrigLen: 8, Delta: 1})
		}
		h.Acknowledge(h.Next)
	}
	burst(MaxRecords) // fills the pool
	for _, n := range []int{1, inlineRecords, MaxRecords} {
		if a := testing.AllocsPerRun(100, func() { burst(n) }); a != 0 {
			t.Errorf("%d records added and acknowledged: %v allocations, want 0", n, a)
		}
	}
}
