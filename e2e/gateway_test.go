//go:build e2e

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func sumOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestMasqueradingGateway is the acceptance of the first version: LAN
// clients behind a masquerading gateway with FORWARD policy DROP reach a real
// vsftpd in all four modes, with ftpct on the gateway instead of the kernel
// helper; the kernel helper passes the same; without either all fail.
func TestMasqueradingGateway(t *testing.T) {
	for _, helper := range []string{"ftpct", "kernel", "none"} {
		t.Run(helper, func(t *testing.T) {
			labHelper := helper
			if helper == "ftpct" {
				labHelper = "none"
			}
			l := newLab(t, labHelper)
			var before string
			var d *daemon
			if helper == "ftpct" {
				before = l.ruleset()
				d = l.startFtpct()
			}
			works := helper != "none"
			timeout := 20 * time.Second
			if !works {
				timeout = 5 * time.Second
			}
			t.Run("transfers", func(t *testing.T) {
				for _, c := range clients {
					t.Run(c.name, func(t *testing.T) {
						if !works {
							t.Parallel()
						}
						err := transfer(l, c, timeout)
						switch {
						case works && err != nil:
							t.Errorf("transfer through %s failed: %v", helper, err)
						case !works && err == nil:
							t.Errorf("transfer succeeded without any helper: the negative control is broken")
						}
					})
				}
			})
			if d != nil {
				checkDaemon(t, l, d, before)
			}
		})
	}
}

// checkDaemon checks what the daemon reports, that a second one is refused,
// that it leaves its rules on exit and that uninstall leaves the gateway's
// rules exactly as they were.
func checkDaemon(t *testing.T, l *lab, d *daemon, before string) {
	// Each client makes two data connections (download and listing).
	st := d.usedSettled(uint64(2 * len(clients)))
	activeModes := 0
	for _, c := range clients {
		if c.active {
			activeModes++
		}
	}
	// Each client makes two data connections (download and listing).
	if st["rewrites"] < uint64(2*activeModes) {
		t.Errorf("rewrites = %d, want at least %d (one per active-mode data connection)", st["rewrites"], 2*activeModes)
	}
	if st["expect_created"] < uint64(2*len(clients)) || st["expect_used"] < uint64(2*len(clients)) {
		t.Errorf("expect_created = %d, expect_used = %d, want at least %d each", st["expect_created"], st["expect_used"], 2*len(clients))
	}
	for _, k := range []string{"errors", "malformed", "expect_refused", "dropped"} {
		if st[k] != 0 {
			t.Errorf("%s = %d, want 0", k, st[k])
		}
	}
	var list []map[string]any
	out := l.mustExec("g", ftpctBin, "expect", "list", "--json", "--socket", d.socket)
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Errorf("expect list --json: %v: %s", err, out)
	}
	if table := l.mustExec("g", ftpctBin, "expect", "list", "--socket", d.socket); !strings.Contains(table, "KIND") {
		t.Errorf("expect list: no table header:\n%s", table)
	}
	// Conntrack's strict window tracking saw nothing invalid.
	if out := l.mustExec("g", "conntrack", "-S"); strings.Contains(out, "invalid=") && !onlyZeroInvalid(out) {
		t.Errorf("conntrack counted invalid packets:\n%s", out)
	}

	// A second daemon on the same gateway fails clearly and changes nothing.
	second, err := l.exec("g", 20*time.Second, ftpctBin, "run", "--socket", d.socket+"2")
	if err == nil || !strings.Contains(second, "ftpct:") {
		t.Errorf("second ftpct run: err %v, output %q; want a non-zero exit with a clear message", err, second)
	}
	if _, err := l.exec("g", 5*time.Second, ftpctBin, "stats", "--socket", d.socket); err != nil {
		t.Errorf("first daemon stopped answering after the second one failed: %v", err)
	}

	// uninstall refuses while the daemon runs, and changes nothing.
	running := l.ruleset()
	if out, err := l.exec("g", 20*time.Second, ftpctBin, "uninstall", "--socket", d.socket); err == nil || !strings.Contains(out, "stop it first") {
		t.Errorf("uninstall while the daemon runs: err %v, output %q; want a refusal", err, out)
	}
	if diff := cmp.Diff(running, l.ruleset()); diff != "" {
		t.Errorf("a refused uninstall changed the rules (-before +after):\n%s", diff)
	}
	if err := d.stop(); err != nil {
		t.Errorf("ftpct exit after SIGTERM: %v\n%s", err, d.log)
	}
	// The rules stay for the next run (sessions and holes outlive a
	// restart); uninstall removes exactly what ftpct added.
	if after := l.ruleset(); !strings.Contains(after, "table ip ftpct") || !strings.Contains(after, "--comment ftpct") {
		t.Errorf("ftpct removed its rules on SIGTERM; want them left for the next run:\n%s", after)
	}
	if err := d.uninstall(); err != nil {
		t.Error(err)
	}
	if diff := cmp.Diff(before, l.ruleset()); diff != "" {
		t.Errorf("rules after ftpct uninstall differ from before ftpct started (-before +after):\n%s", diff)
	}
	if _, err := l.exec("g", 5*time.Second, ftpctBin, "stats", "--socket", d.socket); err == nil {
		t.Errorf("stats still answers after the daemon exited")
	}
}

func onlyZeroInvalid(s string) bool {
	for _, f := range strings.Fields(s) {
		if strings.HasPrefix(f, "invalid=") && f != "invalid=0" {
			return false
		}
	}
	return true
}
