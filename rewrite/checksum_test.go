package rewrite

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestTCPChecksumMatchesGopacket compares TCPChecksum with the checksum gopacket computed
// while serializing, for odd and even payload lengths and both families.
func TestTCPChecksumMatchesGopacket(t *testing.T) {
	tests := []struct {
		name string
		spec tcpSpec
	}{
		{name: "ipv4 empty", spec: v4spec("")},
		{name: "ipv4 odd", spec: v4spec("PORT 10,0,1,2,4,1\r\n!")},
		{name: "ipv4 even", spec: v4spec("PORT 10,0,1,2,4,1\r\n")},
		{name: "ipv4 long", spec: v4spec(strings.Repeat("0123456789", 141))},
		{name: "ipv6 odd", spec: v6spec("EPRT |2|fd00::2|40001|\r\n!")},
		{name: "ipv6 even", spec: v6spec("EPRT |2|fd00::2|40001|\r\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := buildPacket(t, tt.spec)
			var p Packet
			if err := Decode(b, &p); err != nil {
				t.Fatal(err)
			}
			want := binary.BigEndian.Uint16(b[p.TCPOff+16:])
			if diff := cmp.Diff(want, TCPChecksum(b, &p)); diff != "" {
				t.Errorf("TCPChecksum (-want +got):\n%s", diff)
			}
			if !ValidTCPChecksum(b, &p) {
				t.Error("ValidTCPChecksum = false for gopacket's packet")
			}
			b[len(b)-1] ^= 1
			if len(tt.spec.payload) > 0 && ValidTCPChecksum(b, &p) {
				t.Error("ValidTCPChecksum = true after flipping a payload bit")
			}
			if !p.V6 {
				if diff := cmp.Diff(binary.BigEndian.Uint16(b[10:]), IPv4HeaderChecksum(b[:20])); diff != "" {
					t.Errorf("IPv4HeaderChecksum (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestSum(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want uint16
	}{
		{name: "empty", b: nil, want: 0},
		{name: "one byte is the high half", b: []byte{0x12}, want: 0x1200},
		{name: "RFC 1071 example", b: []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, want: 0xddf2},
		{name: "end-around carry", b: []byte{0xff, 0xff, 0x00, 0x01}, want: 0x0001},
		{name: "all ones stays negative zero", b: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, want: 0xffff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, sum(0, tt.b)); diff != "" {
				t.Errorf("sum (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(refSum(tt.b), sum(0, tt.b)); diff != "" {
				t.Errorf("sum vs naive reference (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzSum(f *testing.F) {
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Add([]byte("PORT 10,0,1,2,4,1\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := sum(0, b), refSum(b); got != want {
			t.Fatalf("sum = %#x, naive %#x", got, want)
		}
	})
}
