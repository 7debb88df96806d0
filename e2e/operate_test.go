//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// What an operator watches, through the masquerading gateway: Prometheus
// metrics, the audit log, `ftpct sessions list`, `ftpct expect list`
// filters, `ftpct expect watch` and `ftpct expect delete`.
//
//	go test -tags e2e -count=1 -v -run TestOperatorTools ./e2e/

// operatorScript is an active-mode client on one control connection to
// vsftpd, advancing step by step when the test creates the file go-STEP in
// the gate directory: a PORT and a download (used), a PORT left to expire,
// a PORT to port 22 (refused), a PORT whose hole the test deletes and a
// RETR that must then find no data connection. It prints one JSON line per
// step reached.
const operatorScript = `
import json, os, socket, sys, time
sys.path.insert(0, sys.argv[1])
import ftppeer as fp
server, file, want, gate = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
dl = fp.Deadline(100)
def say(**kw):
    print(json.dumps(kw), flush=True)
def wait(step):
    while not os.path.exists(os.path.join(gate, "go-" + step)):
        dl.left()
        time.sleep(0.05)
c = fp.Control(server, 21, dl, 20)
fp.login(c)
c.cmd("TYPE I", 200)
local = c.local_addr()

ls = fp.data_listener(local, 0, 10)
c.cmd("PORT " + fp.port_arg(local, ls.getsockname()[1]), 200)
say(step="port1", port=ls.getsockname()[1])
wait("retr1")
c.cmd("RETR " + file, 1)
d = fp.accept_data(ls, dl, 10)
n, digest, _ = fp.recv_all(d, dl, 10)
d.close()
code, text = c.reply()
fp.check("RETR", code, text, 2)
if digest != want:
    raise fp.PeerError("download differs: %d bytes" % n)
say(step="retr1", bytes=n)

ls = fp.data_listener(local, 0, 10)
c.cmd("PORT " + fp.port_arg(local, ls.getsockname()[1]), 200)
say(step="port2", port=ls.getsockname()[1])
wait("refuse")
code, text = c.cmd("PORT " + fp.port_arg(local, 22))
say(step="refused", reply=code)

ls = fp.data_listener(local, 0, 10)
c.cmd("PORT " + fp.port_arg(local, ls.getsockname()[1]), 200)
say(step="port3", port=ls.getsockname()[1])
wait("retr3")
c.send_raw(("RETR " + file + "\r\n").encode())
ls.settimeout(5)
try:
    d, _ = ls.accept()
    connected = True
    d.close()
except socket.timeout:
    connected = False
say(step="retr3", connected=connected)
c.close()
say(ok=True)
`

