package rewrite

import (
	"errors"
	"testing"

	"github.com/ftpct/ftpct/seqnum"

	"github.com/google/go-cmp/cmp"
)

func TestResegment(t *testing.T) {
	tests := []struct {
		name    string
		v6      bool
		seq     seqnum.Value
		head    string
		tail    string
		wantErr error
	}{
		{name: "trim to head", seq: 1000, head: "NOOP\r\n"},
		{name: "held bytes before new ones", seq: 990, head: "PO", tail: "RT 10,0,1,2,4,1\r\n"},
		{name: "empty payload", seq: 1000},
		{name: "ipv6 join", v6: true, seq: 0xfffffffe, head: "EP", tail: "RT |2|2001:db8::1|5000|\r\n"},
		{name: "too big", seq: 1, head: string(make([]byte, 40000)), tail: string(make([]byte, 30000)), wantErr: ErrTooBig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkt := buildTCP(t, tt.v6, 1000, 77, "original payload\r\n")
			var p Packet
			if err := Decode(pkt, &p); err != nil {
				t.Fatal(err)
			}
			var q Packet
			out, err := Resegment(make([]byte, 0, 2048), pkt, &p, tt.seq, []byte(tt.head), []byte(tt.tail), &q)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			var d Packet
			if err := Decode(out, &d); err != nil {
				t.Fatalf("output does not decode: %v", err)
			}
			if diff := cmp.Diff(d, q, cmp.Comparer(func(a, b Packet) bool { return a == b })); diff != "" {
				t.Errorf("q differs from decoding the output (-decoded +q):\n%s", diff)
			}
			if d.Seq != tt.seq || d.Ack != 77 {
				t.Errorf("seq/ack = %d/%d, want %d/77", d.Seq, d.Ack, tt.seq)
			}
			if got, want := string(d.Payload(out)), tt.head+tt.tail; got != want {
				t.Errorf("payload %q, want %q", got, want)
			}
			if !ValidTCPChecksum(out, &d) {
				t.Error("TCP checksum invalid")
			}
			if !tt.v6 && IPv4HeaderChecksum(out[:d.TCPOff]) != uint16(out[10])<<8|uint16(out[11]) {
				t.Error("IPv4 header checksum invalid")
			}
		})
	}
}

func TestResegmentAllocs(t *testing.T) {
	pkt := buildTCP(t, false, 1000, 77, "PORT 10,0,1,2,4,1\r\n")
	var p, q Packet
	if err := Decode(pkt, &p); err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, 0, 2048)
	head, tail := []byte("PO"), []byte("RT 1\r\n")
	if n := testing.AllocsPerRun(100, func() { _, _ = Resegment(dst, pkt, &p, 998, head, tail, &q) }); n != 0 {
		t.Errorf("%v allocs, want 0", n)
	}
}

// buildTCP is a short form of buildPacket for an ACK segment with timestamps.
func buildTCP(t testing.TB, v6 bool, seq, ack uint32, payload string) []byte {
	s := tcpSpec{src: "10.0.1.2", dst: "203.0.113.2", sport: 40000, dport: 21, seq: seq, ack: ack,
		flags: FlagACK | FlagPSH, timestamps: true, payload: payload}
	if v6 {
		s.src, s.dst = "2001:db8:1::2", "2001:db8:2::2"
	}
	return buildPacket(t, s)
}

// A rewrite that grows an IPv4 packet clears DF (the path may fragment what
// the sender did not make too big); one that does not grow it keeps DF.
func TestRewriteGrowthClearsDF(t *testing.T) {
	tests := []struct {
		name   string
		repl   string
		wantDF bool
	}{
		{name: "grows", repl: "203,0,113,1", wantDF: false},
		{name: "same length", repl: "10,0,1,3", wantDF: true},
		{name: "shrinks", repl: "1,0,1,2", wantDF: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkt := buildPacket(t, tcpSpec{src: "10.0.1.2", dst: "203.0.113.2", sport: 40000, dport: 21, seq: 1000, ack: 1,
				flags: FlagACK | FlagPSH, ipv4DontFragment: true, payload: "PORT 10,0,1,2,4,1\r\n"})
			if pkt[6]&ipv4FlagDF == 0 {
				t.Fatal("test packet lacks DF")
			}
			var p, q Packet
			if err := Decode(pkt, &p); err != nil {
				t.Fatal(err)
			}
			var adj SeqAdj
			out, _, err := rewriteRec(nil, pkt, &p, []Splice{{Off: 5, End: 13, Repl: []byte(tt.repl)}}, &adj, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := Decode(out, &q); err != nil {
				t.Fatal(err)
			}
			if got := out[6]&ipv4FlagDF != 0; got != tt.wantDF {
				t.Errorf("DF = %v, want %v", got, tt.wantDF)
			}
			if IPv4HeaderChecksum(out[:q.TCPOff]) != uint16(out[10])<<8|uint16(out[11]) {
				t.Error("IPv4 header checksum invalid")
			}
			if !ValidTCPChecksum(out, &q) {
				t.Error("TCP checksum invalid")
			}
		})
	}
}

