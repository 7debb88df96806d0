package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	// Never the machine's own /etc/ftpct/ftpct.conf.
	configPath = "/nonexistent/ftpct.conf"
	os.Exit(m.Run())
}

func TestCommandLine(t *testing.T) {
	noDaemon := filepath.Join(t.TempDir(), "none.sock")
	dir := t.TempDir()
	conf := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := conf("good.conf", "ports = [21, 2121]\nmax-expect = 100\n")
	bad := conf("bad.conf", "ports = [21]\n\nmax-expect = 0\n")
	unknown := conf("unknown.conf", "# ftpct\nmax-expects = 10\n")
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // substring
		wantStderr string // substring
	}{
		{name: "no command", args: nil, wantCode: 2, wantStderr: "usage: ftpct"},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantStderr: `unknown command "frobnicate"`},
		{name: "version", args: []string{"version"}, wantCode: 0, wantStdout: "ftpct " + versionString()},
		{name: "check defaults", args: []string{"check"}, wantCode: 0, wantStdout: "max-expect = 4096"},
		{name: "check file and flag", args: []string{"check", "--config", good, "--max-expect", "7"}, wantCode: 0,
			wantStdout: "ports = [21, 2121]"},
		{name: "check names the source", args: []string{"check", "--config", good}, wantCode: 0,
			wantStdout: "# file " + good + ":2"},
		{name: "check bad value", args: []string{"check", "--config", bad}, wantCode: 1,
			wantStderr: bad + ":3: max-expect: bad value: 0 is out of range"},
		{name: "check unknown key", args: []string{"check", "--config", unknown}, wantCode: 1,
			wantStderr: unknown + ":2: max-expects: unknown key"},
		{name: "check missing named file", args: []string{"check", "--config", filepath.Join(dir, "none.conf")}, wantCode: 1,
			wantStderr: "config file not found"},
		{name: "run refuses a bad file before anything", args: []string{"run", "--config", bad}, wantCode: 1,
			wantStderr: "max-expect: bad value"},
		{name: "max-expect 0", args: []string{"check", "--max-expect", "0"}, wantCode: 2, wantStderr: "out of range 1.."},
		{name: "max-expect -1", args: []string{"check", "--max-expect", "-1"}, wantCode: 2, wantStderr: "out of range 1.."},
		{name: "max-per-session 0", args: []string{"run", "--max-per-session", "0"}, wantCode: 2, wantStderr: "out of range 1.."},
		{name: "max-sessions -5", args: []string{"run", "--max-sessions", "-5"}, wantCode: 2, wantStderr: "out of range 1.."},
		{name: "rules has no daemon flags", args: []string{"rules", "--socket", "/x"}, wantCode: 2, wantStderr: "flag provided but not defined: -socket"},
		{name: "rules reads the config file", args: []string{"rules", "--config", good}, wantCode: 0, wantStdout: "2121"},
		{name: "stats without daemon", args: []string{"stats", "--socket", noDaemon}, wantCode: 1, wantStderr: "no ftpct daemon answers"},
		{name: "expect list without daemon", args: []string{"expect", "list", "--json", "--socket", noDaemon}, wantCode: 1, wantStderr: "no ftpct daemon answers"},
		{name: "expect without list", args: []string{"expect"}, wantCode: 2, wantStderr: "usage: ftpct expect list"},
		{name: "bad port", args: []string{"rules", "--ports", "21,x"}, wantCode: 2, wantStderr: `bad port "x"`},
		{name: "port zero", args: []string{"rules", "--ports", "0"}, wantCode: 2, wantStderr: "bad port"},
		{name: "bad mark", args: []string{"rules", "--mark", "zz"}, wantCode: 2, wantStderr: "\"zz\" is not a 32-bit number"},
		{name: "zero mark", args: []string{"rules", "--mark", "0"}, wantCode: 2, wantStderr: "mark"},
		{name: "stray argument", args: []string{"rules", "extra"}, wantCode: 2, wantStderr: `unexpected argument "extra"`},
		{name: "short timeout", args: []string{"check", "--timeout", "10ms"}, wantCode: 2, wantStderr: "-timeout"},
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

// TestRulesHelp: `ftpct rules -h` lists only the flags that change its output.
func TestRulesHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"rules", "-h"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d", code)
	}
	help := stderr.String()
	for _, want := range []string{"-ports", "-queue", "-mark", "-table", "-no-ipv6", "-deployment", "-config"} {
		if !strings.Contains(help, want) {
			t.Errorf("rules -h lacks %s:\n%s", want, help)
		}
	}
	for _, daemonOnly := range []string{"-socket", "-timeout", "-max-", "-log-level", "-no-install-rules", "-allow-low-ports"} {
		if strings.Contains(help, daemonOnly) {
			t.Errorf("rules -h lists the daemon-only %s:\n%s", daemonOnly, help)
		}
	}
}

// TestOneLineErrors: a bad flag or config file is one line on stderr.
func TestOneLineErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.conf")
	if err := os.WriteFile(bad, []byte("queue = 1\nfoo = 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
	}{
		{name: "bad value", args: []string{"run", "--max-expect", "0"}},
		{name: "unknown flag", args: []string{"run", "--bogus"}},
		{name: "daemon flag to rules", args: []string{"rules", "--timeout", "1m"}},
		{name: "unknown key", args: []string{"check", "--config", bad}},
		{name: "stray argument", args: []string{"check", "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, &stdout, &stderr); code == 0 {
				t.Errorf("exit 0")
			}
			if lines := strings.Split(strings.TrimSpace(stderr.String()), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "ftpct: ") {
				t.Errorf("stderr %q, want one line starting with \"ftpct: \"", stderr.String())
			}
		})
	}
}
