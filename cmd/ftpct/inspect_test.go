package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/ftpct/ftpct/config"
	"github.com/ftpct/ftpct/conntrack"
	"github.com/ftpct/ftpct/control"
	"github.com/ftpct/ftpct/engine"
	"github.com/ftpct/ftpct/nfq"
	"github.com/ftpct/ftpct/rules"
)

var (
	lanClient = netip.MustParseAddr("10.0.1.2")
	gwAddr    = netip.MustParseAddr("203.0.113.1")
	srvAddr   = netip.MustParseAddr("203.0.113.2")
	masq      = conntrack.Binding{
		Orig:  conntrack.Tuple{Src: lanClient, Dst: srvAddr, SrcPort: 40000, DstPort: 21},
		Reply: conntrack.Tuple{Src: srvAddr, Dst: gwAddr, SrcPort: 21, DstPort: 40000},
	}
)

type oneConn struct{}

func (oneConn) Lookup(t conntrack.Tuple) (conntrack.Binding, error) {
	if t == masq.Orig || t == masq.Reply {
		return masq, nil
	}
	return conntrack.Binding{}, conntrack.ErrNoEntry
}

type noHoles struct{}

func (noHoles) Open(rules.Hole) error  { return nil }
func (noHoles) Close(rules.Hole) error { return nil }

// clientPacket is a segment of masq's client with payload.
func clientPacket(t testing.TB, seq uint32, payload string) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: lanClient.AsSlice(), DstIP: srvAddr.AsSlice()}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 21, Seq: seq, Ack: 1, ACK: true, PSH: true, Window: 502}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, tcp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// testDaemon is the daemon's engine and control socket, without the kernel.
func testDaemon(t *testing.T, metricsAddr string) (*daemon, string, func()) {
	t.Helper()
	c := &config.Config{Settings: config.Defaults()}
	c.Metrics = metricsAddr
	d := &daemon{cfg: c, log: slog.New(slog.DiscardHandler)}
	socket := filepath.Join(t.TempDir(), "ftpct.sock")
	handlers := map[string]control.HandlerFunc{}
	srv, err := control.Listen(socket, handlers)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.listenMetrics(); err != nil {
		t.Fatal(err)
	}
	d.eng = engine.New(engine.Config{}, oneConn{}, d.timed(noHoles{}))
	d.observe(srv, handlers)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
			d.closeOps()
		})
	}
	t.Cleanup(stop)
	return d, socket, stop
}

func ftpct(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return stdout.String(), stderr.String(), code
}

