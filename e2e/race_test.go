//go:build e2e

package e2e

import (
	"fmt"
	"testing"
	"time"
)

// TestHoleRace: a data connection never races its hole. Through the
// masquerading gateway, splitserver connects the instant it reads a PORT or
// EPRT, before it answers it (active modes), and splitclient connects the
// instant it reads a 227 or 229 (passive modes). The announcement's packet
// leaves before its hole is committed, but the guard holds the peer's SYN in
// the queue until it is; a connect that met no hole would lose its SYN, wait
// for the retransmission (1 s) and fail the transfer after the 0.5 s data
// timeout.
func TestHoleRace(t *testing.T) {
	l := newLab(t, "none")
	l.allowAltPort(false)
	d := l.startFtpct(debugArgs("--ports", fmt.Sprintf("21,%d", altPort))...)
	l.startSplitServer("--connect-on-port", "--data-timeout", "0.5")
	const rounds = 8
	before := d.stats()
	for _, mode := range []string{"port", "eprt", "pasv", "epsv"} {
		t.Run(mode, func(t *testing.T) {
			for i := range rounds {
				start := time.Now()
				// Three transfers per session: in active modes
				// the first PORT resizes the session, which is held
				// in the packet path (it goes back to the kernel once
				// with the hold mark); all are guarded.
				res, out, err := runPeer(l, "c", 20*time.Second, "splitclient.py", "--server", serverAddr,
					"--port", fmt.Sprint(altPort), "--mode", mode, "--file", "hello.txt",
					"--op-timeout", "1", "--timeout", "10", "--repeat", "3")
				if err != nil || !res.ok() {
					t.Errorf("transfer %d (%s) failed after %v: %v\n%s", i, mode, time.Since(start).Round(time.Millisecond), err, out)
				}
			}
		})
	}
	dt := delta(before, d.usedSettled(before["expect_used"]+4*3*rounds))
	t.Logf("deferred +%d, guarded +%d, guard_syns +%d, guard_waits +%d, expect_created +%d, expect_used +%d, expect_refused +%d, first_resizes_in_path +%d, first_resizes_by_commit +%d",
		dt["deferred"], dt["guarded"], dt["guard_syns"], dt["guard_waits"], dt["expect_created"], dt["expect_used"], dt["expect_refused"],
		dt["first_resizes_in_path"], dt["first_resizes_by_commit"])
	// Each session has three announcements. The passive ones (227, 229:
	// the server is not translated, nothing is resized) leave at once,
	// guarded; in active modes the first is its session's first resize,
	// whose flows the kernel holds in the packet path before it leaves,
	// guarded too, and the later two are guarded. The data connection of
	// each guarded one went through the guard (those that raced their hole
	// waited in it).
	if dt["first_resizes_in_path"] != 2*rounds || dt["first_resizes_by_commit"] != 0 {
		t.Errorf("first_resizes_in_path +%d, first_resizes_by_commit +%d; want %d and 0: one first resize per active session, none waiting for a commit",
			dt["first_resizes_in_path"], dt["first_resizes_by_commit"], 2*rounds)
	}
	if want := 2*3*rounds + 2*2*rounds; dt["guarded"] < int64(want) {
		t.Errorf("guarded +%d, want at least %d: announcements waited for their holes", dt["guarded"], want)
	}
	if dt["guarded"]+dt["deferred"] < 4*3*rounds {
		t.Errorf("guarded +%d, deferred +%d, want at least %d together: announcements neither guarded nor waiting", dt["guarded"], dt["deferred"], 4*3*rounds)
	}
	if dt["guard_syns"] < dt["guarded"] {
		t.Errorf("guard_syns +%d, want at least guarded (+%d): data connections of guarded announcements missed the guard", dt["guard_syns"], dt["guarded"])
	}
	if dt["expect_used"] < 4*3*rounds {
		t.Errorf("expect_used +%d, want at least %d", dt["expect_used"], 4*3*rounds)
	}
	if dt["expect_refused"] != 0 || dt["errors"] != 0 || dt["dropped"] != 0 {
		t.Errorf("expect_refused +%d, errors +%d, dropped +%d; want 0", dt["expect_refused"], dt["errors"], dt["dropped"])
	}
}
