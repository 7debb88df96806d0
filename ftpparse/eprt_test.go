package ftpparse

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func eprtCase(name, line, arg, addr string, port uint16, d byte, canonical bool) parseCase {
	return parseCase{name: name, line: line, want: match(KindEPRT, line, arg, addr, port, d), canonical: canonical}
}

func epsvCase(name, line, arg string, port uint16, d byte) parseCase {
	return parseCase{name: name, line: line, want: match(KindEPSV, line, arg, "", port, d), canonical: true}
}

var eprtCases = []parseCase{
	eprtCase("EPRT IPv4", "EPRT |1|132.235.1.2|6275|\r\n", "|1|132.235.1.2|6275|", "132.235.1.2", 6275, '|', true),
	eprtCase("EPRT IPv6", "EPRT |2|1080::8:800:200c:417a|5282|\r\n", "|2|1080::8:800:200c:417a|5282|", "1080::8:800:200c:417a", 5282, '|', true),
	eprtCase("EPRT IPv6 loopback", "EPRT |2|::1|65535|\n", "|2|::1|65535|", "::1", 65535, '|', true),
	eprtCase("EPRT IPv6 full", "EPRT |2|2001:db8:1:2:3:4:5:6|1|", "|2|2001:db8:1:2:3:4:5:6|1|", "2001:db8:1:2:3:4:5:6", 1, '|', true),
	eprtCase("EPRT other delimiter", "EPRT !1!10.0.0.1!1025!\r\n", "!1!10.0.0.1!1025!", "10.0.0.1", 1025, '!', true),
	eprtCase("EPRT IPv6 upper case hex", "EPRT |2|2001:DB8::A|1025|\r\n", "|2|2001:DB8::A|1025|", "2001:db8::a", 1025, '|', false),
	eprtCase("EPRT IPv6 non-canonical zeros", "EPRT |2|2001:0db8:0:0:0:0:0:1|1025|\r\n", "|2|2001:0db8:0:0:0:0:0:1|1025|", "2001:db8::1", 1025, '|', false),
	eprtCase("EPRT IPv6 with embedded IPv4", "EPRT |2|64:ff9b::10.0.0.1|1025|\r\n", "|2|64:ff9b::10.0.0.1|1025|", "64:ff9b::a00:1", 1025, '|', false),
	// An IPv4-mapped address is kept as given (Is4In6); AppendArg re-announces it as af 1.
	eprtCase("EPRT IPv4-mapped IPv6", "EPRT |2|::ffff:10.0.0.1|1025|\r\n", "|2|::ffff:10.0.0.1|1025|", "::ffff:10.0.0.1", 1025, '|', false),
	eprtCase("EPRT port with leading zeros", "EPRT |1|10.0.0.1|01025|\r\n", "|1|10.0.0.1|01025|", "10.0.0.1", 1025, '|', false),
	{name: "EPRT unknown af 3", line: "EPRT |3|10.0.0.1|1025|\r\n", wantErr: errOf(KindEPRT, faultAF)},
	{name: "EPRT af 01", line: "EPRT |01|10.0.0.1|1025|\r\n", wantErr: errOf(KindEPRT, faultAF)},
	{name: "EPRT empty af", line: "EPRT ||10.0.0.1|1025|\r\n", wantErr: errOf(KindEPRT, faultAF)},
	{name: "EPRT af 1 with IPv6", line: "EPRT |1|::1|1025|\r\n", wantErr: errOf(KindEPRT, faultFamily)},
	{name: "EPRT af 2 with IPv4", line: "EPRT |2|10.0.0.1|1025|\r\n", wantErr: errOf(KindEPRT, faultFamily)},
	{name: "EPRT zone", line: "EPRT |2|fe80::1%eth0|1025|\r\n", wantErr: errOf(KindEPRT, faultZone)},
	{name: "EPRT empty zone", line: "EPRT |2|fe80::1%|1025|\r\n", wantErr: errOf(KindEPRT, faultZone)},
	{name: "EPRT empty address", line: "EPRT |1||1025|\r\n", wantErr: errOf(KindEPRT, faultAddr)},
	{name: "EPRT IPv4 octet 256", line: "EPRT |1|10.0.0.256|1025|\r\n", wantErr: errOf(KindEPRT, faultAddr)},
	{name: "EPRT IPv4 leading zero", line: "EPRT |1|10.0.0.01|1025|\r\n", wantErr: errOf(KindEPRT, faultAddr)},
	{name: "EPRT IPv4 three fields", line: "EPRT |1|10.0.1|1025|\r\n", wantErr: errOf(KindEPRT, faultAddr)},
	{name: "EPRT IPv4 as integer", line: "EPRT |1|167772161|1025|\r\n", wantErr: errOf(KindEPRT, faultAddr)},
	{name: "EPRT IPv4 hostname", line: "EPRT |1|example.com|1025|\r\n", wantErr: errOf(KindEPRT, faultAddr)},
	{name: "EPRT IPv4 trailing dot", line: "EPRT |1|10.0.0.1.|1025|\r\n", wantErr: errOf(KindEPRT, faultAddr)},
	{name: "EPRT IPv6 two ellipses", line: "EPRT |2|1::2::3|1025|\r\n", wantErr: errOf(KindEPRT, faultAddr)},
	{name: "EPRT IPv6 five hex digits", line: "EPRT |2|12345::1|1025|\r\n", wantErr: errOf(KindEPRT, faultAddr)},
	{name: "EPRT IPv6 nine groups", line: "EPRT |2|1:2:3:4:5:6:7:8:9|1025|\r\n", wantErr: errOf(KindEPRT, faultAddr)},
	{name: "EPRT IPv6 seven groups", line: "EPRT |2|1:2:3:4:5:6:7|1025|\r\n", wantErr: errOf(KindEPRT, faultAddr)},
	{name: "EPRT IPv6 brackets", line: "EPRT |2|[::1]|1025|\r\n", wantErr: errOf(KindEPRT, faultAddr)},
	{name: "EPRT port 0", line: "EPRT |1|10.0.0.1|0|\r\n", wantErr: errOf(KindEPRT, faultPortZero)},
	{name: "EPRT port 65536", line: "EPRT |1|10.0.0.1|65536|\r\n", wantErr: errOf(KindEPRT, faultRange)},
	{name: "EPRT port six digits", line: "EPRT |1|10.0.0.1|001025|\r\n", wantErr: errOf(KindEPRT, faultDigits)},
	{name: "EPRT empty port", line: "EPRT |1|10.0.0.1||\r\n", wantErr: errOf(KindEPRT, faultEmpty)},
	{name: "EPRT port not a number", line: "EPRT |1|10.0.0.1|ftp|\r\n", wantErr: errOf(KindEPRT, faultSyntax)},
	{name: "EPRT long port not a number", line: "EPRT |1|10.0.0.1|ftpdata|\r\n", wantErr: errOf(KindEPRT, faultSyntax)},
	{name: "EPRT missing last delimiter", line: "EPRT |1|10.0.0.1|1025\r\n", wantErr: errOf(KindEPRT, faultFields)},
	{name: "EPRT missing port", line: "EPRT |1|10.0.0.1|\r\n", wantErr: errOf(KindEPRT, faultFields)},
	{name: "EPRT extra field", line: "EPRT |1|10.0.0.1|1025|7|\r\n", wantErr: errOf(KindEPRT, faultFields)},
	{name: "EPRT trailing text", line: "EPRT |1|10.0.0.1|1025| \r\n", wantErr: errOf(KindEPRT, faultTrailing)},
	{name: "EPRT mixed delimiters", line: "EPRT |1!10.0.0.1!1025|\r\n", wantErr: errOf(KindEPRT, faultFields)},
	{name: "EPRT digit delimiter", line: "EPRT 919109.0.0.1910259\r\n", wantErr: errOf(KindEPRT, faultDelim)},
	{name: "EPRT dot delimiter", line: "EPRT .1.10.0.0.1.1025.\r\n", wantErr: errOf(KindEPRT, faultDelim)},
	{name: "EPRT colon delimiter", line: "EPRT :2:::1:1025:\r\n", wantErr: errOf(KindEPRT, faultDelim)},
	{name: "EPRT hex letter delimiter", line: "EPRT a2a::1a1025a\r\n", wantErr: errOf(KindEPRT, faultDelim)},
	{name: "EPRT control delimiter", line: "EPRT \x011\x0110.0.0.1\x011025\x01\r\n", wantErr: errOf(KindEPRT, faultDelim)},
	{name: "EPRT DEL delimiter", line: "EPRT \x7f1\x7f10.0.0.1\x7f1025\x7f\r\n", wantErr: errOf(KindEPRT, faultDelim)},
}

