//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stepClient is e2e/peers/stepclient.py on the lab's client, driven one
// command at a time.
type stepClient struct {
	t     *testing.T
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
}

func newStepClient(t *testing.T, l *lab, server string) *stepClient {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", l.ns("c"), "python3", filepath.Join(peersDir, "stepclient.py"), "--server", server)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &stepClient{t: t, cmd: cmd, in: in, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(outp)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	t.Cleanup(func() {
		in.Close()
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() && stderr.String() != "" {
			t.Logf("stepclient stderr:\n%s", stderr.String())
		}
	})
	return c
}

// send writes one command without waiting for its answer.
func (c *stepClient) send(cmd string) {
	c.t.Helper()
	if _, err := fmt.Fprintln(c.in, cmd); err != nil {
		c.t.Fatalf("stepclient %s: %v", cmd, err)
	}
}

// answer waits for the next answer line; it fails the test on an error.
func (c *stepClient) answer(what string, timeout time.Duration) map[string]any {
	c.t.Helper()
	select {
	case line, ok := <-c.lines:
		if !ok {
			c.t.Fatalf("stepclient %s: exited", what)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			c.t.Fatalf("stepclient %s: %v: %q", what, err, line)
		}
		if m["ok"] != true {
			c.t.Fatalf("stepclient %s: %v", what, m["error"])
		}
		return m
	case <-time.After(timeout):
		c.t.Fatalf("stepclient %s: no answer within %v", what, timeout)
	}
	return nil
}

func (c *stepClient) do(cmd string) map[string]any {
	c.t.Helper()
	c.send(cmd)
	return c.answer(cmd, 30*time.Second)
}

// get downloads big.bin in mode and checks it byte for byte.
func (c *stepClient) get(l *lab, mode string) {
	c.t.Helper()
	out := filepath.Join(l.dir, "restart-"+mode+".bin")
	m := c.do(fmt.Sprintf("get %s big.bin %s", mode, out))
	if m["sha256"] != l.fileSHA("big.bin") {
		c.t.Fatalf("%s download differs: %v bytes, sha256 %v", mode, m["bytes"], m["sha256"])
	}
}

// elements counts the elements of an ftpct set on host g.
func elements(l *lab, set string) int {
	l.t.Helper()
	out := l.mustExec("g", "nft", "list", "set", "ip", "ftpct", set)
	_, body, ok := strings.Cut(out, "elements = {")
	if !ok {
		return 0
	}
	body, _, _ = strings.Cut(body, "}")
	return len(strings.Split(body, ","))
}

var invalidRe = regexp.MustCompile(`invalid=(\d+)`)

// invalid sums conntrack's invalid counters on the gateway.
func invalid(l *lab) int {
	l.t.Helper()
	n := 0
	for _, m := range invalidRe.FindAllStringSubmatch(l.mustExec("g", "conntrack", "-S"), -1) {
		v, _ := strconv.Atoi(m[1])
		n += v
	}
	return n
}