func TestInspectionCommands(t *testing.T) {
	d, socket, stop := testDaemon(t, "")
	w := d.eng.NewWorker()
	if v, _ := w.Handle(clientPacket(t, 1, "PORT 10,0,1,2,156,65\r\n")); v != engine.DecisionModified {
		t.Fatalf("PORT not rewritten: %v", v)
	}

	out, errOut, code := ftpct(t, "sessions", "list", "--json", "--socket", socket)
	if code != 0 {
		t.Fatalf("sessions list: %d %s", code, errOut)
	}
	var sessions []sessionView
	if err := json.Unmarshal([]byte(out), &sessions); err != nil {
		t.Fatal(err)
	}
	if len(sessions) != 1 {
		t.Fatalf("sessions = %v, want one", sessions)
	}
	s := sessions[0]
	wantS := sessionView{ID: 1, State: "active", Client: "10.0.1.2:40000", Server: "203.0.113.2:21",
		Orig: masq.Orig.String(), Reply: masq.Reply.String(), NAT: "snat 10.0.1.2:40000=>203.0.113.1:40000",
		Offset: dirPair{Client: 3}, RewritesKept: dirPair{Client: 1}, Expectations: []uint64{1}, TLS: "none"}
	s.Created, s.LastSeen = time.Time{}, time.Time{}
	if diff := cmp.Diff(wantS, s); diff != "" {
		t.Errorf("session (-want +got):\n%s", diff)
	}
	if out, _, _ := ftpct(t, "sessions", "list", "--socket", socket); !strings.Contains(out, "+3/+0") || !strings.Contains(out, "snat 10.0.1.2:40000=>203.0.113.1:40000") {
		t.Errorf("sessions list table:\n%s", out)
	}

	for _, tt := range []struct {
		name string
		args []string
		want int
	}{
		{name: "all", want: 1},
		{name: "session", args: []string{"--session", "1"}, want: 1},
		{name: "other session", args: []string{"--session", "2"}, want: 0},
		{name: "peer", args: []string{"--peer", "203.0.113.2"}, want: 1},
		{name: "translated to", args: []string{"--peer", "10.0.1.2"}, want: 1},
		{name: "other peer", args: []string{"--peer", "192.0.2.1"}, want: 0},
	} {
		t.Run("expect list "+tt.name, func(t *testing.T) {
			out, errOut, code := ftpct(t, append([]string{"expect", "list", "--json", "--socket", socket}, tt.args...)...)
			var list []expectView
			if code != 0 || json.Unmarshal([]byte(out), &list) != nil {
				t.Fatalf("exit %d: %s %s", code, out, errOut)
			}
			if len(list) != tt.want {
				t.Errorf("%d expectations, want %d: %v", len(list), tt.want, list)
			}
		})
	}

	// A watcher sees the deletion.
	pr, pw := io.Pipe()
	watchDone := make(chan error, 1)
	go func() {
		watchDone <- cmdExpectWatch([]string{"--json", "--socket", socket}, pw, io.Discard)
		pw.Close()
	}()
	deadline := time.Now().Add(5 * time.Second)
	for d.eng.Stats().Watchers == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if _, errOut, code := ftpct(t, "expect", "delete", "9", "--socket", socket); code != 1 || !strings.Contains(errOut, "no such pending expectation") {
		t.Errorf("delete of an unknown id: exit %d, %q", code, errOut)
	}
	if out, errOut, code := ftpct(t, "expect", "delete", "--socket", socket, "1"); code != 0 || !strings.Contains(out, "deleted expectation 1 (session 1, PORT 203.0.113.2 -> 203.0.113.1:40001 => 10.0.1.2:40001)") {
		t.Errorf("delete: exit %d, %q %q", code, out, errOut)
	}
	line, err := readLine(pr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var ev eventView
	if err := json.Unmarshal([]byte(line), &ev); err != nil {
		t.Fatalf("watch line %q: %v", line, err)
	}
	ev.Time = time.Time{}
	wantEv := eventView{Event: "deleted", ID: 1, Session: 1, Kind: "PORT", CtlOrig: masq.Orig.String(), CtlReply: masq.Reply.String(),
		Peer: "203.0.113.2", Announced: "10.0.1.2:40001", Translated: "203.0.113.1:40001"}
	if diff := cmp.Diff(wantEv, ev); diff != "" {
		t.Errorf("watched event (-want +got):\n%s", diff)
	}
	if out, _, _ := ftpct(t, "expect", "list", "--socket", socket); !strings.Contains(out, "(no pending expectations)") {
		t.Errorf("expectation still listed after delete:\n%s", out)
	}

	out, _, code = ftpct(t, "stats", "--json", "--socket", socket)
	var st map[string]uint64
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("stats --json: %d %s", code, out)
	}
	for k, want := range map[string]uint64{"rewrites": 1, "expect_created": 1, "expect_deleted": 1, "expect_pending": 0, "watchers": 1, "queue_overruns": 0} {
		if got, ok := st[k]; !ok || got != want {
			t.Errorf("stats %s = %d (present %v), want %d", k, got, ok, want)
		}
	}
	if len(st) != len(counterDescs()) {
		t.Errorf("stats --json has %d values, the definitions %d", len(st), len(counterDescs()))
	}
	if out, _, _ := ftpct(t, "stats", "--explain", "--socket", socket); !strings.Contains(out, "expectations closed by hand") {
		t.Errorf("stats --explain lacks the meanings:\n%s", out)
	}

	pr.Close()
	stop()
	select {
	case <-watchDone:
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not end when the daemon stopped")
	}
}

func TestWatchEndsWhenDaemonStops(t *testing.T) {
	d, socket, stop := testDaemon(t, "")
	done := make(chan error, 1)
	go func() { done <- cmdExpectWatch([]string{"--socket", socket}, io.Discard, io.Discard) }()
	deadline := time.Now().Add(5 * time.Second)
	for d.eng.Stats().Watchers == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "daemon stopped") {
			t.Errorf("watch: %v, want the daemon stopped", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not end when the daemon stopped")
	}
}

// With --metrics, the per-packet timing adds no allocation.
func TestHandlePacketAllocs(t *testing.T) {
	d, _, _ := testDaemon(t, "127.0.0.1:0")
	w := d.eng.NewWorker()
	d.handlePacket(w, 1, clientPacket(t, 1, "PORT 10,0,1,2,156,65\r\n"), false)
	noop := clientPacket(t, 23, "NOOP\r\n")
	if n := testing.AllocsPerRun(200, func() { d.handlePacket(w, 2, noop, false) }); n != 0 {
		t.Errorf("%v allocs per packet, want 0", n)
	}
}

