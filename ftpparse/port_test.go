package ftpparse

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func portCase(name, line, arg, addr string, port uint16) parseCase {
	return parseCase{name: name, line: line, want: match(KindPORT, line, arg, addr, port, 0), canonical: true}
}

func pasvCase(name, line, arg, addr string, port uint16) parseCase {
	return parseCase{name: name, line: line, want: match(KindPASV, line, arg, addr, port, 0), canonical: true}
}

var portCases = []parseCase{
	portCase("PORT CRLF", "PORT 10,0,1,2,4,1\r\n", "10,0,1,2,4,1", "10.0.1.2", 1025),
	portCase("PORT LF", "PORT 10,0,1,2,4,1\n", "10,0,1,2,4,1", "10.0.1.2", 1025),
	portCase("PORT no terminator", "PORT 10,0,1,2,4,1", "10,0,1,2,4,1", "10.0.1.2", 1025),
	portCase("PORT max values", "PORT 255,255,255,255,255,255\r\n", "255,255,255,255,255,255", "255.255.255.255", 65535),
	portCase("PORT zero address", "PORT 0,0,0,0,0,1\r\n", "0,0,0,0,0,1", "0.0.0.0", 1),
	portCase("PORT low port byte only", "PORT 192,168,1,2,0,21\r\n", "192,168,1,2,0,21", "192.168.1.2", 21),
	{
		name: "PORT leading zeros are plain decimal", line: "PORT 010,000,001,002,004,001\r\n",
		want: match(KindPORT, "PORT 010,000,001,002,004,001\r\n", "010,000,001,002,004,001", "10.0.1.2", 1025, 0),
	},
	{name: "PORT number 256", line: "PORT 256,0,1,2,4,1\r\n", wantErr: errOf(KindPORT, faultRange)},
	{name: "PORT port byte 256", line: "PORT 10,0,1,2,4,256\r\n", wantErr: errOf(KindPORT, faultRange)},
	{name: "PORT number 999", line: "PORT 10,0,1,999,4,1\r\n", wantErr: errOf(KindPORT, faultRange)},
	{name: "PORT four digits", line: "PORT 10,0,1,2,4,0001\r\n", wantErr: errOf(KindPORT, faultDigits)},
	{name: "PORT kernel-style overflow 266=10", line: "PORT 266,0,1,2,4,1\r\n", wantErr: errOf(KindPORT, faultRange)},
	{name: "PORT huge number", line: "PORT 4294967306,0,1,2,4,1\r\n", wantErr: errOf(KindPORT, faultDigits)},
	{name: "PORT five fields", line: "PORT 10,0,1,2,4\r\n", wantErr: errOf(KindPORT, faultFields)},
	{name: "PORT seven fields", line: "PORT 10,0,1,2,4,1,7\r\n", wantErr: errOf(KindPORT, faultFields)},
	{name: "PORT one field", line: "PORT 10\r\n", wantErr: errOf(KindPORT, faultFields)},
	{name: "PORT empty first", line: "PORT ,0,1,2,4,1\r\n", wantErr: errOf(KindPORT, faultEmpty)},
	{name: "PORT empty middle", line: "PORT 10,0,,2,4,1\r\n", wantErr: errOf(KindPORT, faultEmpty)},
	{name: "PORT trailing comma", line: "PORT 10,0,1,2,4,1,\r\n", wantErr: errOf(KindPORT, faultFields)},
	{name: "PORT trailing comma after five", line: "PORT 10,0,1,2,4,\r\n", wantErr: errOf(KindPORT, faultEmpty)},
	{name: "PORT letter", line: "PORT 10,0,1,x,4,1\r\n", wantErr: errOf(KindPORT, faultSyntax)},
	{name: "PORT hex", line: "PORT 0x0a,0,1,2,4,1\r\n", wantErr: errOf(KindPORT, faultSyntax)},
	{name: "PORT sign", line: "PORT +10,0,1,2,4,1\r\n", wantErr: errOf(KindPORT, faultSyntax)},
	{name: "PORT negative", line: "PORT 10,0,1,2,-4,1\r\n", wantErr: errOf(KindPORT, faultSyntax)},
	{name: "PORT space after comma", line: "PORT 10, 0,1,2,4,1\r\n", wantErr: errOf(KindPORT, faultSyntax)},
	{name: "PORT dots", line: "PORT 10.0.1.2,4,1\r\n", wantErr: errOf(KindPORT, faultSyntax)},
	{name: "PORT parenthesised", line: "PORT (10,0,1,2,4,1)\r\n", wantErr: errOf(KindPORT, faultSyntax)},
	{name: "PORT trailing space", line: "PORT 10,0,1,2,4,1 \r\n", wantErr: errOf(KindPORT, faultTrailing)},
	{name: "PORT trailing text", line: "PORT 10,0,1,2,4,1 please\r\n", wantErr: errOf(KindPORT, faultTrailing)},
	{name: "PORT CR inside", line: "PORT 10,0,1,2,4\r,1\n", wantErr: errOf(KindPORT, faultSyntax)},
	{name: "PORT NUL", line: "PORT 10,0,1,2,4,1\x00\r\n", wantErr: errOf(KindPORT, faultTrailing)},
	{name: "PORT port 0", line: "PORT 10,0,1,2,0,0\r\n", wantErr: errOf(KindPORT, faultPortZero)},
	{name: "PORT IPv6 text", line: "PORT ::1,4,1\r\n", wantErr: errOf(KindPORT, faultSyntax)},
}

