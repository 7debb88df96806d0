//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Helpers for hostile_test.go: the scripted peers of e2e/peers, background
// processes in lab hosts, counter deltas, packet loss, memory.

// altPort is the control port of splitserver.py in the server namespace.
const altPort = 2121

// debugArgs adds --log-level debug to ftpct when FTPCT_DEBUG is set (every
// packet's verdict in the log shown on failure).
func debugArgs(args ...string) []string {
	if os.Getenv("FTPCT_DEBUG") != "" {
		return append(args, "--log-level", "debug")
	}
	return args
}

// peerResult is the JSON result line of a peer script.
type peerResult map[string]any

func (r peerResult) ok() bool { b, _ := r["ok"].(bool); return b }

func (r peerResult) num(k string) float64 { f, _ := r[k].(float64); return f }

// runPeer runs e2e/peers/SCRIPT in a lab host and returns its JSON result line,
// the whole output and the exit error.
func runPeer(l *lab, host string, timeout time.Duration, script string, args ...string) (peerResult, string, error) {
	argv := append([]string{"python3", filepath.Join(peersDir, script)}, args...)
	out, err := l.exec(host, timeout, argv...)
	var res peerResult
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var m peerResult
		if json.Unmarshal([]byte(line), &m) == nil {
			if _, has := m["ok"]; has {
				res = m
			}
		}
	}
	if res == nil {
		res = peerResult{}
	}
	return res, out, err
}

// bgProc is a process started in a lab host for the duration of a test.
type bgProc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	done chan struct{}
}

// output is what the process printed on stdout so far.
func (p *bgProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// startBg starts argv in a lab host, records its PID for lab.sh down, and
// stops it with SIGTERM (then SIGKILL) when the test ends. If ready is not
// empty, it waits (10 s at most) for a stdout line containing it.
func (l *lab) startBg(host, ready string, argv ...string) *bgProc {
	l.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.ns(host)}, argv...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		l.t.Fatal(err)
	}
	p := &bgProc{cmd: cmd, done: make(chan struct{})}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	pidFile := filepath.Join(l.dir, "pids", fmt.Sprintf("bg-%d", cmd.Process.Pid))
	_ = os.WriteFile(pidFile, []byte(fmt.Sprint(cmd.Process.Pid)), 0o644)
	readyCh := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.out.WriteString(line + "\n")
			p.mu.Unlock()
			if !signalled && ready != "" && strings.Contains(line, ready) {
				close(readyCh)
				signalled = true
			}
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	l.t.Cleanup(func() { p.stop(); os.Remove(pidFile) })
	if ready == "" {
		return p
	}
	select {
	case <-readyCh:
	case <-p.done:
		l.t.Fatalf("%s exited before it was ready:\n%s", strings.Join(argv, " "), p.output())
	case <-time.After(10 * time.Second):
		l.t.Fatalf("%s not ready within 10s", strings.Join(argv, " "))
	}
	return p
}

// stop ends the process (SIGTERM, SIGKILL after 5 s) and returns its output.
func (p *bgProc) stop() string {
	select {
	case <-p.done:
		return p.output()
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return p.output()
}

// startSplitServer runs splitserver.py on serverAddr:altPort serving the
// lab's files.
func (l *lab) startSplitServer(args ...string) *bgProc {
	l.t.Helper()
	argv := append([]string{"python3", filepath.Join(peersDir, "splitserver.py"), "--root", filepath.Join(l.dir, "root"),
		"--listen", serverAddr, "--port", strconv.Itoa(altPort)}, args...)
	return l.startBg("s", `"ready"`, argv...)
}

// allowAltPort lets LAN clients open control connections to altPort through
// the gateway (the lab only allows 21) and, with the kernel helper, attaches
// the helper to that port too.
func (l *lab) allowAltPort(kernel bool) {
	l.t.Helper()
	p := strconv.Itoa(altPort)
	l.mustExec("g", "iptables", "-A", "FORWARD", "-i", l.name+"-gl", "-p", "tcp", "--dport", p,
		"-m", "conntrack", "--ctstate", "NEW", "-j", "ACCEPT")
	if kernel {
		l.mustExec("g", "iptables", "-t", "raw", "-A", "PREROUTING", "-p", "tcp", "--dport", p, "-j", "CT", "--helper", "ftp")
	}
}

// addLoss drops permille thousandths of the control channel's packets (TCP
// port 21) at each of four points, as a lossy link would: where each
// direction enters the gateway (netdev ingress, before ftpct or the kernel
// helper sees it) and where it enters the receiving host (its input path,
// after the gateway rewrote it). Drops in a sender's own output path would
// not be link loss: the sender's stack gets an error back, and Linux then
// forgets a half-open connection whose SYN-ACK retransmission failed.
func (l *lab) addLoss(permille int) {
	l.t.Helper()
	match := func(verdict string) string {
		return fmt.Sprintf("tcp dport 21 numgen random mod 1000 < %[1]d counter %[2]s\n\t\ttcp sport 21 numgen random mod 1000 < %[1]d counter %[2]s", permille, verdict)
	}
	host := fmt.Sprintf("table inet loss {\n\tchain in { type filter hook input priority 0; policy accept;\n\t\t%s\n\t}\n}\n", match("drop"))
	gw := fmt.Sprintf("table netdev loss {\n"+
		"\tchain from_client { type filter hook ingress device %[1]q priority 0; policy accept;\n\t\t%[3]s\n\t}\n"+
		"\tchain from_server { type filter hook ingress device %[2]q priority 0; policy accept;\n\t\t%[3]s\n\t}\n}\n",
		l.name+"-gl", l.name+"-gw", match("drop"))
	for h, script := range map[string]string{"c": host, "s": host, "g": gw} {
		f := filepath.Join(l.dir, "loss-"+h+".nft")
		if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
			l.t.Fatal(err)
		}
		l.mustExec(h, "nft", "-f", f)
	}
}

