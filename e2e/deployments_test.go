//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// deployment is one README "Deployments" scenario as a lab topology.
type deployment struct {
	name   string
	topo   string   // lab.sh --topo
	target string   // address the client dials
	ports  []string // control ports (lab.sh --ports and ftpct --ports)
	ipv6   bool
	// blocked says whether a mode fails without a helper (the negative
	// control): passive modes, active modes.
	blockPassive, blockActive bool
	nat                       bool // announcements must be rewritten
}

var deployments = []deployment{
	{name: "serverhost", topo: "serverhost", target: "203.0.113.2", ports: []string{"21"}, blockPassive: true},
	{name: "clienthost", topo: "clienthost", target: "203.0.113.2", ports: []string{"21"}, blockActive: true},
	{name: "routed", topo: "routed", target: "203.0.113.2", ports: []string{"21"}, blockPassive: true, blockActive: true},
	{name: "dnat", topo: "dnat", target: "198.51.100.1", ports: []string{"21"}, blockPassive: true, blockActive: true, nat: true},
	{name: "routed6", topo: "routed6", target: "2001:db8:2::2", ports: []string{"21"}, ipv6: true, blockPassive: true, blockActive: true},
	{name: "serverhost6", topo: "serverhost6", target: "2001:db8:2::2", ports: []string{"21"}, ipv6: true, blockPassive: true},
	{name: "ports-2121", topo: "routed", target: "203.0.113.2", ports: []string{"2121"}, blockPassive: true, blockActive: true},
	{name: "ports-21-2121", topo: "routed", target: "203.0.113.2", ports: []string{"21", "2121"}, blockPassive: true, blockActive: true},
	{name: "doublenat", topo: "doublenat", target: "203.0.113.1", ports: []string{"21"}, blockPassive: true, blockActive: true, nat: true},
}

var servers = []string{"vsftpd", "pureftpd"}

// newTopoLab builds a lab.sh topology and tears it down when the test ends.
func newTopoLab(t *testing.T, helper, topo, server string, ports []string) (*lab, string) {
	t.Helper()
	l := startLab(t, "d", helper, "--topo", topo, "--server", server, "--ports", strings.Join(ports, ","))
	host, err := os.ReadFile(filepath.Join(l.dir, "host"))
	if err != nil {
		t.Fatal(err)
	}
	return l, strings.TrimSpace(string(host))
}

// TestDeployments runs every README deployment with real servers and
// clients through ftpct, through the kernel helper as the reference, and
// with no helper as the negative control. ftpct runs with no
// deployment-specific flag (only --ports where the control port is not 21).
func TestDeployments(t *testing.T) {
	for _, dep := range deployments {
		t.Run(dep.name, func(t *testing.T) {
			t.Parallel() // separate namespaces; -parallel bounds how many run at once
			for _, server := range servers {
				t.Run(server, func(t *testing.T) {
					for _, helper := range []string{"ftpct", "kernel", "none"} {
						t.Run(helper, func(t *testing.T) {
							runDeployment(t, dep, server, helper)
						})
					}
				})
			}
		})
	}
}

func runDeployment(t *testing.T, dep deployment, server, helper string) {
	labHelper := helper
	if helper == "ftpct" {
		labHelper = "none"
	}
	l, host := newTopoLab(t, labHelper, dep.topo, server, dep.ports)
	var d *daemon
	if helper == "ftpct" {
		var args []string
		if len(dep.ports) != 1 || dep.ports[0] != "21" {
			args = append(args, "--ports", strings.Join(dep.ports, ","))
		}
		d = l.startFtpctOn(host, args...)
	}
	var used int
	t.Run("transfers", func(t *testing.T) {
		for _, port := range dep.ports {
			for _, c := range clients {
				if dep.ipv6 && c.ipv4 {
					continue
				}
				blocked := c.active && dep.blockActive || !c.active && dep.blockPassive
				if blocked {
					used += 2
				}
				t.Run(c.name+"-"+port, func(t *testing.T) {
					works := helper != "none" || !blocked
					timeout := 20 * time.Second
					if !works {
						timeout = 4 * time.Second
						t.Parallel()
					}
					err := transferTo(l, c, dep.target, port, timeout)
					switch {
					case works && err != nil:
						t.Errorf("%s with %s on %s: transfer failed: %v", dep.name, helper, server, err)
					case !works && err == nil:
						t.Errorf("transfer succeeded without any helper: the negative control is broken")
					}
				})
			}
		}
	})
	if d == nil || t.Failed() {
		return
	}
	st := d.usedSettled(uint64(used))
	if st["expect_used"] < uint64(used) {
		t.Errorf("expect_used = %d, want at least %d", st["expect_used"], used)
	}
	if dep.nat && st["rewrites"] == 0 {
		t.Errorf("rewrites = 0 under NAT")
	}
	// Every announcement is used before the next one of its session:
	// none may be counted evicted (its data connection's event read too
	// late, say).
	for _, k := range []string{"errors", "malformed", "expect_refused", "expect_evicted", "data_events_lost"} {
		if st[k] != 0 {
			t.Errorf("%s = %d, want 0", k, st[k])
		}
	}
	if out := l.mustExec(host, "conntrack", "-S"); !onlyZeroInvalid(out) {
		t.Errorf("conntrack counted invalid packets on %s:\n%s", host, out)
	}
}
