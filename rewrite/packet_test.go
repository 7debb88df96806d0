package rewrite

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func v4spec(payload string) tcpSpec {
	return tcpSpec{src: "10.0.1.2", dst: "203.0.113.5", sport: 40000, dport: 21,
		seq: 1000, ack: 5000, flags: FlagACK | FlagPSH, payload: payload}
}

func v6spec(payload string) tcpSpec {
	return tcpSpec{src: "fd00::2", dst: "2001:db8::21", sport: 40000, dport: 21,
		seq: 1000, ack: 5000, flags: FlagACK | FlagPSH, payload: payload}
}

func TestDecode(t *testing.T) {
	withTS := v4spec("PORT 1,2,3,4,5,6\r\n")
	withTS.timestamps = true
	trailing := v4spec("NOOP\r\n")
	trailing.trailing = 6
	df := v4spec("NOOP\r\n")
	df.ipv4DontFragment = true
	v6ext := v6spec("NOOP\r\n")
	v6ext.hopByHop, v6ext.dstOpts = true, true
	syn := v4spec("")
	syn.flags = FlagSYN
	tests := []struct {
		name string
		pkt  []byte
		want Packet
	}{
		{
			name: "ipv4", pkt: buildPacket(t, v4spec("NOOP\r\n")),
			want: Packet{Src: netip.MustParseAddr("10.0.1.2"), Dst: netip.MustParseAddr("203.0.113.5"),
				SrcPort: 40000, DstPort: 21, Seq: 1000, Ack: 5000, Flags: FlagACK | FlagPSH,
				IPHeaderLen: 20, TCPOff: 20, PayloadOff: 40, Len: 46},
		},
		{
			name: "ipv4 with TCP options", pkt: buildPacket(t, withTS),
			want: Packet{Src: netip.MustParseAddr("10.0.1.2"), Dst: netip.MustParseAddr("203.0.113.5"),
				SrcPort: 40000, DstPort: 21, Seq: 1000, Ack: 5000, Flags: FlagACK | FlagPSH,
				IPHeaderLen: 20, TCPOff: 20, PayloadOff: 52, Len: 70},
		},
		{
			name: "ipv4 with trailing link padding", pkt: buildPacket(t, trailing),
			want: Packet{Src: netip.MustParseAddr("10.0.1.2"), Dst: netip.MustParseAddr("203.0.113.5"),
				SrcPort: 40000, DstPort: 21, Seq: 1000, Ack: 5000, Flags: FlagACK | FlagPSH,
				IPHeaderLen: 20, TCPOff: 20, PayloadOff: 40, Len: 46},
		},
		{
			name: "ipv4 don't fragment is not a fragment", pkt: buildPacket(t, df),
			want: Packet{Src: netip.MustParseAddr("10.0.1.2"), Dst: netip.MustParseAddr("203.0.113.5"),
				SrcPort: 40000, DstPort: 21, Seq: 1000, Ack: 5000, Flags: FlagACK | FlagPSH,
				IPHeaderLen: 20, TCPOff: 20, PayloadOff: 40, Len: 46},
		},
		{
			name: "ipv4 SYN", pkt: buildPacket(t, syn),
			want: Packet{Src: netip.MustParseAddr("10.0.1.2"), Dst: netip.MustParseAddr("203.0.113.5"),
				SrcPort: 40000, DstPort: 21, Seq: 1000, Ack: 5000, Flags: FlagSYN,
				IPHeaderLen: 20, TCPOff: 20, PayloadOff: 40, Len: 40},
		},
		{
			name: "ipv6", pkt: buildPacket(t, v6spec("NOOP\r\n")),
			want: Packet{V6: true, Src: netip.MustParseAddr("fd00::2"), Dst: netip.MustParseAddr("2001:db8::21"),
				SrcPort: 40000, DstPort: 21, Seq: 1000, Ack: 5000, Flags: FlagACK | FlagPSH,
				IPHeaderLen: 40, TCPOff: 40, PayloadOff: 60, Len: 66},
		},
		{
			name: "ipv6 with hop-by-hop and destination options", pkt: buildPacket(t, v6ext),
			want: Packet{V6: true, Src: netip.MustParseAddr("fd00::2"), Dst: netip.MustParseAddr("2001:db8::21"),
				SrcPort: 40000, DstPort: 21, Seq: 1000, Ack: 5000, Flags: FlagACK | FlagPSH,
				IPHeaderLen: 56, TCPOff: 56, PayloadOff: 76, Len: 82},
		},
		{
			name: "ipv6 with routing header", pkt: insertIPv6ExtHeader(buildPacket(t, v6spec("NOOP\r\n")), protoRouting),
			want: Packet{V6: true, Src: netip.MustParseAddr("fd00::2"), Dst: netip.MustParseAddr("2001:db8::21"),
				SrcPort: 40000, DstPort: 21, Seq: 1000, Ack: 5000, Flags: FlagACK | FlagPSH,
				IPHeaderLen: 48, TCPOff: 48, PayloadOff: 68, Len: 74},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Packet
			if err := Decode(tt.pkt, &got); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpAddr); diff != "" {
				t.Errorf("Decode (-want +got):\n%s", diff)
			}
		})
	}
}