var epsvCases = []parseCase{
	epsvCase("229 RFC 2428 example", "229 Entering Extended Passive Mode (|||6446|)\r\n", "|||6446|", 6446, '|'),
	epsvCase("229 with dot", "229 Entering Extended Passive Mode (|||6446|).\r\n", "|||6446|", 6446, '|'),
	epsvCase("229 other delimiter", "229 EPSV ok (!!!1025!)\n", "!!!1025!", 1025, '!'),
	epsvCase("229 letter delimiter", "229 (zzz65535z)", "zzz65535z", 65535, 'z'),
	epsvCase("229 paren delimiter", "229 ((((1025()\r\n", "(((1025(", 1025, '('),
	epsvCase("229 port 1", "229 (|||1|)\r\n", "|||1|", 1, '|'),
	{
		name: "229 leading zero port", line: "229 (|||01025|)\r\n",
		want: match(KindEPSV, "229 (|||01025|)\r\n", "|||01025|", "", 1025, '|'),
	},
	{name: "229 without parentheses", line: "229 Entering Extended Passive Mode |||6446|\r\n", wantErr: errOf(KindEPSV, faultParen)},
	{name: "229 without closing parenthesis", line: "229 Entering Extended Passive Mode (|||6446|\r\n", wantErr: errOf(KindEPSV, faultParen)},
	{name: "229 text before closing parenthesis", line: "229 (|||6446| )\r\n", wantErr: errOf(KindEPSV, faultParen)},
	{name: "229 first parenthesis is not the argument", line: "229 Entering (Extended) Passive Mode (|||6446|)\r\n", wantErr: errOf(KindEPSV, faultSyntax)},
	{name: "229 two delimiters", line: "229 (||6446|)\r\n", wantErr: errOf(KindEPSV, faultSyntax)},
	{name: "229 with address", line: "229 (|1|10.0.0.1|6446|)\r\n", wantErr: errOf(KindEPSV, faultSyntax)},
	{name: "229 mixed delimiters", line: "229 (|!|6446|)\r\n", wantErr: errOf(KindEPSV, faultSyntax)},
	{name: "229 digit delimiter", line: "229 (1116446 1)\r\n", wantErr: errOf(KindEPSV, faultDelim)},
	{name: "229 space delimiter", line: "229 (   6446 )\r\n", wantErr: errOf(KindEPSV, faultDelim)},
	{name: "229 short", line: "229 (||", wantErr: errOf(KindEPSV, faultFields)},
	{name: "229 no closing delimiter", line: "229 (|||6446)\r\n", wantErr: errOf(KindEPSV, faultFields)},
	{name: "229 empty port", line: "229 (||||)\r\n", wantErr: errOf(KindEPSV, faultEmpty)},
	{name: "229 port 0", line: "229 (|||0|)\r\n", wantErr: errOf(KindEPSV, faultPortZero)},
	{name: "229 port 65536", line: "229 (|||65536|)\r\n", wantErr: errOf(KindEPSV, faultRange)},
	{name: "229 port six digits", line: "229 (|||100000|)\r\n", wantErr: errOf(KindEPSV, faultDigits)},
	{name: "229 port letters", line: "229 (|||64x6|)\r\n", wantErr: errOf(KindEPSV, faultSyntax)},
	{name: "229 nothing", line: "229 \r\n", wantErr: errOf(KindEPSV, faultParen)},
}

