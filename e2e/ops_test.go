//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Operations: the config file and SIGHUP, and the start-up errors an
// operator meets (README "Install on a gateway").

// heldSession is a Python ftplib client that keeps one control connection
// through two phases: an active-mode download (its PORT rewritten by the
// masquerading gateway, so the stream is resized) and a PORT whose
// expectation stays pending; it prints "phase1" and waits for the file
// go1; then NOOP, a second active-mode download, a pending PORT again,
// "phase2", and waits for go2; then QUIT and a JSON result line.
const heldSession = `
import ftplib, hashlib, json, os, socket, sys, time
d = sys.argv[1]
f = ftplib.FTP()
f.connect("203.0.113.2", 21, timeout=10)
f.login()
f.set_pasv(False)
def get():
    h = hashlib.sha256()
    f.retrbinary("RETR big.bin", h.update)
    return h.hexdigest()
def pending():
    l = socket.socket()
    l.bind((f.sock.getsockname()[0], 0))
    l.listen(1)
    f.sendport(*l.getsockname())
    return l
def wait(name):
    for _ in range(600):
        if os.path.exists(os.path.join(d, name)):
            return
        time.sleep(0.1)
    raise SystemExit("no " + name)
sums = [get()]
l1 = pending()
print("phase1", flush=True)
wait("go1")
f.voidcmd("NOOP")
sums.append(get())
l2 = pending()
print("phase2", flush=True)
wait("go2")
f.voidcmd("NOOP")
f.quit()
print(json.dumps({"ok": True, "sums": sums}), flush=True)
`

// waitLog waits until the daemon's log matches re.
func (d *daemon) waitLog(re *regexp.Regexp, timeout time.Duration) string {
	d.l.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if m := re.FindString(d.log.String()); m != "" {
			return m
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.l.t.Fatalf("ftpct log does not match %s within %v:\n%s", re, timeout, d.log.String())
	return ""
}

// hup sends SIGHUP to the daemon.
func (d *daemon) hup() {
	d.l.t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		d.l.t.Fatal(err)
	}
}

// expiresIn returns how long the pending expectations have left, newest last.
func (d *daemon) expiresIn() []time.Duration {
	d.l.t.Helper()
	var out []time.Duration
	for _, x := range d.expectList() {
		exp, err := time.Parse(time.RFC3339Nano, fmt.Sprint(x["expires"]))
		if err != nil {
			d.l.t.Fatalf("expectation %v: %v", x, err)
		}
		out = append(out, time.Until(exp))
	}
	return out
}

