package ftpparse

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// parseCase is one row of the parser tables. The tables of port_test.go, eprt_test.go
// and this file are run by TestParseClient/TestParseServer, and seed the fuzz targets.
type parseCase struct {
	name    string
	line    string
	want    Match
	wantErr error
	// canonical: AppendArg(nil, want, want.Addr, want.Port) reproduces the argument text
	// byte for byte.
	canonical bool
}

var cmpOpts = cmp.Options{cmpopts.EquateComparable(netip.Addr{}), cmpopts.EquateErrors()}

// match builds the expected Match, locating arg (the expected replacement range) in line
// independently of the parser. addr "" means no address (229).
func match(k Kind, line, arg, addr string, port uint16, delim byte) Match {
	start := strings.Index(line, arg)
	if start < 0 {
		panic("test table: " + arg + " not in " + line)
	}
	m := Match{Kind: k, Port: port, Start: start, End: start + len(arg), Delim: delim}
	if addr != "" {
		m.Addr = netip.MustParseAddr(addr)
	}
	return m
}

var clientDispatchCases = []parseCase{
	{name: "empty", line: ""},
	{name: "only CRLF", line: "\r\n"},
	{name: "other command", line: "USER anonymous\r\n"},
	{name: "PASV command is not an announcement", line: "PASV\r\n"},
	{name: "EPSV command is not an announcement", line: "EPSV\r\n"},
	{name: "longer command starting with PORT", line: "PORTX 10,0,0,1,4,1\r\n"},
	{name: "longer command starting with EPRT", line: "EPRTS |1|10.0.0.1|1025|\r\n"},
	{name: "leading space is not a command", line: " PORT 10,0,0,1,4,1\r\n"},
	{name: "leading tab is not a command", line: "\tEPRT |1|10.0.0.1|1025|\r\n"},
	{name: "short line", line: "POR"},
	{name: "PORT in the middle", line: "NOOP PORT 10,0,0,1,4,1\r\n"},
	{
		name: "lower case port", line: "port 10,0,0,1,4,1\r\n", canonical: true,
		want: match(KindPORT, "port 10,0,0,1,4,1\r\n", "10,0,0,1,4,1", "10.0.0.1", 1025, 0),
	},
	{
		name: "mixed case Eprt", line: "Eprt |1|10.0.0.1|1025|\r\n", canonical: true,
		want: match(KindEPRT, "Eprt |1|10.0.0.1|1025|\r\n", "|1|10.0.0.1|1025|", "10.0.0.1", 1025, '|'),
	},
	{
		name: "rest of the segment after the line is ignored", line: "PORT 10,0,0,1,4,1\r\nNOOP\r\n", canonical: true,
		want: match(KindPORT, "PORT 10,0,0,1,4,1\r\nNOOP\r\n", "10,0,0,1,4,1", "10.0.0.1", 1025, 0),
	},
	{name: "PORT without argument", line: "PORT\r\n", wantErr: errOf(KindPORT, faultMissing)},
	{name: "PORT with space only", line: "PORT \r\n", wantErr: errOf(KindPORT, faultMissing)},
	{name: "EPRT without argument", line: "EPRT", wantErr: errOf(KindEPRT, faultMissing)},
	{name: "PORT with tab separator", line: "PORT\t10,0,0,1,4,1\r\n", wantErr: errOf(KindPORT, faultSyntax)},
	{name: "PORT glued to number", line: "PORT10,0,0,1,4,1\r\n", wantErr: errOf(KindPORT, faultSyntax)},
	{name: "PORT with two spaces", line: "PORT  10,0,0,1,4,1\r\n", wantErr: errOf(KindPORT, faultSyntax)},
	{name: "EPRT with two spaces", line: "EPRT  |1|10.0.0.1|1025|\r\n", wantErr: errOf(KindEPRT, faultDelim)},
	{
		name: "overlong PORT line", line: "PORT 10,0,0,1,4,1" + strings.Repeat(" ", MaxLineLen) + "\r\n",
		wantErr: errOf(KindPORT, faultTooLong),
	},
	{
		name: "overlong other command is not our business", line: "STOR " + strings.Repeat("x", 2*MaxLineLen) + "\r\n",
	},
}

