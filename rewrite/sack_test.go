package rewrite

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAppendSACKBlocks(t *testing.T) {
	withSACK := v4spec("")
	withSACK.timestamps = true
	withSACK.sack = []SACKBlock{{100, 200}, {300, 400}, {0xFFFFFFF0, 0x10}}
	four := v6spec("")
	four.sack = []SACKBlock{{1, 2}, {3, 4}, {5, 6}, {7, 8}}
	tests := []struct {
		name string
		pkt  []byte
		want []SACKBlock
	}{
		{name: "no options", pkt: buildPacket(t, v4spec("")), want: nil},
		{name: "timestamps and three blocks", pkt: buildPacket(t, withSACK), want: withSACK.sack},
		{name: "ipv6 four blocks", pkt: buildPacket(t, four), want: four.sack},
		{name: "EOL hides a later SACK", pkt: rawOptionsPacket(t, []byte{0, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1}), want: nil},
		{name: "bad option length stops the walk", pkt: rawOptionsPacket(t, []byte{8, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2}), want: nil},
		{name: "SACK with bad length is skipped", pkt: rawOptionsPacket(t, []byte{5, 6, 0, 0, 0, 1, 5, 10, 0, 0, 0, 3, 0, 0, 0, 4, 1, 1, 1, 1}), want: []SACKBlock{{3, 4}}},
		{name: "option running past header", pkt: rawOptionsPacket(t, []byte{1, 1, 5, 18, 0, 0, 0, 1, 0, 0, 0, 2}), want: nil},
		{name: "kind without length byte", pkt: rawOptionsPacket(t, []byte{1, 1, 1, 8}), want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Packet
			if err := Decode(tt.pkt, &p); err != nil {
				t.Fatal(err)
			}
			got := AppendSACKBlocks(nil, tt.pkt, &p)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("AppendSACKBlocks (-want +got):\n%s", diff)
			}
		})
	}
}

// rawOptionsPacket returns an IPv4/TCP packet whose TCP options are opts (a multiple of 4).
func rawOptionsPacket(t *testing.T, opts []byte) []byte {
	t.Helper()
	if len(opts)%4 != 0 {
		t.Fatalf("options length %d", len(opts))
	}
	b := buildPacket(t, v4spec(""))
	b = append(b[:40], opts...)
	b[2], b[3] = 0, byte(len(b))
	b[32] = byte((20+len(opts))/4) << 4
	return b
}

func TestAdjustSACK(t *testing.T) {
	var other SeqAdj
	if err := other.Record(150, 10); err != nil {
		t.Fatal(err)
	}
	spec := v4spec("")
	spec.sack = []SACKBlock{{100, 150}, {200, 300}}
	b := buildPacket(t, spec)
	var p Packet
	if err := Decode(b, &p); err != nil {
		t.Fatal(err)
	}
	opts := b[p.TCPOff+20 : p.PayloadOff]
	if !adjustSACK(opts, &other, false) {
		t.Fatal("adjustSACK(write=false) = false, want true")
	}
	if diff := cmp.Diff(spec.sack, AppendSACKBlocks(nil, b, &p)); diff != "" {
		t.Fatalf("dry run wrote (-want +got):\n%s", diff)
	}
	adjustSACK(opts, &other, true)
	want := []SACKBlock{{100, 150}, {190, 290}}
	if diff := cmp.Diff(want, AppendSACKBlocks(nil, b, &p)); diff != "" {
		t.Errorf("adjusted blocks (-want +got):\n%s", diff)
	}
}
