package rules

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Golden deployment rules, reviewed by hand (README "Deployments" quotes
// them; cmd/ftpct's TestREADMERules keeps it so). Regenerate deliberately:
// go test ./rules/ -run TestDeploymentRulesGolden -update.
func TestDeploymentRulesGolden(t *testing.T) {
	tests := []struct {
		name       string
		deployment string
		cfg        func(*Config)
		values     string
		golden     string
	}{
		{name: "gateway", deployment: "gateway", cfg: func(*Config) {}, golden: "testdata/deploy_gateway.txt"},
		{name: "serverhost", deployment: "serverhost", cfg: func(*Config) {}, golden: "testdata/deploy_serverhost.txt"},
		{name: "clienthost", deployment: "clienthost", cfg: func(*Config) {}, golden: "testdata/deploy_clienthost.txt"},
		{name: "routed, two ports", deployment: "routed", cfg: func(c *Config) { c.Ports = []uint16{21, 2121} }, golden: "testdata/deploy_routed_two_ports.txt"},
		{name: "dnat", deployment: "dnat", cfg: func(*Config) {}, golden: "testdata/deploy_dnat.txt"},
		{name: "doublenat", deployment: "doublenat", cfg: func(*Config) {}, golden: "testdata/deploy_doublenat.txt"},
		{name: "doublenat, placeholders filled", deployment: "doublenat", cfg: func(*Config) {},
			values: "LAN=eth0,DMZ=eth1,PUBLIC=203.0.113.1,SERVER=10.0.2.2,LANNET=10.0.1.0/24,SNATADDR=198.51.100.1",
			golden: "testdata/deploy_doublenat_filled.txt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.cfg(&cfg)
			d, err := LookupDeployment(tc.deployment)
			if err != nil {
				t.Fatal(err)
			}
			v, err := ParseValues(tc.values)
			if err != nil {
				t.Fatal(err)
			}
			got := DeploymentRules(cfg, d, v)
			checkGolden(t, tc.golden, got)
			for _, line := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
				if !strings.HasPrefix(line, "#") {
					t.Errorf("deployment line outside a comment: %q", line)
				}
			}
			if tc.values != "" && placeholderWord.MatchString(strings.Join(commandsUnder(got, "# The operator's rules, iptables variant:"), "\n")) {
				t.Errorf("placeholders left in the filled rules:\n%s", got)
			}
		})
	}
}

func TestLookupDeployment(t *testing.T) {
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{name: "name", in: "dnat", want: "dnat"},
		{name: "lab topology alias", in: "masq", want: "gateway"},
		{name: "ipv6 alias", in: "serverhost6", want: "serverhost"},
		{name: "unknown", in: "moon", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := LookupDeployment(tc.in)
			if tc.wantErr {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Errorf("err = %v, want ErrInvalidConfig", err)
				}
				return
			}
			if err != nil || d.Name != tc.want {
				t.Errorf("LookupDeployment(%q) = %q, %v; want %q", tc.in, d.Name, err, tc.want)
			}
		})
	}
}

func TestDeploymentFamilies(t *testing.T) {
	cfg := DefaultConfig()
	for _, d := range Deployments {
		s := DeploymentRules(cfg, d, nil)
		hasV6 := strings.Contains(s, "#   ip6tables -")
		if hasV6 == d.ipv4Only {
			t.Errorf("%s: ip6tables rules present = %v, ipv4Only = %v", d.Name, hasV6, d.ipv4Only)
		}
		// Every family has all three sections, each with lines in it.
		for _, f := range cfg.families() {
			if d.ipv4Only && f != familyIPv4 {
				continue
			}
			if len(commandsUnder(s, strings.Replace(headingOperatorRules, "%s", f.iptables, 1))) == 0 {
				t.Errorf("%s: no %s rules", d.Name, f.iptables)
			}
		}
		if n := len(commandsUnder(s, headingHelperLine)); n == 0 {
			t.Errorf("%s: no helper line", d.Name)
		}
	}
	cfg.IPv6 = false
	for _, d := range Deployments {
		if s := DeploymentRules(cfg, d, nil); strings.Contains(s, "ip6tables") {
			t.Errorf("%s without IPv6 mentions ip6tables", d.Name)
		}
	}
}

func TestParseValues(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Values
		wantErr string
	}{
		{name: "empty", in: "", want: Values{}},
		{name: "all kinds", in: "LAN=veth0,WAN=eth1.100,PUBLIC=203.0.113.1,LANNET=10.0.1.0/24",
			want: Values{"LAN": "veth0", "WAN": "eth1.100", "PUBLIC": "203.0.113.1", "LANNET": "10.0.1.0/24"}},
		{name: "no equals sign", in: "LAN", wantErr: "want NAME=VALUE"},
		{name: "unknown placeholder", in: "LAN=a,MOON=b", wantErr: `unknown placeholder "MOON"`},
		{name: "lower case name", in: "lan=eth0", wantErr: `unknown placeholder "lan"`},
		{name: "twice", in: "LAN=a,LAN=b", wantErr: "LAN given twice"},
		{name: "empty interface", in: "LAN=", wantErr: "interface name of 1 to 15 bytes"},
		{name: "long interface", in: "WAN=abcdefghijklmnop", wantErr: "interface name of 1 to 15 bytes"},
		{name: "quote in interface", in: `WAN=e"th0`, wantErr: "interface name with"},
		{name: "space in interface", in: "WAN=eth 0", wantErr: "interface name with"},
		{name: "slash in interface", in: "DMZ=a/b", wantErr: "interface name with"},
		{name: "dot dot", in: "DMZ=..", wantErr: "interface name"},
		{name: "ipv6 address", in: "SERVER=2001:db8::1", wantErr: "want an IPv4 address"},
		{name: "not an address", in: "PUBLIC=gateway", wantErr: "want an IPv4 address"},
		{name: "prefix with host bits", in: "LANNET=10.0.1.1/24", wantErr: "want an IPv4 prefix"},
		{name: "address as prefix", in: "LANNET=10.0.1.1", wantErr: "want an IPv4 prefix"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseValues(tc.in)
			if tc.wantErr != "" {
				if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("ParseValues(%q) error = %v, want ErrInvalidConfig with %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseValues(%q): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseValues(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestValuesFill(t *testing.T) {
	v := Values{"LAN": "eth0", "SERVER": "10.0.2.2"}
	tests := []struct {
		name, in, want string
	}{
		{name: "whole words", in: "-i LAN -d SERVER", want: "-i eth0 -d 10.0.2.2"},
		{name: "quoted", in: `iifname "LAN" ip daddr SERVER`, want: `iifname "eth0" ip daddr 10.0.2.2`},
		{name: "not inside a longer placeholder", in: "-s LANNET", want: "-s LANNET"},
		{name: "unfilled stays", in: "-o WAN", want: "-o WAN"},
		{name: "not inside a word", in: "LANX XLAN", want: "LANX XLAN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := v.fill(tc.in); got != tc.want {
				t.Errorf("fill(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