var serverDispatchCases = []parseCase{
	{name: "empty", line: ""},
	{name: "other reply", line: "200 PORT command successful.\r\n"},
	{name: "228 reply", line: "228 Entering Long Passive Mode (4,16,...)\r\n"},
	{name: "227 continuation line", line: "227-Entering Passive Mode (10,0,0,1,4,1)\r\n"},
	{name: "229 continuation line", line: "229-Entering Extended Passive Mode (|||1025|)\r\n"},
	{name: "227 without space", line: "227\r\n"},
	{name: "2270 is no reply", line: "2270 (10,0,0,1,4,1)\r\n"},
	{name: "leading space", line: " 227 Entering Passive Mode (10,0,0,1,4,1)\r\n"},
	{name: "code in text", line: "150 see 227 (10,0,0,1,4,1)\r\n"},
	{
		name: "overlong 227 line", line: "227 Entering Passive Mode (10,0,0,1,4,1)" + strings.Repeat(".", MaxLineLen) + "\r\n",
		wantErr: errOf(KindPASV, faultTooLong),
	},
	{
		name: "overlong 229 line", line: "229 " + strings.Repeat(".", MaxLineLen) + "(|||1025|)\r\n",
		wantErr: errOf(KindEPSV, faultTooLong),
	},
	{
		name: "line exactly MaxLineLen", line: "227 " + strings.Repeat(".", MaxLineLen-len("227 (10,0,0,1,4,1)\r\n")) + "(10,0,0,1,4,1)\r\n", canonical: true,
		want: match(KindPASV, "227 "+strings.Repeat(".", MaxLineLen-len("227 (10,0,0,1,4,1)\r\n"))+"(10,0,0,1,4,1)\r\n", "10,0,0,1,4,1", "10.0.0.1", 1025, 0),
	},
}

func allClientCases() []parseCase {
	var all []parseCase
	for _, tab := range [][]parseCase{portCases, eprtCases, clientDispatchCases} {
		all = append(all, tab...)
	}
	return all
}

func allServerCases() []parseCase {
	var all []parseCase
	for _, tab := range [][]parseCase{pasvCases, epsvCases, serverDispatchCases} {
		all = append(all, tab...)
	}
	return all
}

func TestParseClient(t *testing.T) { runParseCases(t, ParseClient, allClientCases()) }

func TestParseServer(t *testing.T) { runParseCases(t, ParseServer, allServerCases()) }

func runParseCases(t *testing.T, parse func([]byte) (Match, error), cases []parseCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parse([]byte(tc.line))
			if diff := cmp.Diff(tc.wantErr, err, cmpOpts); diff != "" {
				t.Fatalf("error mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.want, got, cmpOpts); diff != "" {
				t.Fatalf("Match mismatch (-want +got):\n%s", diff)
			}
			if got.Kind == KindNone {
				return
			}
			// Round trip: replace the range with the formatted argument and parse again.
			arg := AppendArg(nil, got, got.Addr, got.Port)
			if tc.canonical && string(arg) != tc.line[got.Start:got.End] {
				t.Errorf("AppendArg = %q, want the original %q", arg, tc.line[got.Start:got.End])
			}
			line2 := splice([]byte(tc.line), got, arg)
			if tc.canonical && string(line2) != tc.line {
				t.Errorf("spliced line = %q, want the original %q", line2, tc.line)
			}
			got2, err := parse(line2)
			if err != nil {
				t.Fatalf("reparse %q: %v", line2, err)
			}
			if diff := cmp.Diff(roundTripView(got), roundTripView(got2), cmpOpts); diff != "" {
				t.Errorf("round trip of %q mismatch (-want +got):\n%s", line2, diff)
			}
		})
	}
}