func TestObserveCommandLine(t *testing.T) {
	noDaemon := filepath.Join(t.TempDir(), "none.sock")
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{name: "expect unknown subcommand", args: []string{"expect", "frob"}, wantCode: 2, wantStderr: `unknown subcommand "frob"`},
		{name: "delete without id", args: []string{"expect", "delete", "--socket", noDaemon}, wantCode: 2, wantStderr: "needs the expectation's ID"},
		{name: "delete bad id", args: []string{"expect", "delete", "x1"}, wantCode: 2, wantStderr: `"x1" is not a positive number`},
		{name: "delete two ids", args: []string{"expect", "delete", "1", "2"}, wantCode: 2, wantStderr: `unexpected argument "2"`},
		{name: "list bad peer", args: []string{"expect", "list", "--peer", "nope"}, wantCode: 2, wantStderr: "--peer"},
		{name: "watch without daemon", args: []string{"expect", "watch", "--socket", noDaemon}, wantCode: 1, wantStderr: "no ftpct daemon answers"},
		{name: "sessions without list", args: []string{"sessions"}, wantCode: 2, wantStderr: "usage: ftpct sessions list"},
		{name: "sessions without daemon", args: []string{"sessions", "list", "--socket", noDaemon}, wantCode: 1, wantStderr: "no ftpct daemon answers"},
		{name: "bad log format", args: []string{"run", "--log-format", "xml"}, wantCode: 2, wantStderr: `"xml": want text or json`},
		{name: "bad metrics address", args: []string{"run", "--metrics", "9821"}, wantCode: 2, wantStderr: `"9821" is not host:port`},
		{name: "check shows the metrics address", args: []string{"check", "--metrics", "127.0.0.1:9821", "--log-format", "json"}, wantCode: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := ftpct(t, tt.args...)
			if code != tt.wantCode || !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tt.wantCode, tt.wantStderr)
			}
		})
	}
}

// readLine reads one line from r within timeout.
func readLine(r io.Reader, timeout time.Duration) (string, error) {
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		var b []byte
		one := make([]byte, 1)
		for {
			if _, err := r.Read(one); err != nil {
				ch <- res{string(b), err}
				return
			}
			if one[0] == '\n' {
				ch <- res{string(b), nil}
				return
			}
			b = append(b, one[0])
		}
	}()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-time.After(timeout):
		return "", context.DeadlineExceeded
	}
}

func TestEventText(t *testing.T) {
	at := time.Date(2026, 11, 29, 12, 0, 1, 500e6, time.UTC)
	tests := []struct {
		name string
		ev   eventView
		want string
	}{
		{name: "created", ev: eventView{Event: "created", Time: at, ID: 4, Session: 2, Kind: "PORT", Peer: "203.0.113.2",
			Announced: "10.0.1.2:40001", Translated: "203.0.113.1:40001", CtlOrig: "10.0.1.2:40000 -> 203.0.113.2:21", CtlReply: "203.0.113.2:21 -> 203.0.113.1:40000"},
			want: `12:00:01.500 [CREATED] id=4 session=2 PORT peer=203.0.113.2 announced=10.0.1.2:40001 translated=203.0.113.1:40001 ctl="10.0.1.2:40000 -> 203.0.113.2:21" reply="203.0.113.2:21 -> 203.0.113.1:40000"`},
		{name: "refused", ev: eventView{Event: "refused", Time: at, Session: 2, Kind: "EPSV", Peer: "198.51.100.7", Announced: "10.0.2.2:80", Reason: "announced port is privileged (< 1024)"},
			want: `12:00:01.500 [REFUSED] session=2 EPSV peer=198.51.100.7 announced=10.0.2.2:80 reason="announced port is privileged (< 1024)"`},
		{name: "lost", ev: eventView{Event: "lost", Time: at, Lost: 12},
			want: `12:00:01.500 [LOST] 12 events not delivered: this watcher read too slowly`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.ev.text()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestMarkedVerdict: an accept leaves with the marks the engine asked for;
// other verdicts are kept.
func TestMarkedVerdict(t *testing.T) {
	tests := []struct {
		name         string
		v            nfq.Verdict
		marked, held bool
		want         nfq.Verdict
	}{
		{name: "plain", v: nfq.Accept, want: nfq.Accept},
		{name: "guard", v: nfq.Accept, marked: true, want: nfq.AcceptMark},
		{name: "hold", v: nfq.Accept, held: true, want: nfq.AcceptHold},
		{name: "both", v: nfq.Accept, marked: true, held: true, want: nfq.AcceptMarkHold},
		{name: "drop keeps", v: nfq.Drop, marked: true, held: true, want: nfq.Drop},
		{name: "repeat keeps", v: nfq.Repeat, want: nfq.Repeat},
		{name: "pending keeps", v: nfq.Pending, held: true, want: nfq.Pending},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := markedVerdict(tc.v, tc.marked, tc.held); got != tc.want {
				t.Errorf("markedVerdict(%v, %v, %v) = %v, want %v", tc.v, tc.marked, tc.held, got, tc.want)
			}
		})
	}
}
