package rules

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Golden deployment scripts, reviewed by hand (README "Deployments" quotes
// their rules). Regenerate deliberately: FTPCT_UPDATE_GOLDEN=1.
func TestDeploymentScriptGolden(t *testing.T) {
	tests := []struct {
		name   string
		cfg    func(*Config)
		golden string
	}{
		{name: "gateway", cfg: func(*Config) {}, golden: "testdata/deploy_gateway.txt"},
		{name: "serverhost", cfg: func(*Config) {}, golden: "testdata/deploy_serverhost.txt"},
		{name: "clienthost", cfg: func(*Config) {}, golden: "testdata/deploy_clienthost.txt"},
		{name: "routed", cfg: func(c *Config) { c.Ports = []uint16{21, 2121} }, golden: "testdata/deploy_routed_two_ports.txt"},
		{name: "dnat", cfg: func(*Config) {}, golden: "testdata/deploy_dnat.txt"},
		{name: "doublenat", cfg: func(*Config) {}, golden: "testdata/deploy_doublenat.txt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.cfg(&cfg)
			d, err := LookupDeployment(tc.name)
			if err != nil {
				t.Fatal(err)
			}
			got := DeploymentScript(cfg, d)
			if os.Getenv("FTPCT_UPDATE_GOLDEN") == "1" {
				if err := os.WriteFile(tc.golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(tc.golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("DeploymentScript (-want +got):\n%s", diff)
			}
			if !strings.HasSuffix(got, Script(cfg)) {
				t.Errorf("deployment script does not end with the plain script")
			}
			for _, line := range strings.Split(strings.TrimSuffix(got, Script(cfg)), "\n") {
				if line != "" && !strings.HasPrefix(line, "#") {
					t.Errorf("deployment line outside a comment: %q", line)
				}
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
		s := strings.TrimSuffix(DeploymentScript(cfg, d), Script(cfg))
		hasV6 := strings.Contains(s, "#   ip6tables -")
		if hasV6 == d.ipv4Only {
			t.Errorf("%s: ip6tables rules present = %v, ipv4Only = %v", d.Name, hasV6, d.ipv4Only)
		}
	}
	cfg.IPv6 = false
	for _, d := range Deployments {
		if s := DeploymentScript(cfg, d); strings.Contains(s, "ip6tables") {
			t.Errorf("%s without IPv6 mentions ip6tables", d.Name)
		}
	}
}
