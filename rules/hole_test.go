package rules

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestKeyEncoding(t *testing.T) {
	tests := []struct {
		name      string
		hole      Hole
		wantKey   []byte
		wantValue []byte
	}{
		{
			name: "ipv4: each field padded to 4 bytes",
			hole: Hole{Peer: netip.MustParseAddr("10.0.0.1"), Addr: netip.MustParseAddr("192.0.2.2"), Port: 0x1234,
				To: netip.MustParseAddrPort("10.1.2.3:21")},
			wantKey:   []byte{10, 0, 0, 1, 192, 0, 2, 2, 0x12, 0x34, 0, 0},
			wantValue: []byte{10, 1, 2, 3, 0, 21, 0, 0},
		},
		{
			name: "ipv4-mapped addresses are encoded as ipv4",
			hole: Hole{Peer: netip.MustParseAddr("::ffff:10.0.0.1"), Addr: netip.MustParseAddr("::ffff:10.0.0.2"), Port: 65535,
				To: netip.MustParseAddrPort("[::ffff:10.0.0.3]:1")},
			wantKey:   []byte{10, 0, 0, 1, 10, 0, 0, 2, 0xff, 0xff, 0, 0},
			wantValue: []byte{10, 0, 0, 3, 0, 1, 0, 0},
		},
		{
			name: "ipv6",
			hole: Hole{Peer: netip.MustParseAddr("2001:db8::1"), Addr: netip.MustParseAddr("2001:db8::2"), Port: 2000,
				To: netip.MustParseAddrPort("[fd00::5]:3000")},
			wantKey: []byte{
				0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
				0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
				0x07, 0xd0, 0, 0},
			wantValue: []byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0x0b, 0xb8, 0, 0},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.hole.Timeout = time.Second
			h, err := tc.hole.normalize()
			if err != nil {
				t.Fatalf("normalize: %v", err)
			}
			if diff := cmp.Diff(tc.wantKey, h.expectKey()); diff != "" {
				t.Errorf("expectKey (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantValue, h.xlateValue()); diff != "" {
				t.Errorf("xlateValue (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHoleNormalize(t *testing.T) {
	v4, v4b, v6 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("2001:db8::1")
	tests := []struct {
		name        string
		hole        Hole
		wantErr     string // "" = valid
		wantTimeout time.Duration
	}{
		{name: "valid", hole: Hole{Peer: v4, Addr: v4b, Port: 1, Timeout: time.Second}, wantTimeout: time.Second},
		{name: "sub-millisecond timeout rounds up", hole: Hole{Peer: v4, Addr: v4b, Port: 1, Timeout: time.Microsecond}, wantTimeout: time.Millisecond},
		{name: "timeout rounds up to whole ms", hole: Hole{Peer: v4, Addr: v4b, Port: 1, Timeout: 1500 * time.Microsecond}, wantTimeout: 2 * time.Millisecond},
		{name: "no peer", hole: Hole{Addr: v4b, Port: 1, Timeout: time.Second}, wantErr: "peer and address are required"},
		{name: "mixed families", hole: Hole{Peer: v4, Addr: v6, Port: 1, Timeout: time.Second}, wantErr: "peer and address are of different families"},
		{name: "zone", hole: Hole{Peer: v6.WithZone("eth0"), Addr: v6, Port: 1, Timeout: time.Second}, wantErr: "zoned addresses are not supported"},
		{name: "port 0", hole: Hole{Peer: v4, Addr: v4b, Timeout: time.Second}, wantErr: "port 0"},
		{name: "dnat across families", hole: Hole{Peer: v4, Addr: v4b, Port: 1, To: netip.AddrPortFrom(v6, 1), Timeout: time.Second}, wantErr: "DNAT target of a different family"},
		{name: "dnat port 0", hole: Hole{Peer: v4, Addr: v4b, Port: 1, To: netip.AddrPortFrom(v4, 0), Timeout: time.Second}, wantErr: "DNAT target port 0"},
		{name: "no timeout", hole: Hole{Peer: v4, Addr: v4b, Port: 1}, wantErr: "timeout must be positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := tc.hole.normalize()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("normalize: %v", err)
				}
				if diff := cmp.Diff(tc.wantTimeout, h.timeoutDuration()); diff != "" {
					t.Errorf("timeout (-want +got):\n%s", diff)
				}
				return
			}
			if !errors.Is(err, ErrInvalidHole) {
				t.Fatalf("normalize error %v, want ErrInvalidHole", err)
			}
			if got := err.Error(); len(got) < len(tc.wantErr) || got[len(got)-len(tc.wantErr):] != tc.wantErr {
				t.Errorf("normalize error %q, want suffix %q", got, tc.wantErr)
			}
		})
	}
}

func TestFlowRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		f    Flow
		n    int
	}{
		{"ipv4", Flow{Src: netip.MustParseAddrPort("10.0.1.2:40000"), Dst: netip.MustParseAddrPort("198.51.100.2:21")}, 4},
		{"ipv6", Flow{Src: netip.MustParseAddrPort("[2001:db8::2]:1"), Dst: netip.MustParseAddrPort("[2001:db8:1::2]:65535")}, 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFlow(tt.f.String())
			if err != nil {
				t.Fatalf("ParseFlow(%q): %v", tt.f.String(), err)
			}
			if got != tt.f {
				t.Errorf("ParseFlow(String()) = %v, want %v", got, tt.f)
			}
			back, ok := parseHoldKey(tt.f.holdKey(), tt.n)
			if !ok || back != tt.f {
				t.Errorf("parseHoldKey(holdKey()) = %v, %v; want %v", back, ok, tt.f)
			}
		})
	}
	for _, bad := range []string{"", "10.0.0.1:1", "10.0.0.1:1 x", "x 10.0.0.1:1"} {
		if _, err := ParseFlow(bad); err == nil {
			t.Errorf("ParseFlow(%q) accepted", bad)
		}
	}
}
