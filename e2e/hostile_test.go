//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The awkward and hostile peers of e2e/peers through the masquerading
// gateway (so every PORT/EPRT rewrite changes the segment's length), through
// ftpct and, where it shows the difference, through the kernel helper.
//
//	go test -tags e2e -count=1 -v -run TestHostile ./e2e/

// splitCase is one splitclient.py run against vsftpd on port 21.
type splitCase struct {
	mode, split string
	pause       float64
	pipeline    bool
}

func (c splitCase) String() string {
	s := fmt.Sprintf("%s-%s-%gms", c.mode, c.split, c.pause*1000)
	if c.pipeline {
		s += "-pipelined"
	}
	return s
}

func (c splitCase) run(l *lab, timeout time.Duration) (peerResult, string, error) {
	args := []string{"--server", serverAddr, "--mode", c.mode, "--split", c.split,
		"--pause", fmt.Sprint(c.pause), "--file", "big.bin", "--expect-sha256", l.fileSHA("big.bin"),
		"--op-timeout", fmt.Sprint(int(timeout.Seconds()/2) + 1), "--timeout", fmt.Sprint(int(timeout.Seconds()))}
	if c.pipeline {
		args = append(args, "--pipeline")
	}
	return runPeer(l, "c", timeout+5*time.Second, "splitclient.py", args...)
}

// Pauses well below the sender's retransmission timeout (≥ 200 ms): ftpct
// must hold the line's beginning and rewrite it whole.
var splitCases = []splitCase{
	{"port", "command", 0.05, false},
	{"port", "address", 0.08, false},
	{"port", "both", 0.05, false},
	{"eprt", "command", 0.05, false},
	{"eprt", "both", 0.05, false},
	{"port", "none", 0, true},
	{"eprt", "none", 0, true},
	{"port", "both", 0.05, true},
	{"pasv", "command", 0.05, true},
}

// longPauseScript splits a PORT with a pause longer than the retransmission
// timeout, then makes a plain active-mode transfer on the same session.
const longPauseScript = `
import sys, time
sys.path.insert(0, sys.argv[1])
import ftppeer as fp
server, pause, file, want = sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5]
dl = fp.Deadline(40)
c = fp.Control(server, 21, dl, 10)
fp.login(c)
c.cmd("TYPE I", 200)
local = c.local_addr()
line = ("PORT " + fp.port_arg(local, 40001) + "\r\n").encode()
c.send_pieces([line[:2], line[2:]], pause)
slow = c.reply()
ls = fp.data_listener(local, 0, 10)
c.cmd("PORT " + fp.port_arg(local, ls.getsockname()[1]), 200)
c.cmd("RETR " + file, 1)
d, _ = ls.accept()
n, digest, _ = fp.recv_all(d, dl, 10)
d.close()
code, text = c.reply()
fp.check("RETR", code, text, 2)
c.cmd("QUIT")
if digest != want:
    raise SystemExit("sha256 mismatch after the slow split: %d bytes" % n)
print("slow split reply %d; plain transfer %d bytes ok" % (slow[0], n))
`

