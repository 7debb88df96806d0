package ftpparse

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAppendArg(t *testing.T) {
	v4 := netip.MustParseAddr("198.51.100.1")
	v6 := netip.MustParseAddr("2001:db8::1")
	tests := []struct {
		name string
		m    Match
		addr netip.Addr
		port uint16
		dst  string
		want string
	}{
		{name: "PORT", m: Match{Kind: KindPORT}, addr: v4, port: 1025, want: "198,51,100,1,4,1"},
		{name: "PORT appends to dst", m: Match{Kind: KindPORT}, addr: v4, port: 1025, dst: "PORT ", want: "PORT 198,51,100,1,4,1"},
		{name: "PORT max", m: Match{Kind: KindPORT}, addr: netip.MustParseAddr("255.255.255.255"), port: 65535, want: "255,255,255,255,255,255"},
		{name: "PORT port below 256", m: Match{Kind: KindPORT}, addr: v4, port: 21, want: "198,51,100,1,0,21"},
		{name: "PORT IPv4-mapped", m: Match{Kind: KindPORT}, addr: netip.MustParseAddr("::ffff:10.0.0.1"), port: 1025, want: "10,0,0,1,4,1"},
		{name: "PORT cannot carry IPv6", m: Match{Kind: KindPORT}, addr: v6, port: 1025, dst: "keep", want: "keep"},
		{name: "PORT invalid address", m: Match{Kind: KindPORT}, port: 1025, dst: "keep", want: "keep"},
		{name: "PASV", m: Match{Kind: KindPASV}, addr: v4, port: 50000, want: "198,51,100,1,195,80"},
		{name: "EPRT IPv4", m: Match{Kind: KindEPRT, Delim: '|'}, addr: v4, port: 1025, want: "|1|198.51.100.1|1025|"},
		{name: "EPRT IPv6", m: Match{Kind: KindEPRT, Delim: '|'}, addr: v6, port: 1025, want: "|2|2001:db8::1|1025|"},
		{name: "EPRT IPv6 max", m: Match{Kind: KindEPRT, Delim: '|'}, addr: netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), port: 65535, want: "|2|ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff|65535|"},
		{name: "EPRT IPv6 zone dropped", m: Match{Kind: KindEPRT, Delim: '|'}, addr: netip.MustParseAddr("fe80::1%eth0"), port: 1025, want: "|2|fe80::1|1025|"},
		{name: "EPRT IPv4-mapped becomes af 1", m: Match{Kind: KindEPRT, Delim: '|'}, addr: netip.MustParseAddr("::ffff:10.0.0.1"), port: 1025, want: "|1|10.0.0.1|1025|"},
		{name: "EPRT keeps delimiter", m: Match{Kind: KindEPRT, Delim: '!'}, addr: v4, port: 1025, want: "!1!198.51.100.1!1025!"},
		{name: "EPRT zero delimiter defaults to bar", m: Match{Kind: KindEPRT}, addr: v4, port: 1025, want: "|1|198.51.100.1|1025|"},
		{name: "EPRT ambiguous delimiter defaults to bar", m: Match{Kind: KindEPRT, Delim: 'a'}, addr: v6, port: 1025, want: "|2|2001:db8::1|1025|"},
		{name: "EPRT invalid address", m: Match{Kind: KindEPRT, Delim: '|'}, port: 1025, want: ""},
		{name: "EPSV", m: Match{Kind: KindEPSV, Delim: '|'}, port: 6446, want: "|||6446|"},
		{name: "EPSV ignores address", m: Match{Kind: KindEPSV, Delim: '!'}, addr: v6, port: 6446, want: "!!!6446!"},
		{name: "EPSV zero delimiter defaults to bar", m: Match{Kind: KindEPSV}, port: 1, want: "|||1|"},
		{name: "None writes nothing", m: Match{}, addr: v4, port: 1025, dst: "keep", want: "keep"},
		{name: "unknown kind writes nothing", m: Match{Kind: numKinds}, addr: v4, port: 1025, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendArg([]byte(tt.dst), tt.m, tt.addr, tt.port))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("AppendArg mismatch (-want +got):\n%s", diff)
			}
			if wrote := len(got) > len(tt.dst); wrote != tt.m.Kind.Carries(tt.addr) {
				t.Errorf("AppendArg wrote %v, Carries says %v", wrote, tt.m.Kind.Carries(tt.addr))
			}
			if n := len(got) - len(tt.dst); n > MaxArgLen {
				t.Errorf("AppendArg wrote %d bytes, more than MaxArgLen %d", n, MaxArgLen)
			}
		})
	}
}

func TestMaxArgLen(t *testing.T) {
	got := AppendArg(nil, Match{Kind: KindEPRT, Delim: '|'}, netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), 65535)
	if len(got) != MaxArgLen {
		t.Errorf("longest argument %q has %d bytes, MaxArgLen = %d", got, len(got), MaxArgLen)
	}
}

func TestAppendArgAllocs(t *testing.T) {
	v4 := netip.MustParseAddr("198.51.100.1")
	v6 := netip.MustParseAddr("2001:db8:ffff:ffff:ffff:ffff:ffff:1")
	ms := []Match{{Kind: KindPORT}, {Kind: KindPASV}, {Kind: KindEPRT, Delim: '|'}, {Kind: KindEPSV, Delim: '|'}}
	buf := make([]byte, 0, MaxArgLen)
	allocs := testing.AllocsPerRun(100, func() {
		for _, m := range ms {
			buf = AppendArg(buf[:0], m, v4, 65535)
			buf = AppendArg(buf[:0], m, v6, 65535)
		}
	})
	if allocs != 0 {
		t.Errorf("AppendArg with capacity: %v allocs per run, want 0", allocs)
	}
}

func BenchmarkAppendArg(b *testing.B) {
	for _, bc := range []struct {
		name string
		m    Match
		addr netip.Addr
	}{
		{name: "PORT", m: Match{Kind: KindPORT}, addr: netip.MustParseAddr("198.51.100.1")},
		{name: "EPRT4", m: Match{Kind: KindEPRT, Delim: '|'}, addr: netip.MustParseAddr("198.51.100.1")},
		{name: "EPRT6", m: Match{Kind: KindEPRT, Delim: '|'}, addr: netip.MustParseAddr("2001:db8::1")},
		{name: "EPSV", m: Match{Kind: KindEPSV, Delim: '|'}},
	} {
		buf := make([]byte, 0, MaxArgLen)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendArg(buf[:0], bc.m, bc.addr, 50000)
			}
		})
	}
}