// dropFirstAnnouncements drops, at the server's input (after the gateway
// rewrote them), every other segment that begins with "PORT " or "EPRT ":
// each announcement's first transmission, when the client sends each once
// and resends it once.
func (l *lab) dropFirstAnnouncements() {
	l.t.Helper()
	script := "table inet loss {\n\tchain in { type filter hook input priority 0; policy accept;\n" +
		"\t\ttcp dport 21 @ih,0,40 { 0x504f525420, 0x4550525420 } numgen inc mod 2 == 0 counter drop\n\t}\n}\n"
	f := filepath.Join(l.dir, "loss-s.nft")
	if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
		l.t.Fatal(err)
	}
	l.mustExec("s", "nft", "-f", f)
}

// lossDrops sums the drop counters of the loss tables (addLoss,
// dropFirstAnnouncements) in the lab's hosts.
func (l *lab) lossDrops() int {
	n := 0
	for h, family := range map[string]string{"c": "inet", "s": "inet", "g": "netdev"} {
		out, err := l.exec(h, 10*time.Second, "nft", "list", "table", family, "loss")
		if err != nil {
			continue // no loss table in this host
		}
		f := strings.Fields(out)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "packets" {
				v, _ := strconv.Atoi(f[i+1])
				n += v
			}
		}
	}
	return n
}

// delta is the difference of two stats snapshots.
func delta(before, after map[string]uint64) map[string]int64 {
	d := map[string]int64{}
	for k, v := range after {
		d[k] = int64(v) - int64(before[k])
	}
	return d
}

// vmRSS is the resident set size of the daemon in KiB.
func (d *daemon) vmRSS() int {
	d.l.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		d.l.t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	d.l.t.Fatal("no VmRSS in /proc/PID/status")
	return 0
}

// expectList is `ftpct expect list --json`.
func (d *daemon) expectList() []map[string]any {
	d.l.t.Helper()
	out := d.l.mustExec("g", ftpctBin, "expect", "list", "--json", "--socket", d.socket)
	var list []map[string]any
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		d.l.t.Fatalf("expect list --json: %v: %s", err, out)
	}
	return list
}

// curlGet downloads file from the server on port with curl and the given
// mode flags and checks it byte for byte.
func curlGet(l *lab, port int, file string, timeout time.Duration, flags ...string) error {
	out := filepath.Join(l.dir, "curl-out")
	os.Remove(out)
	secs := fmt.Sprint(int(timeout.Seconds()))
	argv := append([]string{"curl", "-sS", "--max-time", secs, "--connect-timeout", secs}, flags...)
	argv = append(argv, "-o", out, fmt.Sprintf("ftp://%s:%d/%s", serverAddr, port, file))
	if o, err := l.exec("c", timeout+5*time.Second, argv...); err != nil {
		return fmt.Errorf("curl %s: %v: %s", strings.Join(flags, " "), err, o)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		return fmt.Errorf("no download: %v", err)
	}
	if sumOf(got) != l.fileSHA(file) {
		return fmt.Errorf("download differs: %d bytes", len(got))
	}
	return nil
}

// invalidCount is the sum of conntrack's invalid counters on the gateway.
func invalidCount(t *testing.T, l *lab) int {
	t.Helper()
	out := l.mustExec("g", "conntrack", "-S")
	n := 0
	for _, f := range strings.Fields(out) {
		if v, ok := strings.CutPrefix(f, "invalid="); ok {
			i, _ := strconv.Atoi(v)
			n += i
		}
	}
	return n
}

// nonZero is the changed counters of a delta.
func nonZero(d map[string]int64) map[string]int64 {
	m := map[string]int64{}
	for k, v := range d {
		if v != 0 {
			m[k] = v
		}
	}
	return m
}

// rtoCount is the number of retransmission timeouts (TcpExt TCPTimeouts in
// /proc/net/netstat) of the TCP senders in the lab host's network
// namespace: each time a segment waited for its sender's retransmission
// timer (at least 200 ms). Tail loss probes are not counted: a lab
// transfer's last segments get them now and then whatever ftpct does.
func (l *lab) rtoCount(host string) int {
	l.t.Helper()
	out := l.mustExec(host, "cat", "/proc/net/netstat")
	lines := strings.Split(out, "\n")
	n, found := 0, 0
	for i := 0; i+1 < len(lines); i += 2 {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "TcpExt:" || len(values) != len(names) {
			continue
		}
		for j, name := range names {
			if name == "TCPTimeouts" {
				v, err := strconv.Atoi(values[j])
				if err != nil {
					l.t.Fatalf("%s: /proc/net/netstat %s %q: %v", host, name, values[j], err)
				}
				n += v
				found++
			}
		}
	}
	if found != 1 {
		l.t.Fatalf("%s: no TcpExt TCPTimeouts in /proc/net/netstat:\n%s", host, out)
	}
	return n
}

// rtos is the sum of rtoCount over the client and the server.
func (l *lab) rtos() int { return l.rtoCount("c") + l.rtoCount("s") }
