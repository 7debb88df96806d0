//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Addresses of lab/lab.sh.
const (
	serverAddr = "203.0.113.2"
	clientAddr = "10.0.1.2"
)

var (
	repoRoot  string
	ftpctBin  string
	labScript string
	peersDir  string
	labSeq    atomic.Int32
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Dir(filepath.Dir(file))
	labScript = filepath.Join(repoRoot, "lab", "lab.sh")
	peersDir = filepath.Join(repoRoot, "e2e", "peers")
	if reason := missing(); reason != "" {
		if os.Getenv("CI") == "true" {
			fmt.Fprintf(os.Stderr, "FAIL: end-to-end tests cannot run in CI: %s\n", reason)
			return 1
		}
		return skipAll(m, reason)
	}
	tmp, err := os.MkdirTemp("", "ftpct-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	if bin := os.Getenv("FTPCT_BIN"); bin != "" {
		// An installed binary (the .deb's /usr/sbin/ftpct) instead of a build.
		if ftpctBin, err = exec.LookPath(bin); err != nil || !filepath.IsAbs(ftpctBin) {
			fmt.Fprintf(os.Stderr, "FTPCT_BIN=%s: want the absolute path of an executable (%v)\n", bin, err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "e2e: testing %s (FTPCT_BIN)\n", ftpctBin)
		return m.Run()
	}
	ftpctBin = filepath.Join(tmp, "ftpct")
	build := exec.Command("go", "build", "-o", ftpctBin, "./cmd/ftpct")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build ftpct: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// missing says what keeps the tests from running, or "" when nothing does.
func missing() string {
	if os.Geteuid() != 0 {
		return "root (network namespaces, netfilter)"
	}
	for _, tool := range []string{"ip", "iptables", "iptables-save", "nft", "vsftpd", "curl", "lftp", "python3", "ss", "conntrack"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "the tool " + tool + " (run lab/deps.sh)"
		}
	}
	return ""
}

// lab is one instance of lab/lab.sh's topology.
type lab struct {
	t    *testing.T
	name string
	dir  string
}

// newLab builds a lab with the given helper ("kernel" or "none"; ftpct is
// started separately) and tears it down when the test ends.
func newLab(t *testing.T, helper string) *lab {
	t.Helper()
	return startLab(t, "f", helper)
}

// startLab runs `lab.sh up NAME args...` with a fresh NAME starting with
// prefix, and `lab.sh down NAME` when the test ends.
func startLab(t *testing.T, prefix string, args ...string) *lab {
	t.Helper()
	name := fmt.Sprintf("%s%d%d", prefix, os.Getpid()%10000, labSeq.Add(1))
	if len(name) > 8 {
		name = name[len(name)-8:]
	}
	l := &lab{t: t, name: name}
	t.Cleanup(func() {
		if out, err := exec.Command("bash", labScript, "down", name).CombinedOutput(); err != nil {
			t.Errorf("lab down %s: %v\n%s", name, err, out)
		}
	})
	up := exec.Command("bash", append([]string{labScript, "up", name}, args...)...)
	// The lab installs the rules this ftpct prints (ftpct rules --deployment).
	up.Env = append(os.Environ(), "FTPCT="+ftpctBin)
	if out, err := up.CombinedOutput(); err != nil {
		t.Fatalf("lab up %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	dir, err := exec.Command("bash", labScript, "dir", name).Output()
	if err != nil {
		t.Fatal(err)
	}
	l.dir = strings.TrimSpace(string(dir))
	return l
}

func (l *lab) ns(host string) string { return l.name + "-" + host }

// exec runs a command in a lab host with a deadline and returns its output.
func (l *lab) exec(host string, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.ns(host)}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v", timeout)
	}
	return out.String(), err
}

func (l *lab) mustExec(host string, args ...string) string {
	l.t.Helper()
	out, err := l.exec(host, 30*time.Second, args...)
	if err != nil {
		l.t.Fatalf("%s: %s: %v\n%s", host, strings.Join(args, " "), err, out)
	}
	return out
}

func (l *lab) fileSHA(name string) string {
	l.t.Helper()
	b, err := os.ReadFile(filepath.Join(l.dir, "root", name))
	if err != nil {
		l.t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// ruleset is the gateway's netfilter configuration without counters.
func (l *lab) ruleset() string {
	l.t.Helper()
	counters := regexp.MustCompile(`counter packets \d+ bytes \d+ ?|\[\d+:\d+\]`)
	nft := l.mustExec("g", "nft", "list", "ruleset")
	ipt := l.mustExec("g", "iptables-save")
	expires := regexp.MustCompile(` expires [0-9dhms]+`)
	var keep []string
	inGuard, inElems := false, false
	for _, line := range strings.Split(nft+ipt, "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		// The guard set's elements come and go by themselves within
		// seconds (rules: set guard): not rules.
		switch t := strings.TrimSpace(line); {
		case t == "set guard {":
			inGuard = true
		case inGuard && strings.HasPrefix(t, "elements = {"):
			inElems = !strings.HasSuffix(t, "}")
			continue
		case inElems:
			inElems = !strings.HasSuffix(t, "}")
			continue
		case inGuard && t == "}":
			inGuard = false
		}
		keep = append(keep, expires.ReplaceAllString(counters.ReplaceAllString(line, ""), ""))
	}
	return strings.Join(keep, "\n")
}

// daemon is an ftpct process on a lab host.
type daemon struct {
	l      *lab
	host   string
	cmd    *exec.Cmd
	socket string
	log    *syncBuffer
	done   chan error
	args   []string // the flags of run, which uninstall takes too
	env    []string // its environment additions, uninstall's too
}

// syncBuffer is a bytes.Buffer a process writes to while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startFtpct runs `ftpct run` on the gateway (see startFtpctOn).
func (l *lab) startFtpct(args ...string) *daemon {
	l.t.Helper()
	return l.startFtpctOn("g", args...)
}

// startFtpctOn runs `ftpct run` on a lab host and waits until `ftpct stats`
// answers. When the test ends it is stopped with SIGTERM, if still running,
// and must exit cleanly.
func (l *lab) startFtpctOn(host string, args ...string) *daemon {
	l.t.Helper()
	return l.startFtpctEnv(nil, host, args...)
}

// startFtpctEnv is startFtpctOn with environment variables (NAME=VALUE)
// set for ftpct.
func (l *lab) startFtpctEnv(env []string, host string, args ...string) *daemon {
	l.t.Helper()
	d := &daemon{l: l, host: host, socket: filepath.Join(l.dir, "ftpct.sock"), log: &syncBuffer{}, done: make(chan error, 1)}
	argv := []string{"netns", "exec", l.ns(host)}
	if len(env) > 0 {
		argv = append(append(append(argv, "/usr/bin/env"), env...), ftpctBin)
	} else {
		argv = append(argv, ftpctBin)
	}
	argv = append(append(argv, "run", "--socket", d.socket), args...)
	d.cmd = exec.Command("ip", argv...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(l.dir, "pids", "ftpct"), []byte(fmt.Sprint(d.cmd.Process.Pid)), 0o644); err != nil {
		l.t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	d.args, d.env = args, env
	l.t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			if err := d.stop(); err != nil {
				l.t.Errorf("ftpct exit: %v", err)
			}
		}
		// ftpct leaves its rules for the next run; uninstall removes them all.
		if err := d.uninstall(); err != nil {
			l.t.Errorf("%v", err)
		}
		if l.t.Failed() {
			l.t.Logf("ftpct log:\n%s", d.log.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := l.exec(host, 5*time.Second, ftpctBin, "stats", "--socket", d.socket); err == nil {
			return d
		}
		select {
		case err := <-d.done:
			l.t.Fatalf("ftpct exited during start: %v\n%s", err, d.log.String())
		default:
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("ftpct did not answer on %s within 10s\n%s", d.socket, d.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop sends SIGTERM and returns the exit error (nil for exit status 0).
func (d *daemon) stop() error {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		return err
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		return fmt.Errorf("ftpct did not stop within 10s of SIGTERM")
	}
}

// kill sends SIGKILL and waits for the process to end: a crash.
func (d *daemon) kill() {
	_ = d.cmd.Process.Kill()
	<-d.done
}

// uninstall runs `ftpct uninstall` with the daemon's flags and checks that
// no ftpct table is left on its host.
func (d *daemon) uninstall() error {
	argv := append([]string{ftpctBin, "uninstall", "--socket", d.socket}, d.args...)
	if len(d.env) > 0 {
		argv = append(append([]string{"/usr/bin/env"}, d.env...), argv...)
	}
	if out, err := d.l.exec(d.host, 30*time.Second, argv...); err != nil {
		return fmt.Errorf("ftpct uninstall: %v: %s", err, out)
	}
	tables, err := d.l.exec(d.host, 10*time.Second, "nft", "list", "tables")
	if err != nil {
		return fmt.Errorf("nft list tables: %v: %s", err, tables)
	}
	if strings.Contains(tables, "ftpct") {
		return fmt.Errorf("ftpct tables left after uninstall:\n%s", tables)
	}
	return nil
}

// usedSettled returns stats once expect_used has reached want, or after
// 5 s whatever it is: expect_used counts the conntrack NEW events of data
// connections, which ftpct reads from their own socket and may handle a
// little after the transfer that made them has ended.
func (d *daemon) usedSettled(want uint64) map[string]uint64 {
	d.l.t.Helper()
	st := d.stats()
	for deadline := time.Now().Add(5 * time.Second); st["expect_used"] < want && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		st = d.stats()
	}
	return st
}

// stats returns `ftpct stats --json`.
func (d *daemon) stats() map[string]uint64 {
	d.l.t.Helper()
	out := d.l.mustExec(d.host, ftpctBin, "stats", "--json", "--socket", d.socket)
	var m map[string]uint64
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		d.l.t.Fatalf("stats --json: %v\n%s", err, out)
	}
	return m
}