// mutate returns a copy of b changed by f.
func mutate(b []byte, f func(b []byte) []byte) []byte {
	return f(append([]byte(nil), b...))
}

func TestDecodeErrors(t *testing.T) {
	v4 := buildPacket(t, v4spec("NOOP\r\n"))
	v6 := buildPacket(t, v6spec("NOOP\r\n"))
	tests := []struct {
		name string
		pkt  []byte
		want error
	}{
		{name: "empty", pkt: nil, want: ErrShort},
		{name: "version 5", pkt: mutate(v4, func(b []byte) []byte { b[0] = 0x55; return b }), want: ErrVersion},
		{name: "ipv4 shorter than header", pkt: v4[:19], want: ErrShort},
		{name: "ipv4 IHL 4", pkt: mutate(v4, func(b []byte) []byte { b[0] = 0x44; return b }), want: ErrBadHeader},
		{name: "ipv4 total length beyond buffer", pkt: v4[:len(v4)-1], want: ErrShort},
		{name: "ipv4 total length below IHL", pkt: mutate(v4, func(b []byte) []byte { binary.BigEndian.PutUint16(b[2:], 19); return b }), want: ErrBadHeader},
		{name: "ipv4 UDP", pkt: mutate(v4, func(b []byte) []byte { b[9] = 17; return b }), want: ErrNotTCP},
		{name: "ipv4 more fragments", pkt: mutate(v4, func(b []byte) []byte { b[6] |= 0x20; return b }), want: ErrFragment},
		{name: "ipv4 fragment offset", pkt: mutate(v4, func(b []byte) []byte { b[7] = 1; return b }), want: ErrFragment},
		{name: "ipv4 too short for TCP header", pkt: mutate(v4, func(b []byte) []byte { binary.BigEndian.PutUint16(b[2:], 39); return b }), want: ErrShort},
		{name: "tcp data offset 4", pkt: mutate(v4, func(b []byte) []byte { b[32] = 0x40; return b }), want: ErrBadHeader},
		{name: "tcp data offset beyond packet", pkt: mutate(v4, func(b []byte) []byte { b[32] = 0xf0; return b }), want: ErrBadHeader},
		{name: "ipv6 shorter than header", pkt: v6[:39], want: ErrShort},
		{name: "ipv6 payload length beyond buffer", pkt: v6[:len(v6)-1], want: ErrShort},
		{name: "ipv6 jumbogram", pkt: mutate(v6, func(b []byte) []byte { b[4], b[5] = 0, 0; return b }), want: ErrBadHeader},
		{name: "ipv6 fragment header", pkt: insertIPv6ExtHeader(v6, protoFragment), want: ErrFragment},
		{name: "ipv6 ICMPv6", pkt: mutate(v6, func(b []byte) []byte { b[6] = 58; return b }), want: ErrNotTCP},
		{name: "ipv6 no next header", pkt: insertIPv6ExtHeader(mutate(v6, func(b []byte) []byte { b[6] = 59; return b }), protoDstOpts), want: ErrNotTCP},
		{name: "ipv6 hop-by-hop not first", pkt: insertIPv6ExtHeader(insertIPv6ExtHeader(v6, protoHopByHop), protoDstOpts), want: ErrBadHeader},
		{name: "ipv6 extension header beyond packet", pkt: mutate(insertIPv6ExtHeader(v6, protoDstOpts), func(b []byte) []byte { b[41] = 9; return b }), want: ErrShort},
		{name: "ipv6 extension header loop", pkt: func() []byte {
			b := v6
			for range maxExtHeaders + 1 {
				b = insertIPv6ExtHeader(b, protoDstOpts)
			}
			return b
		}(), want: ErrBadHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Packet
			if err := Decode(tt.pkt, &p); !errors.Is(err, tt.want) {
				t.Errorf("Decode = %v, want %v", err, tt.want)
			}
			// A rejected packet costs no allocation (a queue sees many).
			if n := testing.AllocsPerRun(100, func() { _ = Decode(tt.pkt, &p) }); n != 0 {
				t.Errorf("Decode of a rejected packet: %v allocs, want 0", n)
			}
		})
	}
}

func TestPayloadAndAddrPorts(t *testing.T) {
	b := buildPacket(t, v6spec("PASV\r\n"))
	var p Packet
	if err := Decode(b, &p); err != nil {
		t.Fatal(err)
	}
	type view struct {
		Payload  string
		Src, Dst string
	}
	want := view{Payload: "PASV\r\n", Src: "[fd00::2]:40000", Dst: "[2001:db8::21]:21"}
	got := view{Payload: string(p.Payload(b)), Src: p.SrcAddrPort().String(), Dst: p.DstAddrPort().String()}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
