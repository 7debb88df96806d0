package rules

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The golden files were reviewed by hand and are loaded with `nft -f` by
// TestScriptLoads (integration). Regenerate deliberately, never blindly.
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
			want, err := os.ReadFile(tc.golden)
			if err != nil {
				t.Fatal(err)
			}
			cfg := DefaultConfig()
			tc.cfg(&cfg)
			if diff := cmp.Diff(string(want), Script(cfg)); diff != "" {
				t.Errorf("Script (-want +got):\n%s", diff)
			}
		})
	}
}

func TestScriptFollowsConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     func(*Config)
		want    []string
		notWant []string
	}{
		{name: "mark in pinhole, dnat and accept rules", cfg: func(c *Config) { c.Mark = 0x4 },
			want: []string{"ct mark set ct mark or 0x00000004", "ct mark and 0x00000004 == 0x00000004",
				"-m connmark --mark 0x00000004/0x00000004"}},
		{name: "one queue uses queue-num", cfg: func(c *Config) { c.Queue = 7 },
			want: []string{"-j NFQUEUE --queue-num 7 --queue-bypass"}, notWant: []string{"queue-balance"}},
		{name: "several queues use queue-balance", cfg: func(c *Config) { c.Queue, c.Queues = 7, 3 },
			want: []string{"-j NFQUEUE --queue-balance 7:9 --queue-bypass"}, notWant: []string{"queue-num"}},
		{name: "no ipv6", cfg: func(c *Config) { c.IPv6 = false },
			notWant: []string{"ip6", "ipv6_addr"}},
		{name: "table name", cfg: func(c *Config) { c.Table = "t1" },
			want: []string{"table ip t1 {", "table ip6 t1 {", "delete table ip t1\n"}},
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
			// Every line that is not a comment is nft syntax; every shell
			// command is in a comment.
			for _, line := range strings.Split(s, "\n") {
				if strings.Contains(line, "tables ") && !strings.HasPrefix(line, "#") {
					t.Errorf("iptables command outside a comment: %q", line)
				}
			}
		})
	}
}