// splice returns line with line[m.Start:m.End] replaced by arg.
func splice(line []byte, m Match, arg []byte) []byte {
	out := make([]byte, 0, len(line)-(m.End-m.Start)+len(arg))
	out = append(out, line[:m.Start]...)
	out = append(out, arg...)
	return append(out, line[m.End:]...)
}

// roundTripView is what survives parse → AppendArg → parse: an IPv4-mapped EPRT address
// is re-announced as af 1, so addresses compare unmapped; the range moves with the text.
func roundTripView(m Match) Match {
	m.Addr = m.Addr.Unmap()
	m.End = 0
	return m
}

func TestParseClientTerminators(t *testing.T) {
	// The same command with "\r\n", "\n", "\r" and no terminator parses the same.
	for _, tc := range allClientCases() {
		if tc.wantErr != nil || tc.want.Kind == KindNone || !strings.HasSuffix(tc.line, "\r\n") || strings.Count(tc.line, "\n") != 1 {
			continue
		}
		base := strings.TrimSuffix(tc.line, "\r\n")
		for _, term := range []string{"\r\n", "\n", "\r", ""} {
			t.Run(tc.name+"/"+strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(term), func(t *testing.T) {
				got, err := ParseClient([]byte(base + term))
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tc.want, got, cmpOpts); diff != "" {
					t.Errorf("Match mismatch (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestParseAllocs(t *testing.T) {
	tests := []struct {
		name  string
		parse func([]byte) (Match, error)
		cases []parseCase
	}{
		{name: "ParseClient", parse: ParseClient, cases: allClientCases()},
		{name: "ParseServer", parse: ParseServer, cases: allServerCases()},
	}
	for _, tt := range tests {
		lines := make([][]byte, len(tt.cases))
		for i, tc := range tt.cases {
			lines[i] = []byte(tc.line)
		}
		allocs := testing.AllocsPerRun(50, func() {
			for _, l := range lines {
				_, _ = tt.parse(l)
			}
		})
		if allocs != 0 {
			t.Errorf("%s over %d lines (valid and malformed): %v allocs per run, want 0", tt.name, len(lines), allocs)
		}
	}
}

func BenchmarkParseClient(b *testing.B) {
	for _, bc := range []struct{ name, line string }{
		{name: "PORT", line: "PORT 192,168,100,200,195,80\r\n"},
		{name: "EPRT4", line: "EPRT |1|192.168.100.200|50000|\r\n"},
		{name: "EPRT6", line: "EPRT |2|2001:db8:1:2::10|50000|\r\n"},
		{name: "other", line: "RETR some/file/name.tar.gz\r\n"},
		{name: "malformed", line: "PORT 192,168,100,200,195,800\r\n"},
	} {
		line := []byte(bc.line)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(line)))
			for b.Loop() {
				_, _ = ParseClient(line)
			}
		})
	}
}

func BenchmarkParseServer(b *testing.B) {
	for _, bc := range []struct{ name, line string }{
		{name: "227", line: "227 Entering Passive Mode (192,168,100,200,195,80).\r\n"},
		{name: "229", line: "229 Entering Extended Passive Mode (|||50000|)\r\n"},
		{name: "other", line: "226 Transfer complete.\r\n"},
	} {
		line := []byte(bc.line)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(line)))
			for b.Loop() {
				_, _ = ParseServer(line)
			}
		})
	}
}

// BenchmarkRewrite is the whole per-line job of a NAT rewriter: parse, format, splice.
func BenchmarkRewrite(b *testing.B) {
	line := []byte("PORT 10,0,1,2,195,80\r\n")
	pub := netip.MustParseAddr("198.51.100.1")
	out := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		m, err := ParseClient(line)
		if err != nil || m.Kind == KindNone {
			b.Fatal(m, err)
		}
		out = append(out[:0], line[:m.Start]...)
		out = AppendArg(out, m, pub, m.Port)
		out = append(out, line[m.End:]...)
	}
	if !bytes.Contains(out, []byte("198,51,100,1,195,80")) {
		b.Fatalf("rewrite = %q", out)
	}
}
