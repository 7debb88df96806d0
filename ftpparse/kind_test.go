package ftpparse

import (
	"net/netip"
	"testing"
)

func TestKindString(t *testing.T) {
	tests := []struct {
		name string
		k    Kind
		want string
	}{
		{name: "none", k: KindNone, want: "none"},
		{name: "PORT", k: KindPORT, want: "PORT"},
		{name: "EPRT", k: KindEPRT, want: "EPRT"},
		{name: "PASV", k: KindPASV, want: "PASV"},
		{name: "EPSV", k: KindEPSV, want: "EPSV"},
		{name: "unknown", k: 42, want: "Kind(42)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.k.String(); got != tt.want {
				t.Errorf("Kind(%d).String() = %q, want %q", uint8(tt.k), got, tt.want)
			}
		})
	}
}

func TestKindCarries(t *testing.T) {
	v4 := netip.MustParseAddr("10.0.0.1")
	mapped := netip.MustParseAddr("::ffff:10.0.0.1")
	v6 := netip.MustParseAddr("2001:db8::1")
	zoned := netip.MustParseAddr("fe80::1%eth0")
	var invalid netip.Addr
	tests := []struct {
		name string
		k    Kind
		want [5]bool // v4, mapped, v6, zoned, invalid
	}{
		{name: "none", k: KindNone, want: [5]bool{}},
		{name: "PORT", k: KindPORT, want: [5]bool{true, true, false, false, false}},
		{name: "PASV", k: KindPASV, want: [5]bool{true, true, false, false, false}},
		{name: "EPRT", k: KindEPRT, want: [5]bool{true, true, true, true, false}},
		{name: "EPSV", k: KindEPSV, want: [5]bool{true, true, true, true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, a := range []netip.Addr{v4, mapped, v6, zoned, invalid} {
				if got := tt.k.Carries(a); got != tt.want[i] {
					t.Errorf("%v.Carries(%v) = %v, want %v", tt.k, a, got, tt.want[i])
				}
			}
		})
	}
}
