package conntrack

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ftpct/ftpct/ftpparse"
	"github.com/ftpct/ftpct/seqnum"
)

// withEdits returns a direction that sent up to next and rewrote 8-byte
// arguments at the given positions, each growing the stream by 4.
func withEdits(t *testing.T, next seqnum.Value, pos ...seqnum.Value) *DirState {
	t.Helper()
	d := &DirState{Next: next, Started: true}
	for _, p := range pos {
		if !d.Remember(Edit{Pos: p, OrigLen: 8, Port: 40000, Kind: ftpparse.KindPORT}) {
			t.Fatalf("Remember(%d) = false", p)
		}
		if err := d.Adj.Record(p, 4); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func positions(d *DirState) []seqnum.Value {
	var ps []seqnum.Value
	for _, e := range d.Edits() {
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
		{name: "ack past what was sent is clamped", acks: []seqnum.Value{9000}, wantKept: nil, wantBase: 12, wantAcked: 500},
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
			if d.Adj.Base() != tt.wantBase || d.Acked != tt.wantAcked || !d.AckSeen {
				t.Errorf("base %d acked %d (seen %v), want %d %d", d.Adj.Base(), d.Acked, d.AckSeen, tt.wantBase, tt.wantAcked)
			}
			// Every kept SeqAdj record has its rewrite kept: replaying a
			// kept rewrite never meets a folded record.
			kept := map[seqnum.Value]bool{}
			for _, e := range d.Edits() {
				kept[e.Pos] = true
			}
			for _, r := range d.Adj.Records() {
				if !kept[r.Pos] {
					t.Errorf("record at %d kept without its rewrite", r.Pos)
				}
			}
		})
	}
	var idle DirState
	if idle.Acknowledge(5) != 0 || idle.AckSeen {
		t.Error("a direction that sent nothing took an acknowledgement")
	}
}

func TestRemember(t *testing.T) {
	d := withEdits(t, 10000, 100, 200)
	if !d.Remember(Edit{Pos: 100, OrigLen: 8}) {
		t.Error("Remember of a kept position = false, want true (a retransmission)")
	}
	if d.Remember(Edit{Pos: 150, OrigLen: 8}) {
		t.Error("Remember before the newest, not kept = true")
	}
	for i := len(d.Edits()); i < MaxInFlight; i++ {
		if !d.Remember(Edit{Pos: seqnum.Value(300 + 10*i), OrigLen: 8}) {
			t.Fatalf("Remember %d of %d = false", i+1, MaxInFlight)
		}
	}
	if !d.EditsFull() || d.Remember(Edit{Pos: 9000, OrigLen: 8}) {
		t.Errorf("full: EditsFull %v, Remember accepted one more", d.EditsFull())
	}
	if len(d.Edits()) != MaxInFlight {
		t.Errorf("%d kept, want %d", len(d.Edits()), MaxInFlight)
	}
}
