package rules

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ (review the diff)")

// checkGolden compares got with the golden file, or rewrites it with -update.
func checkGolden(t *testing.T, golden, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(strings.Split(string(want), "\n"), strings.Split(got, "\n")); diff != "" {
		t.Errorf("%s (-want +got):\n%s\nIf the change is intended: go test ./rules/ -run '%s' -update", golden, diff, t.Name())
	}
}

// The golden files were reviewed by hand; the integration tests check that
// the script lists as Install's tables do and that its commands work.
func TestScriptGolden(t *testing.T) {
	tests := []struct {
		name   string
		cfg    func(*Config)
		golden string
	}{
		{name: "defaults", cfg: func(*Config) {}, golden: "testdata/script_default.nft"},
		{name: "ipv4 only, two ports, four queues, high mark", cfg: func(c *Config) {
			c.IPv6, c.Ports, c.Queues, c.Mark, c.Table = false, []uint16{21, 2121}, 4, 0x80000001, "ftp_helper"
		}, golden: "testdata/script_ipv4_two_ports.nft"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.cfg(&cfg)
			checkGolden(t, tc.golden, Script(cfg))
		})
	}
}

// commandsUnder returns the command lines ("#   COMMAND") of the section
// that starts with heading, in text printed by Script or DeploymentRules.
// A section ends at the next comment line that is not a command or at a
// line that is not a comment.
func commandsUnder(text, heading string) []string {
	var cmds []string
	on := false
	for _, line := range strings.Split(text, "\n") {
		if cmd, ok := strings.CutPrefix(line, "#   "); ok {
			if on {
				cmds = append(cmds, cmd)
			}
			continue
		}
		on = line == heading
	}
	return cmds
}

func TestScriptFollowsConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     func(*Config)
		want    []string
		notWant []string
	}{
		{name: "mark in pinhole, dnat and accept rules", cfg: func(c *Config) { c.Mark = 0x4 },
			want: []string{"ct mark set ct mark | 0x00000004", "ct mark & 0x00000004 == 0x00000004 dnat",
				"-m connmark --mark 0x00000004/0x00000004"}},
		{name: "one queue", cfg: func(c *Config) { c.Queue = 7 },
			want: []string{"tcp dport @ports queue num 7 bypass", "tcp sport @ports queue num 7 bypass"}, notWant: []string{"7-"}},
		{name: "several queues are a range", cfg: func(c *Config) { c.Queue, c.Queues = 7, 3 },
			want: []string{"tcp dport @ports queue num 7-9 bypass"}},
		{name: "ports", cfg: func(c *Config) { c.Ports = []uint16{21, 990, 2121} },
			want: []string{"elements = { 21, 990, 2121 }"}},
		{name: "no ipv6", cfg: func(c *Config) { c.IPv6 = false },
			notWant: []string{"ip6", "ipv6_addr"}},
		{name: "table name", cfg: func(c *Config) { c.Table = "t1" },
			want: []string{"table ip t1 {", "table ip6 t1 {", "delete table ip t1\n", "#   nft delete table ip6 t1\n"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.cfg(&cfg)
			s := Script(cfg)
			for _, w := range tc.want {
				if !strings.Contains(s, w) {
					t.Errorf("script lacks %q:\n%s", w, s)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(s, w) {
					t.Errorf("script has %q:\n%s", w, s)
				}
			}
			// Every shell command is in a comment; the rest is nft syntax.
			for _, line := range strings.Split(s, "\n") {
				if strings.Contains(line, "tables ") && !strings.HasPrefix(line, "#") {
					t.Errorf("iptables command outside a comment: %q", line)
				}
			}
		})
	}
}

// TestScriptCommands checks the command lists: one insert per family and
// chain, and a removal for each that names the same rule without a
// position (iptables -D takes a rule spec or a number, not both).
func TestScriptCommands(t *testing.T) {
	for _, ipv6 := range []bool{true, false} {
		cfg := DefaultConfig()
		cfg.IPv6 = ipv6
		s := Script(cfg)
		install := commandsUnder(s, scriptInstallHeading)
		remove := commandsUnder(s, scriptRemoveHeading)
		var wantInstall, wantRemove []string
		spec := "-m connmark --mark 0x00100000/0x00100000 -m comment --comment ftpct -j ACCEPT"
		for _, f := range cfg.families() {
			wantRemove = append(wantRemove, "nft delete table "+f.nft+" ftpct")
		}
		for _, f := range cfg.families() {
			for _, chain := range []string{"FORWARD", "INPUT"} {
				wantInstall = append(wantInstall, f.iptables+" -I "+chain+" 1 "+spec)
				wantRemove = append(wantRemove, f.iptables+" -D "+chain+" "+spec)
			}
		}
		if diff := cmp.Diff(wantInstall, install); diff != "" {
			t.Errorf("ipv6=%v: install commands (-want +got):\n%s", ipv6, diff)
		}
		if diff := cmp.Diff(wantRemove, remove); diff != "" {
			t.Errorf("ipv6=%v: remove commands (-want +got):\n%s", ipv6, diff)
		}
	}
}

func TestPrioName(t *testing.T) {
	tests := []struct {
		name string
		prio int
		want string
	}{
		{name: "raw", prio: prioRaw, want: "raw"},
		{name: "mangle", prio: prioMangle, want: "mangle"},
		{name: "before iptables nat", prio: prioNAT, want: "dstnat - 1"},
		{name: "other", prio: 5, want: "5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := prioName(tc.prio); got != tc.want {
				t.Errorf("prioName(%d) = %q, want %q", tc.prio, got, tc.want)
			}
		})
	}
}
