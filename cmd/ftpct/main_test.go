package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func TestCommandLine(t *testing.T) {
	noDaemon := filepath.Join(t.TempDir(), "none.sock")
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // substring
		wantStderr string // substring
	}{
		{name: "no command", args: nil, wantCode: 2, wantStderr: "usage: ftpct"},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantStderr: `unknown command "frobnicate"`},
		{name: "version", args: []string{"version"}, wantCode: 0, wantStdout: "ftpct " + version},
		{name: "stats without daemon", args: []string{"stats", "--socket", noDaemon}, wantCode: 1, wantStderr: "no ftpct daemon answers"},
		{name: "expect list without daemon", args: []string{"expect", "list", "--json", "--socket", noDaemon}, wantCode: 1, wantStderr: "no ftpct daemon answers"},
		{name: "expect without list", args: []string{"expect"}, wantCode: 2, wantStderr: "usage: ftpct expect list"},
		{name: "bad port", args: []string{"rules", "--ports", "21,x"}, wantCode: 2, wantStderr: `bad port "x"`},
		{name: "port zero", args: []string{"rules", "--ports", "0"}, wantCode: 2, wantStderr: "bad port"},
		{name: "bad mark", args: []string{"rules", "--mark", "zz"}, wantCode: 2, wantStderr: "bad mark"},
		{name: "zero mark", args: []string{"rules", "--mark", "0"}, wantCode: 2, wantStderr: "mark"},
		{name: "stray argument", args: []string{"rules", "extra"}, wantCode: 2, wantStderr: `unexpected argument "extra"`},
		{name: "short timeout", args: []string{"rules", "--timeout", "10ms"}, wantCode: 2, wantStderr: "--timeout"},
		{name: "rules for a server host", args: []string{"rules", "--deployment", "serverhost"}, wantCode: 0,
			wantStdout: "#   iptables -t raw -A PREROUTING -p tcp --dport 21 -j CT --helper ftp"},
		{name: "rules for a client host", args: []string{"rules", "--deployment", "clienthost"}, wantCode: 0,
			wantStdout: "#   ip6tables -t raw -A OUTPUT -p tcp --dport 21 -j CT --helper ftp"},
		{name: "rules for a routed firewall, two ports", args: []string{"rules", "--deployment", "routed", "--ports", "21,2121"}, wantCode: 0,
			wantStdout: "#   iptables -A FORWARD -i LAN -p tcp --dport 2121 -m conntrack --ctstate NEW -j ACCEPT"},
		{name: "rules for a DNAT gateway", args: []string{"rules", "--deployment", "dnat"}, wantCode: 0,
			wantStdout: "-j DNAT --to-destination SERVER"},
		{name: "rules for both ends translated", args: []string{"rules", "--deployment", "doublenat"}, wantCode: 0,
			wantStdout: "-j SNAT --to-source SNATADDR"},
		{name: "rules for a masquerading gateway", args: []string{"rules", "--deployment", "gateway"}, wantCode: 0,
			wantStdout: "-o WAN -j MASQUERADE"},
		{name: "rules for an IPv6 alias", args: []string{"rules", "--deployment", "routed6"}, wantCode: 0,
			wantStdout: "#   ip6tables -P FORWARD DROP"},
		{name: "unknown deployment", args: []string{"rules", "--deployment", "moon"}, wantCode: 2,
			wantStderr: `unknown deployment "moon"`},
		{name: "rules prints the table", args: []string{"rules", "--ports", "21,2121", "--queue", "7"}, wantCode: 0, wantStdout: "2121"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout %q does not contain %q", stdout.String(), tt.wantStdout)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}
