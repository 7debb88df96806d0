//go:build e2e

package e2e

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// invalidPackets sums conntrack's per-CPU invalid counters (conntrack -S) on
// host.
func invalidPackets(t *testing.T, l *lab, host string) uint64 {
	t.Helper()
	var sum uint64
	for _, f := range strings.Fields(l.mustExec(host, "conntrack", "-S")) {
		if v, ok := strings.CutPrefix(f, "invalid="); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatalf("conntrack -S: %q: %v", f, err)
			}
			sum += n
		}
	}
	return sum
}

// TestLongActiveSession: one control connection through the masquerading
// gateway (FORWARD policy DROP, conntrack's strict window tracking) whose
// PORT rewrites grow its stream by more than conntrack's MAXACKWINDOW
// (66,000 bytes) keeps working. ftpct rewrites before conntrack, which sees
// the client's segments shifted and the server's acknowledgements mapped
// back: without the liberal flag ftpct sets on resized connections, the
// server's segments become INVALID past 66,000 bytes of growth, the gateway
// drops them and the session hangs (portstorm.py: no reply within 5 s).
func TestLongActiveSession(t *testing.T) {
	l := newLab(t, "none")
	d := l.startFtpct()
	before := invalidPackets(t, l, "g")
	out, err := l.exec("c", 60*time.Second, "python3", filepath.Join(peersDir, "portstorm.py"),
		"--server", serverAddr, "--public", "203.0.113.1", "--growth", "200000")
	if err != nil {
		t.Fatalf("portstorm: %v\n%s", err, out)
	}
	var r struct {
		Ports, Growth int
		Seconds       float64
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Growth < 66000 {
		t.Fatalf("portstorm output %q (err %v): want a growth past 66,000 bytes", out, err)
	}
	t.Logf("%d PORTs, %d bytes of growth in %.1f s", r.Ports, r.Growth, r.Seconds)
	if after := invalidPackets(t, l, "g"); after != before {
		t.Errorf("conntrack's invalid counter went from %d to %d: want it flat", before, after)
	}
	st := d.stats()
	if st["rewrites"] < uint64(r.Ports) {
		t.Errorf("rewrites = %d, want at least %d (one per PORT)", st["rewrites"], r.Ports)
	}
	for _, k := range []string{"errors", "state_errors", "dropped"} {
		if st[k] != 0 {
			t.Errorf("%s = %d, want 0", k, st[k])
		}
	}
}
