//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A control connection the kernel forgets is forgotten by ftpct at once,
// through a conntrack DESTROY event, with its pending expectation and
// hole: the entry is deleted by hand (conntrack -D) while the session is
// idle with a PORT pending.
//
//	go test -tags e2e -count=1 -v -run TestSessionEnded ./e2e/
const sessionEndScript = `
import os, sys, time
sys.path.insert(0, sys.argv[1])
import ftppeer as fp
server, gate = sys.argv[2], sys.argv[3]
dl = fp.Deadline(60)
c = fp.Control(server, 21, dl, 20)
fp.login(c)
local = c.local_addr()
ls = fp.data_listener(local, 0, 10)
c.cmd("PORT " + fp.port_arg(local, ls.getsockname()[1]), 200)
print("port", flush=True)
while not os.path.exists(gate):
    dl.left()
    time.sleep(0.05)
`

func TestSessionEnded(t *testing.T) {
	l := newLab(t, "none")
	// The idle check would take a minute to notice (the session is idle for
	// that long first): only the event is this fast.
	d := l.startFtpct(debugArgs("--timeout", "5m")...)
	gate := filepath.Join(l.dir, "session-end-gate")
	cl := l.startBg("c", "port", "python3", "-c", sessionEndScript, peersDir, serverAddr, gate)
	t.Cleanup(func() { _ = os.WriteFile(gate, nil, 0o644); cl.stop() })
	waitUntil(t, 10*time.Second, "the session and its expectation", func() bool {
		st := d.stats()
		return st["sessions_open"] == 1 && st["expect_pending"] == 1
	})
	holes := func() string { return l.mustExec("g", "nft", "list", "set", "ip", "ftpct", "expect") }
	if set := holes(); !strings.Contains(set, "elements = ") {
		t.Fatalf("no hole in ftpct's expect set before the deletion:\n%s", set)
	}
	l.mustExec("g", "conntrack", "-D", "-p", "tcp", "--orig-dst", serverAddr, "--dport", "21")
	start := time.Now()
	waitUntil(t, 5*time.Second, "the session forgotten after conntrack -D", func() bool {
		st := d.stats()
		return st["sessions_open"] == 0 && st["expect_pending"] == 0
	})
	t.Logf("forgotten %v after conntrack -D", time.Since(start).Round(time.Millisecond))
	st := d.stats()
	for k, want := range map[string]uint64{"sessions_ended": 1, "sessions_swept": 0, "conntrack_events_lost": 0, "errors": 0} {
		if st[k] != want {
			t.Errorf("%s = %d, want %d", k, st[k], want)
		}
	}
	// The hole is closed by the committer, off this path.
	waitUntil(t, 3*time.Second, "the hole closed", func() bool { return !strings.Contains(holes(), "elements = ") })
}