// TestHostileSplit: PORT/EPRT split across segments and pipelined behind
// other commands, and 227/229 replies split by the server.
func TestHostileSplit(t *testing.T) {
	t.Run("ftpct", func(t *testing.T) {
		l := newLab(t, "none")
		l.allowAltPort(false)
		d := l.startFtpct(debugArgs("--ports", fmt.Sprintf("21,%d", altPort))...)
		t.Run("client", func(t *testing.T) {
			for _, c := range splitCases {
				t.Run(c.String(), func(t *testing.T) {
					before, rto := d.stats(), l.rtos()
					start := time.Now()
					res, out, err := c.run(l, 20*time.Second)
					took := time.Since(start)
					dt, rtos := delta(before, d.usedSettled(before["expect_used"]+1)), l.rtos()-rto
					if err != nil || !res.ok() {
						t.Fatalf("splitclient through ftpct failed: %v\n%s", err, out)
					}
					t.Logf("%v: %.2fs, rewrites +%d, held_lines +%d, commands +%d", c, took.Seconds(), dt["rewrites"], dt["held_lines"], dt["commands"])
					active := c.mode == "port" || c.mode == "eprt"
					if active && dt["rewrites"] < 1 {
						t.Errorf("rewrites +%d, want +1 (the announcement went out unrewritten)", dt["rewrites"])
					}
					if dt["expect_created"] < 1 || dt["expect_used"] < 1 {
						t.Errorf("expect_created +%d, expect_used +%d; want +1 each", dt["expect_created"], dt["expect_used"])
					}
					if active && c.split != "none" && dt["held_lines"] < 1 {
						t.Errorf("held_lines +%d, want at least +1 for a split line", dt["held_lines"])
					}
					for _, k := range []string{"hold_abandoned", "malformed", "errors", "dropped", "expect_refused"} {
						if dt[k] != 0 {
							t.Errorf("%s +%d, want 0 (all changes: %v)", k, dt[k], nonZero(dt))
						}
					}
					// Nothing waits beyond the line's end: no segment of
					// the client or the server waited for its
					// retransmission timer (the pauses are far below it).
					// Counted, not timed: a loaded machine stretches the
					// wall time, not the count.
					if rtos != 0 {
						t.Errorf("%d retransmission timeouts in the client and server (took %v): something waited for a retransmission", rtos, took)
					}
				})
			}
		})
		t.Run("server", func(t *testing.T) {
			srv := l.startSplitServer("--split-replies", "both", "--pause", "0.05", "--data-timeout", "5")
			for _, m := range []struct {
				name  string
				flags []string
			}{
				{"curl-PASV", []string{"--disable-epsv"}},
				{"curl-EPSV", nil},
			} {
				t.Run(m.name, func(t *testing.T) {
					before, rto := d.stats(), l.rtos()
					start := time.Now()
					err := curlGet(l, altPort, "big.bin", 15*time.Second, m.flags...)
					took := time.Since(start)
					dt, rtos := delta(before, d.usedSettled(before["expect_used"]+1)), l.rtos()-rto
					if err != nil {
						t.Fatalf("split %s reply through ftpct: %v", m.name, err)
					}
					t.Logf("%s: %.2fs, held_lines +%d, expect_created +%d", m.name, took.Seconds(), dt["held_lines"], dt["expect_created"])
					if dt["held_lines"] < 1 || dt["expect_created"] < 1 || dt["expect_used"] < 1 {
						t.Errorf("held_lines +%d, expect_created +%d, expect_used +%d; want at least +1 each", dt["held_lines"], dt["expect_created"], dt["expect_used"])
					}
					for _, k := range []string{"hold_abandoned", "malformed", "errors", "dropped"} {
						if dt[k] != 0 {
							t.Errorf("%s +%d, want 0 (all changes: %v)", k, dt[k], nonZero(dt))
						}
					}
					if rtos != 0 {
						t.Errorf("%d retransmission timeouts in the client and server (took %v): something waited for a retransmission", rtos, took)
					}
				})
			}
			srv.stop()
		})
		t.Run("bytes", func(t *testing.T) {
			// One byte per segment, 3 ms apart: the line needs more segments
			// than the sender's congestion window allows without an
			// acknowledgement (about 10-13 here), so the sender stalls until
			// its retransmission timer fires and ftpct gives the line up, as
			// documented. The session must stay usable.
			before, rto := d.stats(), l.rtoCount("c")
			res, out, _ := splitCase{"port", "bytes", 0.003, false}.run(l, 10*time.Second)
			dt, rtos := delta(before, d.stats()), l.rtoCount("c")-rto
			t.Logf("bytes split: ok %v (%v); hold_abandoned +%d, held_lines +%d", res["ok"], res["error"], dt["hold_abandoned"], dt["held_lines"])
			if res.ok() && dt["hold_abandoned"] == 0 {
				t.Logf("the byte-per-segment PORT went through whole (congestion window large enough)")
			} else if dt["hold_abandoned"] < 1 {
				t.Errorf("byte-per-segment PORT failed without hold_abandoned: %v\n%s", nonZero(dt), out)
			} else if rtos < 1 {
				// The counter the cases above rely on sees this wait.
				t.Errorf("hold_abandoned +%d but client retransmission timeouts +%d, want at least +1", dt["hold_abandoned"], rtos)
			}
			if dt["errors"] != 0 || dt["dropped"] != 0 {
				t.Errorf("errors +%d, dropped +%d, want 0", dt["errors"], dt["dropped"])
			}
			if err := transfer(l, clients[2], 20*time.Second); err != nil {
				t.Errorf("plain transfer after a byte-per-segment split: %v", err)
			}
		})
		t.Run("long-pause", func(t *testing.T) {
			// 600 ms between "PO" and the rest: beyond the sender's
			// retransmission timeout, ftpct gives the line up; the session
			// stays usable.
			before := d.stats()
			script := filepath.Join(l.dir, "longpause.py")
			if err := os.WriteFile(script, []byte(longPauseScript), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := l.exec("c", 45*time.Second, "python3", script, peersDir, serverAddr, "0.6", "big.bin", l.fileSHA("big.bin"))
			dt := delta(before, d.stats())
			t.Logf("%s; hold_abandoned +%d, held_lines +%d", strings.TrimSpace(out), dt["hold_abandoned"], dt["held_lines"])
			if err != nil {
				t.Errorf("session not usable after a slow split: %v\n%s", err, out)
			}
			if dt["hold_abandoned"] < 1 {
				t.Errorf("hold_abandoned +%d, want at least +1", dt["hold_abandoned"])
			}
			if dt["errors"] != 0 || dt["dropped"] != 0 {
				t.Errorf("errors +%d, dropped +%d, want 0", dt["errors"], dt["dropped"])
			}
			if err := transfer(l, clients[2], 20*time.Second); err != nil {
				t.Errorf("plain transfer after a slow split: %v", err)
			}
		})
		if n := invalidCount(t, l); n != 0 {
			t.Errorf("conntrack counted %d invalid packets", n)
		}
	})
	// The reference: the kernel helper drops a segment ending in a partial
	// match and only reads a segment's first line, so these hang or fail.
	t.Run("kernel", func(t *testing.T) {
		l := newLab(t, "kernel")
		l.allowAltPort(true)
		l.startSplitServer("--split-replies", "both", "--pause", "0.05", "--data-timeout", "3")
		for _, c := range []splitCase{{"port", "command", 0.05, false}, {"port", "none", 0, true}} {
			t.Run(c.String(), func(t *testing.T) {
				t.Parallel()
				res, out, err := c.run(l, 6*time.Second)
				if err == nil && res.ok() {
					t.Errorf("the kernel helper passed %v; expected it to fail (ftpct's advantage is gone?)\n%s", c, out)
				} else {
					t.Logf("kernel fails %v as expected: %v", c, res["error"])
				}
			})
		}
		t.Run("split-227", func(t *testing.T) {
			t.Parallel()
			if err := curlGet(l, altPort, "big.bin", 6*time.Second, "--disable-epsv"); err == nil {
				t.Errorf("the kernel helper passed a split 227; expected it to fail")
			} else {
				t.Logf("kernel fails a split 227 as expected: %v", err)
			}
		})
	})
}

// TestHostilePolicy: no hole to a privileged port or a third party, and a
// burst of 5000 PORT commands keeps the daemon bounded.
func TestHostilePolicy(t *testing.T) {
	// A listener on the client's port 22 shows whether a hole was opened.
	const sshListener = `
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.0.1.2", 22)); s.listen(8)
print("ready", flush=True)
while True:
    c, a = s.accept()
    print("accepted %s:%d" % a, flush=True)
    c.close()
`
	announceArgs := func(mode string, eprt bool) []string {
		a := []string{"--server", serverAddr, "--port", fmt.Sprint(altPort), "--mode", mode, "--trigger", "--op-timeout", "8", "--timeout", "20"}
		if mode == "thirdparty" {
			// A LAN address no host has: harmless even if something connected.
			a = append(a, "--third-party", "10.0.1.99", "--third-party-port", "2049")
		}
		if eprt {
			a = append(a, "--eprt")
		}
		return a
	}
	t.Run("ftpct", func(t *testing.T) {
		l := newLab(t, "none")
		l.allowAltPort(false)
		d := l.startFtpct(debugArgs("--ports", fmt.Sprintf("21,%d", altPort))...)
		ssh := l.startBg("c", "ready", "python3", "-c", sshListener)
		l.startSplitServer("--promiscuous", "--data-timeout", "3")
		for _, tc := range []struct {
			mode string
			eprt bool
		}{{"privport", false}, {"privport", true}, {"thirdparty", false}, {"thirdparty", true}} {
			name := tc.mode
			if tc.eprt {
				name += "-eprt"
			}
			t.Run(name, func(t *testing.T) {
				before := d.stats()
				res, out, err := runPeer(l, "c", 30*time.Second, "hostile.py", append(announceArgs(tc.mode, tc.eprt), "--expect-refused")...)
				dt := delta(before, d.stats())
				t.Logf("%s: port_reply %v, trigger_reply %v, data_connected %v; expect_refused +%d", name, res["port_reply"], res["trigger_reply"], res["data_connected"], dt["expect_refused"])
				if err != nil || !res.ok() {
					t.Errorf("hostile %s: %v\n%s", name, err, out)
				}
				if res.num("port_reply") != 200 {
					t.Errorf("the promiscuous server did not accept the announcement (reply %v): the test proves nothing", res["port_reply"])
				}
				if dt["expect_refused"] < 1 || dt["expect_created"] != 0 {
					t.Errorf("expect_refused +%d, expect_created +%d; want +1 and 0", dt["expect_refused"], dt["expect_created"])
				}
				if n := len(d.expectList()); n != 0 {
					t.Errorf("%d expectations pending, want none", n)
				}
			})
		}
		if strings.Contains(ssh.output(), "accepted") {
			t.Errorf("something reached the client's port 22 through ftpct:\n%s", ssh.output())
		}

		// 5000 PORT commands, then a real active-mode transfer on the same
		// session. "each": one segment per command; "stream": one send(),
		// so each segment carries ~55 commands, ~55 rewrites that all grow it.
		// "17": one segment with 17 PORT commands: more length changes in
		// flight than the kernel's single correction.
		//
		// Every rewrite stays replayable until the server acknowledges it,
		// up to conntrack.MaxInFlight (64) per direction; an announcement
		// past that is left as it is (rewrites_refused, expect_refused) and
		// vsftpd answers it "500 Illegal PORT command". So: every PORT is
		// either rewritten and accepted or refused and rejected, the final
		// transfer works, and the stream stays exact throughout.
		for _, v := range []struct {
			name    string
			count   int
			args    []string
			refuses bool // whether ftpct may refuse (more than MaxInFlight can be in flight)
		}{{"portburst-17", 17, []string{"--min-200", "17"}, false}, {"portburst-each", 5000, []string{"--each"}, true}, {"portburst-stream", 5000, nil, true}} {
			t.Run(v.name, func(t *testing.T) {
				// Warm up (one transfer), then measure.
				if err := transfer(l, clients[2], 20*time.Second); err != nil {
					t.Fatalf("warm-up transfer: %v", err)
				}
				rss0 := d.vmRSS()
				before := d.stats()
				start := time.Now()
				res, out, err := runPeer(l, "c", 70*time.Second, "hostile.py", append([]string{"--server", serverAddr, "--mode", "portburst",
					"--count", fmt.Sprint(v.count), "--file", "big.bin", "--expect-sha256", l.fileSHA("big.bin"),
					"--op-timeout", "10", "--timeout", "60"}, v.args...)...)
				st := d.stats()
				dt := delta(before, st)
				rss1 := d.vmRSS()
				t.Logf("%s: %v 200s, codes %v in %vs (run %.1fs); VmRSS %d -> %d KiB; rewrites +%d refused +%d, expect_created +%d evicted +%d, pending %d, held_lines +%d carried +%d abandoned +%d, partial_lines +%d, commands +%d, expect_refused +%d, replays +%d",
					v.name, res["replies_200"], res["reply_codes"], res["burst_seconds"], time.Since(start).Seconds(), rss0, rss1, dt["rewrites"], dt["rewrites_refused"], dt["expect_created"], dt["expect_evicted"], st["expect_pending"], dt["held_lines"], dt["held_carried"], dt["hold_abandoned"], dt["partial_lines"], dt["commands"], dt["expect_refused"], dt["replays"])
				if err != nil || !res.ok() {
					t.Errorf("%s (%d PORT + a final transfer) through ftpct: %v\n%s", v.name, v.count, err, out)
				}
				// Each announcement is rewritten or refused; only a line given
				// up unparsed (hold_abandoned, see README) is neither.
				if got := dt["rewrites"] + dt["rewrites_refused"]; got > int64(v.count)+1 || got+dt["hold_abandoned"] < int64(v.count)+1 {
					t.Errorf("rewrites +%d, rewrites_refused +%d, hold_abandoned +%d: want %d announcements handled", dt["rewrites"], dt["rewrites_refused"], dt["hold_abandoned"], v.count+1)
				}
				if !v.refuses && dt["rewrites_refused"] != 0 {
					t.Errorf("rewrites_refused +%d, want 0", dt["rewrites_refused"])
				}
				// vsftpd accepts exactly the rewritten ones (and the final PORT
				// is one of them, counted in rewrites but not in the burst).
				if err == nil && int64(res.num("replies_200")) != dt["rewrites"]-1 {
					t.Errorf("%v PORTs accepted by the server, %d rewritten in the burst: a rewrite went wrong or a refusal slipped through", res["replies_200"], dt["rewrites"]-1)
				}
				if dt["expect_refused"] != dt["rewrites_refused"] {
					t.Errorf("expect_refused +%d, rewrites_refused +%d: want equal", dt["expect_refused"], dt["rewrites_refused"])
				}
				// At most one pending expectation per session (a stalled
				// earlier session may still hold its own).
				perSession := map[any]int{}
				for _, x := range d.expectList() {
					perSession[x["session"]]++
				}
				for sess, n := range perSession {
					if n > 1 {
						t.Errorf("session %v has %d pending expectations, want <= 1", sess, n)
					}
				}
				if st["expect_pending"] > st["sessions_open"] || len(perSession) > int(st["sessions_open"]) {
					t.Errorf("expect_pending = %d for %d open sessions, want at most one each", st["expect_pending"], st["sessions_open"])
				}
				if growth := rss1 - rss0; growth > 8*1024 {
					t.Errorf("ftpct's VmRSS grew by %d KiB (%d -> %d), want < 8 MiB", growth, rss0, rss1)
				}
				for _, k := range []string{"errors", "malformed"} {
					if dt[k] != 0 {
						t.Errorf("%s +%d, want 0", k, dt[k])
					}
				}
				// The veths reorder bursts (a GSO packet and the small one
				// after it reach the queue from two CPUs): a segment after a
				// gap is dropped and the sender fills the gap. No other drop.
				if dt["dropped"] != dt["out_of_order"] {
					t.Errorf("dropped +%d, out_of_order +%d: a drop other than for a gap", dt["dropped"], dt["out_of_order"])
				}
			})
		}
		if n := invalidCount(t, l); n != 0 {
			t.Errorf("conntrack counted %d invalid packets", n)
		}
	})
	// The reference: the kernel helper opens the hole to port 22.
	t.Run("kernel", func(t *testing.T) {
		l := newLab(t, "kernel")
		l.allowAltPort(true)
		ssh := l.startBg("c", "ready", "python3", "-c", sshListener)
		l.startSplitServer("--promiscuous", "--data-timeout", "3")
		res, out, err := runPeer(l, "c", 30*time.Second, "hostile.py", announceArgs("privport", false)...)
		if err != nil {
			t.Fatalf("hostile privport: %v\n%s", err, out)
		}
		if res["data_connected"] != true || !strings.Contains(ssh.output(), "accepted") {
			t.Errorf("the kernel helper did not let the server reach the client's port 22 (data_connected %v); expected it to", res["data_connected"])
		} else {
			t.Logf("kernel helper let the server reach 10.0.1.2:22 as expected: %s", strings.TrimSpace(ssh.output()))
		}
	})
}

// TestHostileLoss: loss on the control channel through the masquerading
// gateway, where every PORT/EPRT rewrite changes the segment's length.
//
//   - random: 5% of the control channel's packets lost in each direction, half
//     before the gateway and half after (see addLoss), so that ftpct both
//     misses segments and has its rewritten ones lost; 30 consecutive
//     active-mode transfers.
//   - announcement-lost: the first transmission of every PORT and EPRT is lost
//     after the gateway (dropFirstAnnouncements), so that each retransmission
//     must be rewritten exactly as the lost segment was; 6 transfers.
//   - split-announcement-lost: as announcement-lost, for commands the client
//     writes in pieces (splitclient). ftpct sent each joined and rewritten;
//     the client resends its own pieces, each with part of the rewritten
//     argument, and ftpct completes them (resends_completed). The kernel
//     helper fails split commands even without loss (TestHostileSplit).
//
// Through ftpct all transfers succeed, and conntrack on the gateway finds no
// packet invalid (sequence numbers stay right). The kernel helper runs the
// same scenarios as the reference.
func TestHostileLoss(t *testing.T) {
	scenarios := []struct {
		name       string
		transfers  int
		loss       func(*lab)
		minReplays int64 // rewrites ftpct must have replayed on retransmissions
	}{
		{name: "random", transfers: 30, loss: func(l *lab) { l.addLoss(25) }}, // at two points per direction: about 5% end to end
		{name: "announcement-lost", transfers: 6, loss: (*lab).dropFirstAnnouncements, minReplays: 6},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Run("ftpct", func(t *testing.T) {
				l := newLab(t, "none")
				d := l.startFtpct(debugArgs()...)
				sc.loss(l)
				inv0 := invalidCount(t, l)
				before := d.stats()
				start := time.Now()
				failed := lossTransfers(t, l, sc.transfers, t.Errorf)
				dt := delta(before, d.stats())
				inv := invalidCount(t, l) - inv0
				t.Logf("ftpct: %d transfers in %v, %d failed; dropped by the loss rules %d; rewrites +%d, replays +%d, resends_completed +%d, held_lines +%d, hold_abandoned +%d, out_of_order +%d, expect_created +%d used +%d; conntrack invalid +%d",
					sc.transfers, time.Since(start).Round(time.Millisecond), failed, l.lossDrops(), dt["rewrites"], dt["replays"], dt["resends_completed"], dt["held_lines"], dt["hold_abandoned"], dt["out_of_order"], dt["expect_created"], dt["expect_used"], inv)
				if dt["rewrites"] < int64(sc.transfers) {
					t.Errorf("rewrites +%d, want at least %d", dt["rewrites"], sc.transfers)
				}
				if dt["replays"] < sc.minReplays {
					t.Errorf("replays +%d, want at least %d", dt["replays"], sc.minReplays)
				}
				if l.lossDrops() <= 0 {
					t.Errorf("the loss rules dropped nothing: the test proves nothing")
				}
				if inv != 0 {
					t.Errorf("conntrack counted %d invalid packets on the gateway", inv)
				}
				if dt["errors"] != 0 || dt["dropped"] != 0 {
					t.Errorf("errors +%d, dropped +%d, want 0", dt["errors"], dt["dropped"])
				}
			})
			t.Run("kernel", func(t *testing.T) {
				l := newLab(t, "kernel")
				sc.loss(l)
				inv0 := invalidCount(t, l)
				start := time.Now()
				failed := lossTransfers(t, l, sc.transfers, t.Errorf)
				inv := invalidCount(t, l) - inv0
				t.Logf("the kernel helper (reference): %d transfers in %v, %d failed; dropped by the loss rules %d; conntrack invalid +%d",
					sc.transfers, time.Since(start).Round(time.Millisecond), failed, l.lossDrops(), inv)
				if l.lossDrops() <= 0 {
					t.Errorf("the loss rules dropped nothing: the reference proves nothing")
				}
			})
		})
	}
	t.Run("split-announcement-lost", func(t *testing.T) {
		l := newLab(t, "none")
		d := l.startFtpct(debugArgs()...)
		l.dropFirstAnnouncements()
		inv0 := invalidCount(t, l)
		var completed int64
		for _, c := range []splitCase{{"port", "address", 0.05, false}, {"eprt", "address", 0.05, false}, {"port", "both", 0.05, false}} {
			before := d.stats()
			res, out, err := c.run(l, 20*time.Second)
			dt := delta(before, d.stats())
			t.Logf("%v: replays +%d, resends_completed +%d, rewrites +%d", c, dt["replays"], dt["resends_completed"], dt["rewrites"])
			if err != nil || !res.ok() {
				t.Errorf("splitclient %v through ftpct failed: %v\n%s", c, err, out)
			}
			if dt["replays"] < 1 || dt["errors"] != 0 || dt["dropped"] != 0 {
				t.Errorf("%v: replays +%d, errors +%d, dropped +%d; want at least 1, 0, 0", c, dt["replays"], dt["errors"], dt["dropped"])
			}
			completed += dt["resends_completed"]
		}
		if l.lossDrops() < 3 {
			t.Errorf("the loss rule dropped %d announcements, want 3", l.lossDrops())
		}
		if completed < 1 {
			t.Errorf("resends_completed +0: no resend cut a rewritten argument (the client collapsed every resend?)")
		}
		if inv := invalidCount(t, l) - inv0; inv != 0 {
			t.Errorf("conntrack counted %d invalid packets on the gateway", inv)
		}
	})
}

