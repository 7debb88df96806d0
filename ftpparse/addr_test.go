package ftpparse

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// addrTexts are checked against netip.ParseAddr, the reference: our parsers must accept
// exactly the zone-less texts of their family that netip accepts, with the same value.
var addrTexts = []string{
	"0.0.0.0", "10.0.0.1", "255.255.255.255", "1.2.3", "1.2.3.4.5", "01.2.3.4", "0.0.0.00",
	"256.1.1.1", "1..2.3", ".1.2.3", "1.2.3.4.", "1.2.3.-4", "1234.1.1.1", "", "a.b.c.d",
	"::", "::1", "1::", "1::2", "2001:db8::1", "2001:DB8::A", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::",
	"::2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "1::2::3", ":::", "1:::2", ":1::2",
	"1::2:", "12345::", "fffff::", "::ffff:10.0.0.1", "::10.0.0.1", "1:2:3:4:5:6:1.2.3.4",
	"1:2:3:4:5:6:7:1.2.3.4", "1:2:3:4:5:1.2.3.4", "::1.2.3.04", "::1.2.3", "1.2.3.4::",
	"::ffff:1.2.3.4:5", "fe80::1%eth0", "g::1", "1:2:3:4:5:6:7:8::", "::1:2:3:4:5:6:7:8",
	"0:0:0:0:0:0:0:0", "0000:0000:0000:0000:0000:0000:0000:0000", "::0.0.0.0",
}

func TestParseAddrText(t *testing.T) {
	for _, text := range addrTexts {
		t.Run(text, func(t *testing.T) { checkAddrText(t, text) })
	}
}

// checkAddrText compares parseIPv4Text/parseIPv6Text with netip.ParseAddr for text.
func checkAddrText(t *testing.T, text string) {
	t.Helper()
	ref, err := netip.ParseAddr(text)
	want4 := err == nil && ref.Is4()
	want6 := err == nil && ref.Is6() && ref.Zone() == "" && !strings.Contains(text, "%")
	got4, ok4 := parseIPv4Text([]byte(text))
	got6, ok6 := parseIPv6Text([]byte(text))
	if ok4 != want4 || (ok4 && got4 != ref) {
		t.Errorf("parseIPv4Text(%q) = %v, %v; netip.ParseAddr = %v, %v", text, got4, ok4, ref, err)
	}
	if ok6 != want6 || (ok6 && got6 != ref) {
		t.Errorf("parseIPv6Text(%q) = %v, %v; netip.ParseAddr = %v, %v", text, got6, ok6, ref, err)
	}
}

func FuzzAddrText(f *testing.F) {
	for _, text := range addrTexts {
		f.Add(text)
	}
	f.Fuzz(checkAddrText)
}

func TestParseAddrTextValues(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want netip.Addr
	}{
		{name: "mapped stays 4in6", in: "::ffff:10.0.0.1", want: netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: 10, 15: 1})},
		{name: "ellipsis in the middle", in: "1:2::7:8", want: netip.AddrFrom16([16]byte{1: 1, 3: 2, 13: 7, 15: 8})},
		{name: "leading ellipsis", in: "::7:8", want: netip.AddrFrom16([16]byte{13: 7, 15: 8})},
		{name: "trailing ellipsis", in: "1:2::", want: netip.AddrFrom16([16]byte{1: 1, 3: 2})},
		{name: "upper case", in: "ABCD::EF", want: netip.AddrFrom16([16]byte{0: 0xab, 1: 0xcd, 15: 0xef})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseIPv6Text([]byte(tt.in))
			if !ok {
				t.Fatalf("parseIPv6Text(%q) failed", tt.in)
			}
			if diff := cmp.Diff(tt.want, got, cmpOpts); diff != "" {
				t.Errorf("parseIPv6Text(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}