func TestDelimiters(t *testing.T) {
	// Every byte, classified by hand from RFC 2428 and the rules in the doc comments.
	for c := range 256 {
		b := byte(c)
		wantEPSV := b >= 33 && b <= 126 && (b < '0' || b > '9')
		wantEPRT := wantEPSV && b != '.' && b != ':' && b != '%' &&
			(b < 'a' || b > 'f') && (b < 'A' || b > 'F')
		if got := validEPSVDelim(b); got != wantEPSV {
			t.Errorf("validEPSVDelim(%q) = %v, want %v", b, got, wantEPSV)
		}
		if got := validEPRTDelim(b); got != wantEPRT {
			t.Errorf("validEPRTDelim(%q) = %v, want %v", b, got, wantEPRT)
		}
	}
}

func TestParsePortText(t *testing.T) {
	type result struct {
		Port  uint16
		Fault fault
	}
	tests := []struct {
		name string
		in   string
		want result
	}{
		{name: "one digit", in: "1", want: result{Port: 1}},
		{name: "max", in: "65535", want: result{Port: 65535}},
		{name: "leading zeros", in: "00021", want: result{Port: 21}},
		{name: "empty", in: "", want: result{Fault: faultEmpty}},
		{name: "zero", in: "0", want: result{Fault: faultPortZero}},
		{name: "zeros", in: "00000", want: result{Fault: faultPortZero}},
		{name: "overflow", in: "65536", want: result{Fault: faultRange}},
		{name: "max five digits", in: "99999", want: result{Fault: faultRange}},
		{name: "six digits", in: "100000", want: result{Fault: faultDigits}},
		{name: "uint16 wrap 65537", in: "65537", want: result{Fault: faultRange}},
		{name: "space", in: " 21", want: result{Fault: faultSyntax}},
		{name: "sign", in: "+21", want: result{Fault: faultSyntax}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port, f := parsePortText([]byte(tt.in))
			if diff := cmp.Diff(tt.want, result{Port: port, Fault: f}); diff != "" {
				t.Errorf("parsePortText(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}