// TestConfigReload: the daemon reads its settings from a config file; SIGHUP
// applies a new timeout in the middle of a resized session, which goes on;
// a setting that needs a restart is reported and kept; an invalid file is
// refused with its key and line and changes nothing.
func TestConfigReload(t *testing.T) {
	l := newLab(t, "none")
	conf := filepath.Join(l.dir, "ftpct.conf")
	write := func(text string) {
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("# lab\ntimeout = \"5m\"\nmax-per-session = 2\n")
	d := l.startFtpct("--config", conf)

	script := filepath.Join(l.dir, "held.py")
	if err := os.WriteFile(script, []byte(heldSession), 0o644); err != nil {
		t.Fatal(err)
	}
	p := l.startBg("c", "phase1", "python3", script, l.dir)
	exp := d.expiresIn()
	if len(exp) != 1 || exp[0] < 4*time.Minute {
		t.Fatalf("pending expectations expire in %v, want one with about 5m", exp)
	}

	// An invalid file: refused, named by key and line; nothing changes.
	write("timeout = \"30s\"\n\nmax-expect = 0\n")
	d.hup()
	d.waitLog(regexp.MustCompile(`reload refused.*`+regexp.QuoteMeta(conf)+`:3: max-expect: bad value`), 10*time.Second)

	// A valid one: the timeout changes live, the queues need a restart.
	write("timeout = \"30s\"\nqueue = 99\nmax-per-session = 2\nqueues = 1\n")
	d.hup()
	d.waitLog(regexp.MustCompile(`need a restart.*keys=queue,queues`), 10*time.Second)
	d.waitLog(regexp.MustCompile(`configuration reloaded.*changed=timeout`), 10*time.Second)
	if err := os.WriteFile(filepath.Join(l.dir, "go1"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.output(), "phase2") {
		if time.Now().After(deadline) {
			t.Fatalf("the session did not go on after the reload:\n%s\nftpct:\n%s", p.output(), d.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	exp = d.expiresIn()
	if len(exp) != 2 || exp[0] < 4*time.Minute || exp[1] > 30*time.Second {
		t.Errorf("pending expectations expire in %v, want the first still about 5m and the new one within 30s", exp)
	}
	if err := os.WriteFile(filepath.Join(l.dir, "go2"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("client did not finish")
	}
	sum := l.fileSHA("big.bin")
	if want := fmt.Sprintf(`{"ok": true, "sums": [%q, %q]}`, sum, sum); !strings.Contains(p.output(), want) {
		t.Errorf("client output %q, want %s", p.output(), want)
	}
	st := d.stats()
	if st["rewrites"] < 4 || st["errors"] != 0 || st["dropped"] != 0 {
		t.Errorf("rewrites %d (want at least 4), errors %d, dropped %d", st["rewrites"], st["errors"], st["dropped"])
	}
	// The queue was kept: the daemon still reads queue 21 (and the queues
	// after it, one per CPU by default).
	if out := l.mustExec("g", "nft", "list", "ruleset"); !regexp.MustCompile(`queue (num|to) 21[ -]`).MatchString(out) {
		t.Errorf("the diversion no longer goes to queue 21:\n%s", out)
	}
	if err := d.stop(); err != nil {
		t.Errorf("ftpct exit: %v\n%s", err, d.log)
	}
}

// runFails runs `ftpct run ARGS` on the gateway (through sh -c PREFIX when
// given, e.g. in a private mount namespace) and checks that it exits
// non-zero with one line on stderr matching want, and left the ruleset as
// it was.
func runFails(t *testing.T, l *lab, prefix string, want *regexp.Regexp, args ...string) {
	t.Helper()
	before := l.ruleset()
	argv := append([]string{ftpctBin, "run"}, args...)
	if prefix != "" {
		q := make([]string, len(argv))
		for i, a := range argv {
			q[i] = strconv.Quote(a)
		}
		argv = []string{"sh", "-c", prefix + " " + strings.Join(q, " ")}
	}
	out, err := l.exec("g", 30*time.Second, argv...)
	if err == nil {
		t.Fatalf("ftpct run %v succeeded; want a failure:\n%s", args, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "ftpct: ") || !want.MatchString(lines[0]) {
		t.Errorf("ftpct run %v printed:\n%s\nwant one line matching %s", args, out, want)
	}
	if diff := cmp.Diff(before, l.ruleset()); diff != "" {
		t.Errorf("a failed start changed the rules (-before +after):\n%s", diff)
	}
}

// TestStartErrors: each start-up error is one clear line, a non-zero exit,
// and leaves nothing installed.
func TestStartErrors(t *testing.T) {
	l := newLab(t, "none")
	d := l.startFtpct("--queues", "1") // queue 21 only, whatever the CPUs
	pid := strconv.Itoa(d.cmd.Process.Pid)
	other := filepath.Join(l.dir, "other.sock")
	tests := []struct {
		name   string
		prefix string
		args   []string
		want   string
	}{
		{name: "same socket", args: []string{"--socket", d.socket}, want: "already listening on this control socket"},
		{name: "same table and queue, other socket", args: []string{"--socket", other},
			want: `another ftpct daemon \(pid ` + pid + `\) already uses nftables table "ftpct" in this network namespace`},
		{name: "same table, other queue", args: []string{"--socket", other, "--queue", "22"},
			want: `\(pid ` + pid + `\) already uses nftables table "ftpct"`},
		{name: "same queue, other table", args: []string{"--socket", other, "--table", "ftpct2", "--mark", "0x400000"},
			want: `\(pid ` + pid + `\) already uses NFQUEUE 21`},
		{name: "queue ranges overlap", args: []string{"--socket", other, "--table", "ftpct2", "--mark", "0x400000", "--queue", "19", "--queues", "3"},
			want: `\(pid ` + pid + `\) already uses NFQUEUE 21`},
		{name: "same mark, other table and queue", args: []string{"--socket", other, "--table", "ftpct2", "--queue", "22"},
			want: `\(pid ` + pid + `\) already uses mark 0x00100000`},
		{name: "same hold-mark, other table, queue and mark", args: []string{"--socket", other, "--table", "ftpct2", "--queue", "22", "--mark", "0x400000"},
			want: `\(pid ` + pid + `\) already uses hold-mark 0x00200000`},
		{name: "mark on the hold-mark", args: []string{"--socket", other, "--table", "ftpct2", "--queue", "22", "--mark", "0x200000"},
			want: `hold-mark 0x00200000 overlaps mark 0x00200000`},
		{name: "read-only socket directory", prefix: "unshare -m sh -c 'mount -t tmpfs -o ro tmpfs /mnt && exec \"$0\" \"$@\"'",
			args: []string{"--socket", "/mnt/ftpct/ftpct.sock", "--table", "t2", "--queue", "23", "--mark", "0x400000"},
			want: `control socket directory: mkdir /mnt/ftpct: read-only file system`},
		{name: "full socket directory", prefix: "unshare -m sh -c 'mount -t tmpfs -o size=8k,nr_inodes=2 tmpfs /mnt && head -c 8192 /dev/zero > /mnt/fill; exec \"$0\" \"$@\"'",
			args: []string{"--socket", "/mnt/ftpct/ftpct.sock", "--table", "t2", "--queue", "23", "--mark", "0x400000"},
			want: `control socket directory: mkdir /mnt/ftpct: no space left on device`},
		{name: "full socket directory, directory there", prefix: "unshare -m sh -c 'mount -t tmpfs -o size=8k,nr_inodes=3 tmpfs /mnt && mkdir /mnt/ftpct && head -c 8192 /dev/zero > /mnt/fill; exec \"$0\" \"$@\"'",
			args: []string{"--socket", "/mnt/ftpct/ftpct.sock", "--table", "t2", "--queue", "23", "--mark", "0x400000"},
			want: `control socket /mnt/ftpct/ftpct.sock: listen unix /mnt/ftpct/ftpct.sock: bind: no space left on device`},
		{name: "config file missing", args: []string{"--config", filepath.Join(l.dir, "none.conf"), "--socket", other},
			want: `config: .*none.conf: config file not found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runFails(t, l, tt.prefix, regexp.MustCompile(tt.want), tt.args...)
		})
	}
	if _, err := l.exec("g", 5*time.Second, ftpctBin, "stats", "--socket", d.socket); err != nil {
		t.Errorf("the first daemon stopped answering: %v", err)
	}
	if err := d.stop(); err != nil {
		t.Errorf("ftpct exit: %v", err)
	}
	// Once it is gone, its table and queue are free at once (also after a
	// crash: the claims die with the process).
	d2 := l.startFtpct()
	if err := d2.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-d2.done
	d3 := l.startFtpct()
	if err := d3.stop(); err != nil {
		t.Errorf("ftpct exit: %v", err)
	}
}

// TestNoIptables: on a host without the iptables binary ftpct runs, says in
// one log line which nftables rule the operator adds, and data connections
// flow once it is added to the operator's own filter chain.
func TestNoIptables(t *testing.T) {
	l := newLab(t, "none")
	path := filepath.Join(l.dir, "bin-without-iptables")
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
	d := l.startFtpctEnv([]string{"PATH=" + path}, "g")
	line := d.waitLog(regexp.MustCompile(`no iptables binary.*`), 5*time.Second)
	const accept = "ct mark & 0x00100000 == 0x00100000 accept"
	if !strings.Contains(line, accept) {
		t.Fatalf("log line %q lacks %q", line, accept)
	}
	if strings.Count(d.log.String(), "no iptables binary") != 1 {
		t.Errorf("want one such line:\n%s", d.log.String())
	}
	if out := l.mustExec("g", "iptables-save"); strings.Contains(out, "ftpct") {
		t.Errorf("an iptables rule was inserted:\n%s", out)
	}
	// The operator's own chain (iptables-nft's FORWARD is an nft chain here)
	// gets the printed line, verbatim.
	l.mustExec("g", append([]string{"nft", "insert", "rule", "ip", "filter", "FORWARD"}, strings.Fields(accept)...)...)
	for _, c := range clients {
		if !c.active {
			continue
		}
		if err := transfer(l, c, 20*time.Second); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	if err := d.stop(); err != nil {
		t.Errorf("ftpct exit: %v\n%s", err, d.log)
	}
}