var pasvCases = []parseCase{
	pasvCase("227 with parentheses", "227 Entering Passive Mode (10,0,1,2,4,1)\r\n", "10,0,1,2,4,1", "10.0.1.2", 1025),
	pasvCase("227 with parentheses and dot", "227 Entering Passive Mode (10,0,1,2,4,1).\r\n", "10,0,1,2,4,1", "10.0.1.2", 1025),
	pasvCase("227 without parentheses", "227 Entering Passive Mode 10,0,1,2,4,1\r\n", "10,0,1,2,4,1", "10.0.1.2", 1025),
	pasvCase("227 equals sign", "227 =10,0,0,1,4,1\r\n", "10,0,0,1,4,1", "10.0.0.1", 1025),
	pasvCase("227 numbers only", "227 10,0,0,1,4,1", "10,0,0,1,4,1", "10.0.0.1", 1025),
	pasvCase("227 LF only", "227 OK (192,168,1,1,195,80)\n", "192,168,1,1,195,80", "192.168.1.1", 50000),
	pasvCase("227 text after numbers", "227 Entering Passive Mode (10,0,1,2,4,1) done, 5 left\r\n", "10,0,1,2,4,1", "10.0.1.2", 1025),
	pasvCase("227 max values", "227 (255,255,255,255,255,255)\r\n", "255,255,255,255,255,255", "255.255.255.255", 65535),
	{
		name: "227 leading zeros", line: "227 Entering Passive Mode (010,000,001,002,004,001)\r\n",
		want: match(KindPASV, "227 Entering Passive Mode (010,000,001,002,004,001)\r\n", "010,000,001,002,004,001", "10.0.1.2", 1025, 0),
	},
	{name: "227 without numbers", line: "227 Entering Passive Mode\r\n", wantErr: errOf(KindPASV, faultMissing)},
	{name: "227 empty text", line: "227 \r\n", wantErr: errOf(KindPASV, faultMissing)},
	{name: "227 first digit is not the address", line: "227 Entering Passive Mode v2 (10,0,1,2,4,1)\r\n", wantErr: errOf(KindPASV, faultSyntax)},
	{name: "227 number 256", line: "227 Entering Passive Mode (10,0,1,256,4,1)\r\n", wantErr: errOf(KindPASV, faultRange)},
	{name: "227 four digits", line: "227 Entering Passive Mode (10,0,1,2,4,1000)\r\n", wantErr: errOf(KindPASV, faultDigits)},
	{name: "227 five fields", line: "227 Entering Passive Mode (10,0,1,2,4)\r\n", wantErr: errOf(KindPASV, faultSyntax)},
	{name: "227 five fields at end", line: "227 Entering Passive Mode 10,0,1,2,4", wantErr: errOf(KindPASV, faultFields)},
	{name: "227 seven fields", line: "227 Entering Passive Mode (10,0,1,2,4,1,9)\r\n", wantErr: errOf(KindPASV, faultFields)},
	{name: "227 empty number", line: "227 Entering Passive Mode (10,0,,2,4,1)\r\n", wantErr: errOf(KindPASV, faultEmpty)},
	{name: "227 spaces in list", line: "227 Entering Passive Mode (10, 0, 1, 2, 4, 1)\r\n", wantErr: errOf(KindPASV, faultSyntax)},
	{name: "227 port 0", line: "227 Entering Passive Mode (10,0,1,2,0,0)\r\n", wantErr: errOf(KindPASV, faultPortZero)},
}

func TestParseHostPort(t *testing.T) {
	type result struct {
		Addr  string
		Port  uint16
		N     int
		Fault fault
	}
	tests := []struct {
		name string
		in   string
		want result
	}{
		{name: "exact", in: "1,2,3,4,5,6", want: result{Addr: "1.2.3.4", Port: 5<<8 | 6, N: 11}},
		{name: "stops after p2", in: "1,2,3,4,5,6)", want: result{Addr: "1.2.3.4", Port: 5<<8 | 6, N: 11}},
		{name: "stops before comma", in: "1,2,3,4,5,6,", want: result{Addr: "1.2.3.4", Port: 5<<8 | 6, N: 11}},
		{name: "three digits", in: "100,200,250,255,1,0", want: result{Addr: "100.200.250.255", Port: 256, N: 19}},
		{name: "empty", in: "", want: result{Addr: "invalid IP", Fault: faultEmpty}},
		{name: "digit overflow", in: "1234,2,3,4,5,6", want: result{Addr: "invalid IP", Fault: faultDigits}},
		{name: "range", in: "1,2,3,4,5,300", want: result{Addr: "invalid IP", Fault: faultRange}},
		{name: "missing", in: "1,2,3", want: result{Addr: "invalid IP", Fault: faultFields}},
		{name: "bad separator", in: "1;2;3;4;5;6", want: result{Addr: "invalid IP", Fault: faultSyntax}},
		{name: "port zero", in: "1,2,3,4,0,0", want: result{Addr: "invalid IP", Fault: faultPortZero}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, port, n, f := parseHostPort([]byte(tt.in))
			got := result{Addr: addr.String(), Port: port, N: n, Fault: f}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseHostPort(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}