// TestRestart: a control connection whose stream a rewrite resized goes on
// when ftpct is stopped (SIGTERM) or killed (SIGKILL) and started again
// within 2 seconds: a NOOP sent while ftpct is absent is answered once it is
// back, a data connection announced before the restart is honoured after
// it, further announcements are rewritten, transfers are byte-exact, and
// conntrack sees nothing invalid. While ftpct is absent, new control
// connections still work (queue bypass) and open no hole.
func TestRestart(t *testing.T) {
	tests := []struct {
		name   string
		topo   string
		target string
		// first resizes the stream, then pending is announced and left
		// pending across the restart, later is announced after it.
		first, pending, later string
	}{
		{name: "active-masq", topo: "masq", target: serverAddr, first: "PORT", pending: "PORT", later: "EPRT"},
		{name: "passive-dnat", topo: "dnat", target: "198.51.100.1", first: "PASV", pending: "PASV", later: "PASV"},
	}
	for _, tc := range tests {
		for _, stop := range []string{"TERM", "KILL"} {
			t.Run(tc.name+"-"+stop, func(t *testing.T) {
				l, host := newTopoLab(t, "none", tc.topo, "vsftpd", []string{"21"})
				if host != "g" {
					t.Fatalf("ftpct runs on %s in topology %s, want g", host, tc.topo)
				}
				invalidBefore := invalid(l)
				d := l.startFtpct("--log-level", "debug")
				c := newStepClient(t, l, tc.target)
				c.do("login")
				c.get(l, tc.first)
				if st := d.stats(); st["rewrites"] == 0 || st["state_writes"] == 0 {
					t.Fatalf("rewrites %d, state_writes %d after the first transfer; want the stream resized and stored", st["rewrites"], st["state_writes"])
				}
				if n := elements(l, "hold"); n != 2 {
					t.Errorf("%d held flows, want the control connection's 2", n)
				}
				c.do("announce " + tc.pending)
				holes := elements(l, "expect")
				if holes != 1 {
					t.Fatalf("%d holes after the announcement, want 1", holes)
				}

				if stop == "TERM" {
					if err := d.stop(); err != nil {
						t.Fatalf("ftpct exit after SIGTERM: %v", err)
					}
				} else {
					d.kill()
				}
				stopped := time.Now()
				// While ftpct is absent the resized session's NOOP waits:
				// its segments are dropped, the client retransmits them.
				c.send("send-noop")
				c.answer("send-noop", 5*time.Second)
				if stop == "TERM" {
					// ... a fresh control connection works (bypass) and
					// its announcement opens no hole. (Only here: after
					// SIGKILL the new start must come within 2 seconds.)
					fresh := newStepClient(t, l, tc.target)
					fresh.do("login")
					fresh.do("noop")
					fresh.do("announce PASV")
					if n := elements(l, "expect"); n != holes {
						t.Errorf("%d holes while ftpct is absent, want the %d left", n, holes)
					}
					fresh.do("quit")
				} else if gap := time.Since(stopped); gap > 2*time.Second {
					t.Fatalf("the new start came %v after the kill, want within 2s", gap)
				}
				d2 := l.startFtpct("--log-level", "debug")
				c.send("reply")
				if m := c.answer("NOOP reply", 30*time.Second); !strings.HasPrefix(fmt.Sprint(m["reply"]), "200") {
					t.Errorf("NOOP sent during the gap answered %v, want 200", m["reply"])
				}
				if st := d2.stats(); st["sessions_restored"] == 0 {
					t.Errorf("sessions_restored = 0 after the restart")
				}
				if out := l.mustExec("g", ftpctBin, "expect", "list", "--socket", d2.socket); !strings.Contains(out, "pending") {
					t.Errorf("the pending expectation was not taken over:\n%s", out)
				}
				m := c.do("finish big.bin " + filepath.Join(l.dir, "restart-pending.bin"))
				if m["sha256"] != l.fileSHA("big.bin") {
					t.Errorf("pending transfer after the restart differs: %v bytes", m["bytes"])
				}
				if m := c.do("noop"); !strings.HasPrefix(fmt.Sprint(m["reply"]), "200") {
					t.Errorf("NOOP after the restart: %v", m["reply"])
				}
				c.get(l, tc.later)
				st := d2.stats()
				if st["rewrites"] == 0 {
					t.Errorf("no rewrite after the restart: %v", st)
				}
				for _, k := range []string{"errors", "state_errors", "sessions_foreign", "malformed"} {
					if st[k] != 0 {
						t.Errorf("%s = %d after the restart, want 0", k, st[k])
					}
				}
				c.do("quit")
				if n := invalid(l); n != invalidBefore {
					t.Errorf("conntrack invalid counter went from %d to %d", invalidBefore, n)
				}
			})
		}
	}
}