// A segment resegmented longer than the sender made it (held bytes put in
// front) clears DF; one as long or shorter keeps it.
func TestResegmentGrowthClearsDF(t *testing.T) {
	tests := []struct {
		name       string
		head, tail string
		wantDF     bool
	}{
		{name: "held bytes in front", head: "PORT 10,", tail: "PORT 10,0,1,2,4,1\r\n", wantDF: false},
		{name: "same length", head: "PORT 10,0,1", tail: ",2,4,1\r\n", wantDF: true},
		{name: "trimmed", head: "PORT", wantDF: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkt := buildPacket(t, tcpSpec{src: "10.0.1.2", dst: "203.0.113.2", sport: 40000, dport: 21, seq: 1000, ack: 1,
				flags: FlagACK | FlagPSH, ipv4DontFragment: true, payload: "PORT 10,0,1,2,4,1\r\n"})
			var p, q Packet
			if err := Decode(pkt, &p); err != nil {
				t.Fatal(err)
			}
			out, err := Resegment(nil, pkt, &p, 990, []byte(tt.head), []byte(tt.tail), &q)
			if err != nil {
				t.Fatal(err)
			}
			if got := out[6]&ipv4FlagDF != 0; got != tt.wantDF {
				t.Errorf("DF = %v, want %v", got, tt.wantDF)
			}
			if IPv4HeaderChecksum(out[:q.TCPOff]) != uint16(out[10])<<8|uint16(out[11]) || !ValidTCPChecksum(out, &q) {
				t.Error("checksum invalid")
			}
		})
	}
}

// A FIN follows the sender's last byte: it stays only on a segment that ends
// where the original did.
func TestResegmentKeepsFINOnlyAtTheEnd(t *testing.T) {
	const payload = "NOOP\r\nPORT 10,0,"
	tests := []struct {
		name       string
		seq        seqnum.Value
		head, tail string
		wantFIN    bool
	}{
		{name: "trimmed", seq: 1000, head: "NOOP\r\n", wantFIN: false},
		{name: "empty at the start", seq: 1000, wantFIN: false},
		{name: "held bytes in front", seq: 990, head: "0123456789", tail: payload, wantFIN: true},
		{name: "completed past the end", seq: 1000, head: payload + "1,2,4,1", wantFIN: false},
		{name: "same bytes", seq: 1000, head: payload, wantFIN: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkt := buildPacket(t, tcpSpec{src: "10.0.1.2", dst: "203.0.113.2", sport: 40000, dport: 21, seq: 1000, ack: 1,
				flags: FlagACK | FlagFIN, payload: payload})
			var p, q, d Packet
			if err := Decode(pkt, &p); err != nil {
				t.Fatal(err)
			}
			out, err := Resegment(nil, pkt, &p, tt.seq, []byte(tt.head), []byte(tt.tail), &q)
			if err != nil {
				t.Fatal(err)
			}
			if err := Decode(out, &d); err != nil {
				t.Fatal(err)
			}
			if got := d.Flags&FlagFIN != 0; got != tt.wantFIN || q.Flags != d.Flags {
				t.Errorf("FIN %v (q.Flags %#x, decoded %#x), want %v", got, q.Flags, d.Flags, tt.wantFIN)
			}
			if !ValidTCPChecksum(out, &d) {
				t.Error("TCP checksum invalid")
			}
		})
	}
}