func TestOperatorTools(t *testing.T) {
	l := newLab(t, "none")
	const metricsAddr = "127.0.0.1:9821" // in the lab's own gateway namespace
	d := l.startFtpct(debugArgs("--metrics", metricsAddr, "--log-format", "json", "--timeout", "2s")...)
	watch := l.startBg("g", "", ftpctBin, "expect", "watch", "--json", "--socket", d.socket)
	waitUntil(t, 10*time.Second, "the watcher is connected", func() bool { return d.stats()["watchers"] == 1 })
	m0 := scrape(t, l, metricsAddr)

	gate := filepath.Join(l.dir, "gate")
	if err := os.MkdirAll(gate, 0o755); err != nil {
		t.Fatal(err)
	}
	next := func(step string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(gate, "go-"+step), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cl := l.startBg("c", `"step": "port1"`, "python3", "-c", operatorScript, peersDir, serverAddr, "big.bin", l.fileSHA("big.bin"), gate)
	step := func(name string) map[string]any {
		t.Helper()
		var res map[string]any
		waitUntil(t, 20*time.Second, "client step "+name, func() bool {
			for _, line := range strings.Split(cl.output(), "\n") {
				var m map[string]any
				if json.Unmarshal([]byte(line), &m) == nil && m["step"] == name {
					res = m
					return true
				}
			}
			return false
		})
		return res
	}
	step("port1")

	// The session: its PORT was rewritten 10,0,1,2 -> 203,0,113,1 (+3 bytes).
	sessions := d.sessionsList()
	if len(sessions) != 1 {
		t.Fatalf("sessions list: %v, want one session", sessions)
	}
	s := sessions[0]
	sid := uint64(s["id"].(float64))
	orig, reply := s["orig"].(string), s["reply"].(string)
	if !strings.HasPrefix(orig, clientAddr+":") || !strings.HasSuffix(orig, " -> "+serverAddr+":21") ||
		!strings.HasPrefix(reply, serverAddr+":21 -> 203.0.113.1:") {
		t.Errorf("session tuples orig %q reply %q, want the client masqueraded to 203.0.113.1", orig, reply)
	}
	if off := s["offset"].(map[string]any); off["client"] != 3.0 || off["server"] != 0.0 {
		t.Errorf("offset = %v, want client +3 (the PORT rewrite), server 0", off)
	}
	if !strings.HasPrefix(s["nat"].(string), "snat "+clientAddr) || s["state"] != "active" || s["tls"] != "none" {
		t.Errorf("session = %v", s)
	}
	if table := l.mustExec("g", ftpctBin, "sessions", "list", "--socket", d.socket); !strings.Contains(table, "+3/+0") {
		t.Errorf("sessions list table lacks the offset +3/+0:\n%s", table)
	}
	ids := s["expectations"].([]any)
	if len(ids) != 1 {
		t.Fatalf("session expectations %v, want one", ids)
	}
	id1 := uint64(ids[0].(float64))
	for _, f := range []struct {
		args []string
		want int
	}{
		{[]string{"--session", fmt.Sprint(sid)}, 1},
		{[]string{"--session", fmt.Sprint(sid + 1)}, 0},
		{[]string{"--peer", serverAddr}, 1},
		{[]string{"--peer", clientAddr}, 1},
		{[]string{"--peer", "192.0.2.1"}, 0},
	} {
		if got := d.expectListArgs(f.args...); len(got) != f.want || (f.want == 1 && uint64(got[0]["id"].(float64)) != id1) {
			t.Errorf("expect list %v: %v, want %d (id %d)", f.args, got, f.want, id1)
		}
	}
	waitEvent(t, watch, "created", id1)

	// Metrics during the transfer: scraped while the download runs.
	m1 := scrape(t, l, metricsAddr)
	for _, name := range []string{"ftpct_packets_total", "ftpct_commands_total", "ftpct_rewrites_total", "ftpct_expect_created_total",
		"ftpct_packet_handling_seconds_count", `ftpct_hole_commit_seconds_count{op="open"}`} {
		if m1[name] <= m0[name] {
			t.Errorf("%s did not move: %v -> %v", name, m0[name], m1[name])
		}
	}
	for name, want := range map[string]float64{`ftpct_sessions_by_state{state="active"}`: 1, `ftpct_expectations_by_state{state="pending"}`: 1,
		"ftpct_sessions_open": 1, "ftpct_expect_pending": 1, "ftpct_watchers": 1} {
		if m1[name] != want {
			t.Errorf("%s = %v, want %v", name, m1[name], want)
		}
	}
	next("retr1")
	for scrapes := 0; !strings.Contains(cl.output(), `"step": "retr1"`); scrapes++ {
		if scrapes > 200 {
			t.Fatalf("download did not finish:\n%s", cl.output())
		}
		scrape(t, l, metricsAddr)
	}
	waitEvent(t, watch, "used", id1)

	// The counters /metrics shows are those of ftpct stats.
	before := d.stats()
	m2 := scrape(t, l, metricsAddr)
	after := d.stats()
	for name, v := range before {
		metric := "ftpct_" + name + "_total"
		if _, ok := m2[metric]; !ok {
			metric = "ftpct_" + name // a gauge
		}
		got, ok := m2[metric]
		if !ok {
			t.Errorf("stats counter %s has no metric", name)
			continue
		}
		lo, hi := math.Min(float64(v), float64(after[name])), math.Max(float64(v), float64(after[name]))
		if got < lo || got > hi {
			t.Errorf("%s = %v, stats says %d then %d", metric, got, v, after[name])
		}
	}

	// A PORT left unused expires; one to port 22 is refused.
	step("port2")
	id2 := d.onlyExpectation(t, sid)
	waitAudit(t, d, "expired", id2)
	waitEvent(t, watch, "expired", id2)
	next("refuse")
	step("refused")
	refused := waitAudit(t, d, "refused", 0)
	if !strings.HasSuffix(refused["announced"].(string), clientAddr+":22") || !strings.Contains(refused["reason"].(string), "privileged") {
		t.Errorf("refused audit line %v", refused)
	}
	waitEvent(t, watch, "refused", 0)

	// A hole deleted by hand lets no data connection in.
	step("port3")
	id3 := d.onlyExpectation(t, sid)
	if out := l.mustExec("g", ftpctBin, "expect", "delete", "--socket", d.socket, fmt.Sprint(id3)); !strings.Contains(out, fmt.Sprintf("deleted expectation %d", id3)) {
		t.Errorf("expect delete: %q", out)
	}
	if got := d.expectListArgs(); len(got) != 0 {
		t.Errorf("expectations after delete: %v", got)
	}
	if set := l.mustExec("g", "nft", "list", "set", "ip", "ftpct", "expect"); strings.Contains(set, "elements") {
		t.Errorf("the hole's nftables element is still there:\n%s", set)
	}
	waitAudit(t, d, "deleted", id3)
	waitEvent(t, watch, "deleted", id3)
	next("retr3")
	if res := step("retr3"); res["connected"] != false {
		t.Errorf("the data connection got through a deleted hole: %v", res)
	}

	// Each audit line carries the control connection's tuples, the
	// announced and translated endpoints and the expectation's ID.
	for _, c := range []struct {
		event string
		id    uint64
	}{{"created", id1}, {"used", id1}, {"created", id2}, {"expired", id2}, {"refused", 0}, {"created", id3}, {"deleted", id3}} {
		a := waitAudit(t, d, c.event, c.id)
		ctl, _ := a["ctl"].(map[string]any)
		if ctl["orig"] != orig || ctl["reply"] != reply || a["session"] != float64(sid) || a["kind"] != "PORT" || a["peer"] != serverAddr {
			t.Errorf("%s audit line %v: want ctl %q / %q, session %d, PORT from %s", c.event, a, orig, reply, sid, serverAddr)
		}
		ann, _ := a["announced"].(string)
		tr, _ := a["translated"].(string)
		if !strings.HasPrefix(ann, clientAddr+":") || !strings.HasPrefix(tr, "203.0.113.1:") {
			t.Errorf("%s audit line: announced %q translated %q, want %s:P and 203.0.113.1:P", c.event, ann, tr, clientAddr)
		}
		if c.event == "used" && !strings.HasPrefix(a["data"].(string), serverAddr+":") {
			t.Errorf("used audit line: data %v", a["data"])
		}
	}
	st := d.stats()
	for k, want := range map[string]uint64{"expect_created": 3, "expect_used": 1, "expect_expired": 1, "expect_refused": 1, "expect_deleted": 1, "audit_suppressed": 0, "watch_lost": 0} {
		if st[k] != want {
			t.Errorf("%s = %d, want %d", k, st[k], want)
		}
	}
}

// waitUntil polls cond until it holds or timeout passes.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scrape returns the gateway's /metrics as series (name with labels) to value.
func scrape(t *testing.T, l *lab, addr string) map[string]float64 {
	t.Helper()
	out := l.mustExec("g", "curl", "-sS", "--fail", "--max-time", "5", "http://"+addr+"/metrics")
	m := map[string]float64{}
	for _, line := range strings.Split(out, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("metrics line %q", line)
		}
		m[line[:i]] = v
	}
	if len(m) == 0 {
		t.Fatalf("empty /metrics:\n%s", out)
	}
	return m
}

