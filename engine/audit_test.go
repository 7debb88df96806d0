package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ftpct/ftpct/conntrack"
	"github.com/ftpct/ftpct/expect"
	"github.com/ftpct/ftpct/ftpparse"
)

// syncBuffer collects log output written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines returns the JSON log lines written so far.
func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, l)
		}
		delete(m, "time")
		out = append(out, m)
	}
	return out
}

func auditEngine(t *testing.T, cfg AuditConfig) (*Engine, *fakeHoles, *syncBuffer) {
	t.Helper()
	e, holes := newTestEngine(masqueradeBinding)
	buf := &syncBuffer{}
	cfg.Logger = slog.New(slog.NewJSONHandler(buf, nil))
	e.SetAudit(cfg)
	return e, holes, buf
}

var (
	ctlLog  = map[string]any{"orig": "10.0.1.2:40000 -> 203.0.113.2:21", "reply": "203.0.113.2:21 -> 203.0.113.1:40000"}
	dataSYN = conntrack.Binding{
		Orig:  conntrack.Tuple{Src: server, Dst: gwPublic, SrcPort: 20, DstPort: 40000},
		Reply: conntrack.Tuple{Src: client, Dst: server, SrcPort: 40000, DstPort: 20},
	}
)

// One audit line per event, with the control connection's tuples, the
// announced and translated endpoints and the expectation's ID.
func TestAuditLines(t *testing.T) {
	e, _, buf := auditEngine(t, AuditConfig{})
	w := e.NewWorker()
	w.Handle(build(t, masqC2S(1, 1, "PORT 10,0,1,2,156,64\r\n")))     // created 1
	e.DataConnection(dataSYN)                                         // used 1
	w.Handle(build(t, masqC2S(23, 1, "PORT 10,0,1,2,0,22\r\n")))      // refused
	w.Handle(build(t, masqC2S(43, 1, "EPRT |1|10.0.1.2|40002|\r\n"))) // created 2
	w.Handle(build(t, masqC2S(68, 1, "PORT 10,0,1,2,156,70\r\n")))    // created 3 (evicts 2)
	if _, err := e.DeleteExpectation(3); err != nil {                 // deleted 3
		t.Fatal(err)
	}
	w.Handle(build(t, masqC2S(90, 1, "PORT 10,0,1,2,156,67\r\n"))) // created 4
	e.now = func() time.Time { return time.Unix(1_700_000_000, 0).Add(10 * time.Minute) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for e.Stats().ExpectExpired == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done

	want := []map[string]any{
		{"level": "INFO", "msg": "audit", "event": "created", "id": 1.0, "session": 1.0, "kind": "PORT", "ctl": ctlLog,
			"peer": "203.0.113.2", "announced": "10.0.1.2:40000", "translated": "203.0.113.1:40000"},
		{"level": "INFO", "msg": "audit", "event": "used", "id": 1.0, "session": 1.0, "kind": "PORT", "ctl": ctlLog,
			"peer": "203.0.113.2", "announced": "10.0.1.2:40000", "translated": "203.0.113.1:40000",
			"data": "203.0.113.2:20 -> 203.0.113.1:40000"},
		{"level": "INFO", "msg": "audit", "event": "refused", "session": 1.0, "kind": "PORT", "ctl": ctlLog,
			"peer": "203.0.113.2", "announced": "10.0.1.2:22", "translated": "203.0.113.1:22", "reason": ReasonLowPort.String()},
		{"level": "INFO", "msg": "audit", "event": "created", "id": 2.0, "session": 1.0, "kind": "EPRT", "ctl": ctlLog,
			"peer": "203.0.113.2", "announced": "10.0.1.2:40002", "translated": "203.0.113.1:40002"},
		{"level": "INFO", "msg": "audit", "event": "created", "id": 3.0, "session": 1.0, "kind": "PORT", "ctl": ctlLog,
			"peer": "203.0.113.2", "announced": "10.0.1.2:40006", "translated": "203.0.113.1:40006"},
		{"level": "INFO", "msg": "audit", "event": "deleted", "id": 3.0, "session": 1.0, "kind": "PORT", "ctl": ctlLog,
			"peer": "203.0.113.2", "announced": "10.0.1.2:40006", "translated": "203.0.113.1:40006"},
		{"level": "INFO", "msg": "audit", "event": "created", "id": 4.0, "session": 1.0, "kind": "PORT", "ctl": ctlLog,
			"peer": "203.0.113.2", "announced": "10.0.1.2:40003", "translated": "203.0.113.1:40003"},
		{"level": "INFO", "msg": "audit", "event": "expired", "id": 4.0, "session": 1.0, "kind": "PORT", "ctl": ctlLog,
			"peer": "203.0.113.2", "announced": "10.0.1.2:40003", "translated": "203.0.113.1:40003"},
	}
	if diff := cmp.Diff(want, buf.lines(t)); diff != "" {
		t.Errorf("audit lines (-want +got):\n%s", diff)
	}
	// Expectation 2 was evicted without an event: its control connection
	// is forgotten all the same.
	e.obs.mu.Lock()
	left := len(e.obs.ctl)
	e.obs.mu.Unlock()
	if left != 0 {
		t.Errorf("%d control connections still remembered for expectations no longer pending", left)
	}
}

// A passive-mode refusal names the server's own address and the endpoint
// the client would have been told.
func TestAuditRefusedServer(t *testing.T) {
	e, _ := newTestEngine(dnatBinding)
	buf := &syncBuffer{}
	e.SetAudit(AuditConfig{Logger: slog.New(slog.NewJSONHandler(buf, nil))})
	w := e.NewWorker()
	w.Handle(build(t, seg{src: privSrv, dst: outsider, sport: 21, dport: 5000, seq: 1, ack: 1, payload: "229 Entering Extended Passive Mode (|||80|)\r\n"}))
	want := []map[string]any{{"level": "INFO", "msg": "audit", "event": "refused", "session": 1.0, "kind": "EPSV",
		"ctl":  map[string]any{"orig": "198.51.100.7:5000 -> 203.0.113.1:21", "reply": "10.0.2.2:21 -> 198.51.100.7:5000"},
		"peer": "198.51.100.7", "announced": "10.0.2.2:80", "translated": "203.0.113.1:80", "reason": ReasonLowPort.String()}}
	if diff := cmp.Diff(want, buf.lines(t)); diff != "" {
		t.Errorf("audit lines (-want +got):\n%s", diff)
	}
}

// Past the rate limit lines are counted, not written, and a summary line
// says how many when the housekeeping runs.
func TestAuditRateLimit(t *testing.T) {
	e, _, buf := auditEngine(t, AuditConfig{Rate: 0.001, Burst: 2, SummaryEvery: time.Second})
	w := e.NewWorker()
	seq := uint32(1)
	for i := range 5 {
		p := "PORT 10,0,1,2,0," + string(rune('1'+i)) + "\r\n" // refused: low port
		w.Handle(build(t, masqC2S(seq, 1, p)))
		seq += uint32(len(p))
	}
	if n := len(buf.lines(t)); n != 2 {
		t.Fatalf("%d audit lines, want 2 (the burst)", n)
	}
	if got := e.Stats().AuditSuppressed; got != 3 {
		t.Errorf("audit_suppressed = %d, want 3", got)
	}
	e.eventsExpired(nil, e.now().Add(2*time.Second))
	lines := buf.lines(t)
	last := lines[len(lines)-1]
	if last["msg"] != "audit lines suppressed by the rate limit" || last["suppressed"] != 3.0 || last["suppressed_total"] != 3.0 {
		t.Errorf("summary line = %v", last)
	}
	// Nothing suppressed since: no further summary.
	e.eventsExpired(nil, e.now().Add(10*time.Second))
	if n := len(buf.lines(t)); n != len(lines) {
		t.Errorf("a summary without suppressed lines was written")
	}
}

// A watcher gets every event; one that does not read loses events (counted)
// and never holds up the packet path.
func TestWatchers(t *testing.T) {
	e, _ := newTestEngine(masqueradeBinding)
	fast, slow := e.Watch(16), e.Watch(1)
	w := e.NewWorker()
	w.Handle(build(t, masqC2S(1, 1, "PORT 10,0,1,2,156,64\r\n")))
	done := make(chan struct{})
	go func() {
		e.DataConnection(dataSYN) // must not block on slow
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("an event waited for a watcher that does not read")
	}
	var kinds []string
	for len(fast.Events()) > 0 {
		ev := <-fast.Events()
		kinds = append(kinds, ev.Kind.String())
		if ev.Ctl != masqueradeBinding || ev.ID != 1 {
			t.Errorf("event %v: ctl %v id %d, want %v and 1", ev.Kind, ev.Ctl, ev.ID, masqueradeBinding)
		}
	}
	if diff := cmp.Diff([]string{"created", "used"}, kinds); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if n := slow.TakeLost(); n != 1 {
		t.Errorf("slow watcher lost %d, want 1", n)
	}
	if n := slow.TakeLost(); n != 0 {
		t.Errorf("TakeLost does not reset: %d", n)
	}
	if st := e.Stats(); st.WatchLost != 1 || st.Watchers != 2 {
		t.Errorf("watch_lost = %d, watchers = %d; want 1 and 2", st.WatchLost, st.Watchers)
	}
	fast.Close()
	slow.Close()
	slow.Close()
	w.Handle(build(t, masqC2S(23, 1, "PORT 10,0,1,2,156,65\r\n")))
	if len(fast.Events()) != 0 || e.Stats().Watchers != 0 {
		t.Errorf("a closed watcher still gets events")
	}
}

// The control connections kept for pending expectations' events give back
// their room after a burst (Go maps keep it when emptied).
func TestAuditCtlShrinks(t *testing.T) {
	e, _ := newTestEngine()
	o := &e.obs
	now := e.now()
	const burst = 4096
	for id := range uint64(burst) {
		o.emit(e, Event{Kind: EventCreated, ID: id + 1, Time: now, Ctl: masqueradeBinding})
	}
	for id := range uint64(burst - 100) {
		o.emit(e, Event{Kind: EventExpired, ID: id + 1, Time: now})
	}
	if len(o.ctl) != 100 || o.ctlPeak > burst/4 {
		t.Errorf("%d control connections kept, peak %d; want 100 and at most %d", len(o.ctl), o.ctlPeak, burst/4)
	}
	for id := uint64(burst - 99); id <= burst; id++ {
		if o.ctl[id] != masqueradeBinding {
			t.Fatalf("expectation %d: control connection %+v lost", id, o.ctl[id])
		}
	}
}

// An evicted expectation's control connection is forgotten when it is
// evicted, not a housekeeping tick later: an announcement storm would keep
// thousands of them between ticks (no housekeeping runs here). So is a
// session's, when the session is forgotten.
func TestAuditCtlForgetsEvicted(t *testing.T) {
	e, _ := newTestEngine(masqueradeBinding)
	w := e.NewWorker()
	const ports = 20
	seq := uint32(1)
	for i := range ports {
		cmd := fmt.Sprintf("PORT 10,0,1,2,156,%d\r\n", 64+i)
		w.Handle(build(t, masqC2S(seq, 1, cmd)))
		seq += uint32(len(cmd))
		e.obs.mu.Lock()
		kept := slices.Collect(maps.Keys(e.obs.ctl))
		e.obs.mu.Unlock()
		if diff := cmp.Diff([]uint64{uint64(i + 1)}, kept); diff != "" {
			t.Fatalf("after PORT %d: control connections kept for (-want +got):\n%s", i+1, diff)
		}
	}
	if got := e.Stats().ExpectEvicted; got != ports-1 {
		t.Fatalf("%d expectations evicted, want %d", got, ports-1)
	}
	e.forget(1, nil)
	e.obs.mu.Lock()
	left := len(e.obs.ctl)
	e.obs.mu.Unlock()
	if left != 0 {
		t.Errorf("%d control connections kept after the session was forgotten, want 0", left)
	}
}

// A guarded announcement's packet leaves before its commit, and the next
// announcement can evict it before the commit reports it created: its
// control connection is not kept either.
func TestAuditCtlEvictedBeforeCreated(t *testing.T) {
	e, _ := newTestEngine()
	now := e.now()
	sess := &conntrack.Session{ID: 1, Binding: masqueradeBinding}
	req := func(port uint16) expect.Request {
		return expect.Request{Session: 1, Kind: ftpparse.KindPORT, Peer: server, Addr: gwPublic, Port: port,
			To: netip.AddrPortFrom(client, port)}
	}
	x1, _, _, err := e.exps.Add(req(40000), now, nil)
	if err != nil {
		t.Fatal(err)
	}
	x2, _, evicted, err := e.exps.Add(req(40001), now, nil)
	if err != nil || len(evicted) != 1 || evicted[0].ID != x1.ID {
		t.Fatalf("second Add: evicted %v, err %v; want expectation %d evicted", evicted, err, x1.ID)
	}
	sess.Lock()
	e.eventCreated(sess, x1, now) // its commit reports it after the eviction
	e.eventCreated(sess, x2, now)
	sess.Unlock()
	e.obs.mu.Lock()
	kept := slices.Collect(maps.Keys(e.obs.ctl))
	e.obs.mu.Unlock()
	if diff := cmp.Diff([]uint64{x2.ID}, kept); diff != "" {
		t.Errorf("control connections kept for (-want +got):\n%s", diff)
	}
}