// lossTransfers makes n active-mode downloads with curl, alternately with
// PORT and EPRT, reports each failure with report and returns how many failed.
// A transfer may take long: TCP backs off exponentially when a segment is lost
// again and again (a handshake that needed retransmissions leaves a
// retransmission timeout of seconds), so the deadline is generous.
func lossTransfers(t *testing.T, l *lab, n int, report func(string, ...any)) int {
	t.Helper()
	failed := 0
	for i := 0; i < n; i++ {
		flags := []string{"-P", "-"}
		if i%2 == 0 {
			flags = append(flags, "--disable-eprt")
		}
		t0 := time.Now()
		if err := curlGet(l, 21, "big.bin", 120*time.Second, flags...); err != nil {
			failed++
			report("transfer %d (%s) under loss: %v", i, strings.Join(flags, " "), err)
		} else if s := time.Since(t0); s > 5*time.Second {
			t.Logf("transfer %d took %v", i, s)
		}
	}
	return failed
}

// TestHostileInput: 64 KiB of garbage without a newline, and AUTH TLS
// followed by would-be ciphertext containing a PORT command.
func TestHostileInput(t *testing.T) {
	l := newLab(t, "none")
	l.allowAltPort(false)
	d := l.startFtpct(debugArgs("--ports", fmt.Sprintf("21,%d", altPort))...)
	l.startSplitServer("--auth-tls", "--idle-timeout", "10")
	for _, port := range []int{21, altPort} {
		t.Run(fmt.Sprintf("garbage-%d", port), func(t *testing.T) {
			before := d.stats()
			args := []string{"--server", serverAddr, "--port", fmt.Sprint(port), "--mode", "garbage", "--op-timeout", "10", "--timeout", "30"}
			if port == 21 {
				// vsftpd answers the over-long line with 500 and closes while
				// the rest is still arriving: its kernel may reset. What
				// matters here is ftpct; splitserver (altPort) must stay alive.
				args = append(args, "--allow-reset")
			}
			res, out, err := runPeer(l, "c", 40*time.Second, "hostile.py", args...)
			dt := delta(before, d.stats()) // stats answering: the daemon lives
			t.Logf("garbage to port %d: outcome %v, sent %v; line_overflow +%d, partial_lines +%d, held_lines +%d, malformed +%d",
				port, res["outcome"], res["sent"], dt["line_overflow"], dt["partial_lines"], dt["held_lines"], dt["malformed"])
			if err != nil || !res.ok() {
				t.Errorf("hostile garbage: %v\n%s", err, out)
			}
			if port == altPort && res["outcome"] != "alive" {
				t.Errorf("splitserver's session did not answer NOOP after the garbage through ftpct (outcome %v)", res["outcome"])
			}
			if dt["line_overflow"]+dt["partial_lines"] < 1 {
				t.Errorf("neither line_overflow nor partial_lines counted the 64 KiB line")
			}
			for _, k := range []string{"errors", "dropped", "expect_created", "rewrites"} {
				if dt[k] != 0 {
					t.Errorf("%s +%d, want 0", k, dt[k])
				}
			}
			if err := transfer(l, clients[2], 20*time.Second); err != nil {
				t.Errorf("transfer after garbage: %v", err)
			}
		})
	}
	t.Run("auth-tls", func(t *testing.T) {
		before := d.stats()
		res, out, err := runPeer(l, "c", 30*time.Second, "hostile.py", "--server", serverAddr, "--port", fmt.Sprint(altPort),
			"--mode", "tls", "--require-234", "--pause", "0.05", "--timeout", "20")
		time.Sleep(300 * time.Millisecond)
		dt := delta(before, d.stats())
		t.Logf("tls: auth_reply %v, tls_sent %v; tls_sessions +%d, expect_created +%d, commands +%d", res["auth_reply"], res["tls_sent"], dt["tls_sessions"], dt["expect_created"], dt["commands"])
		if err != nil || !res.ok() {
			t.Fatalf("hostile tls: %v\n%s", err, out)
		}
		if dt["tls_sessions"] != 1 {
			t.Errorf("tls_sessions +%d, want 1", dt["tls_sessions"])
		}
		if dt["expect_created"] != 0 || dt["rewrites"] != 0 || dt["expect_refused"] != 0 || dt["malformed"] != 0 {
			t.Errorf("expect_created +%d, rewrites +%d, expect_refused +%d, malformed +%d after AUTH TLS; want 0 (the ciphertext must not be parsed)",
				dt["expect_created"], dt["rewrites"], dt["expect_refused"], dt["malformed"])
		}
		if n := len(d.expectList()); n != 0 {
			t.Errorf("%d expectations pending, want none", n)
		}
	})
	if err := d.stop(); err != nil {
		t.Errorf("ftpct exit: %v", err)
	}
	n := 0
	for _, line := range strings.Split(d.log.String(), "\n") {
		if strings.Contains(line, "TLS") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("ftpct logged %d lines mentioning TLS, want exactly 1 (why the session's data connections cannot be opened):\n%s", n, d.log.String())
	}
}