// sessionsList is `ftpct sessions list --json`.
func (d *daemon) sessionsList() []map[string]any {
	d.l.t.Helper()
	out := d.l.mustExec(d.host, ftpctBin, "sessions", "list", "--json", "--socket", d.socket)
	var list []map[string]any
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		d.l.t.Fatalf("sessions list --json: %v: %s", err, out)
	}
	return list
}

// expectListArgs is `ftpct expect list --json ARGS`.
func (d *daemon) expectListArgs(args ...string) []map[string]any {
	d.l.t.Helper()
	out := d.l.mustExec(d.host, append([]string{ftpctBin, "expect", "list", "--json", "--socket", d.socket}, args...)...)
	var list []map[string]any
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		d.l.t.Fatalf("expect list --json: %v: %s", err, out)
	}
	return list
}

// onlyExpectation is the ID of session sid's one pending expectation.
func (d *daemon) onlyExpectation(t *testing.T, sid uint64) uint64 {
	t.Helper()
	list := d.expectListArgs("--session", fmt.Sprint(sid))
	if len(list) != 1 {
		t.Fatalf("session %d has expectations %v, want one", sid, list)
	}
	return uint64(list[0]["id"].(float64))
}

// waitAudit waits for the daemon's audit line of event for expectation id
// (0: any) and returns it.
func waitAudit(t *testing.T, d *daemon, event string, id uint64) map[string]any {
	t.Helper()
	var found map[string]any
	waitUntil(t, 10*time.Second, fmt.Sprintf("audit line %s id %d", event, id), func() bool {
		for _, line := range strings.Split(d.log.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) != nil || m["msg"] != "audit" || m["event"] != event {
				continue
			}
			if got, _ := m["id"].(float64); id == 0 || uint64(got) == id {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

// waitEvent waits for `ftpct expect watch --json` to print event for
// expectation id (0: any).
func waitEvent(t *testing.T, watch *bgProc, event string, id uint64) {
	t.Helper()
	waitUntil(t, 10*time.Second, fmt.Sprintf("watched event %s id %d", event, id), func() bool {
		for _, line := range strings.Split(watch.output(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) != nil || m["event"] != event {
				continue
			}
			if got, _ := m["id"].(float64); id == 0 || uint64(got) == id {
				return true
			}
		}
		return false
	})
}

// TestMetricsAddressTaken: a --metrics address another process holds fails
// the start with one line, leaving nothing installed.
func TestMetricsAddressTaken(t *testing.T) {
	l := newLab(t, "none")
	l.startBg("g", "listening", "python3", "-c",
		"import socket, time\ns = socket.socket()\ns.bind(('127.0.0.1', 9822))\ns.listen()\nprint('listening', flush=True)\ntime.sleep(120)")
	runFails(t, l, "", regexp.MustCompile(`^ftpct: metrics: listen tcp 127\.0\.0\.1:9822: bind: address already in use`),
		"--socket", filepath.Join(l.dir, "ftpct.sock"), "--metrics", "127.0.0.1:9822")
}
