package engine

import (
	"net/netip"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/ftpct/ftpct/conntrack"
	"github.com/ftpct/ftpct/rules"
)

// mapKernel answers lookups by either tuple from a map: the fake kernel of
// tests with many sessions.
type mapKernel map[conntrack.Tuple]conntrack.Binding

func (k mapKernel) Lookup(t conntrack.Tuple) (conntrack.Binding, error) {
	if b, ok := k[t]; ok {
		return b, nil
	}
	return conntrack.Binding{}, conntrack.ErrNoEntry
}

// nopHoles opens and closes holes without keeping them; as StateStore and
// FlowHolder it stores and holds nothing.
type nopHoles struct{}

func (nopHoles) Open(rules.Hole) error                                        { return nil }
func (nopHoles) Close(rules.Hole) error                                       { return nil }
func (nopHoles) SetResized(conntrack.Tuple, [conntrack.LabelsSize]byte) error { return nil }
func (nopHoles) Hold(...rules.Flow) error                                     { return nil }
func (nopHoles) Release(...rules.Flow) error                                  { return nil }

// idleBinding is the masqueraded control connection number i: clients
// 10.1.x.y, each with its own source port.
func idleBinding(i int) conntrack.Binding {
	cli := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
	port := uint16(20000 + i%40000)
	return conntrack.Binding{
		Orig:  conntrack.Tuple{Src: cli, Dst: server, SrcPort: port, DstPort: 21},
		Reply: conntrack.Tuple{Src: server, Dst: gwPublic, SrcPort: 21, DstPort: port},
	}
}

// heapPerSession opens k masqueraded sessions through a worker, each with
// what open does to it, and returns the heap bytes they hold once idle
// (after a full collection), per session.
//
// With persist, the engine persists state as the daemon does; settle, when
// set, runs after the sessions were opened (to expire expectations, say).
func heapPerSession(t *testing.T, cfg Config, k int, persist bool, open func(t *testing.T, w *Worker, b conntrack.Binding), settle func(e *Engine)) (float64, *Engine) {
	t.Helper()
	kern := make(mapKernel, 2*k)
	for i := range k {
		b := idleBinding(i)
		kern[b.Orig], kern[b.Reply] = b, b
	}
	e := New(cfg, kern, nopHoles{})
	e.now = func() time.Time { return time.Unix(1_700_000_000, 0) }
	if persist {
		e.Persist(nopHoles{}, nopHoles{})
	}
	w := e.NewWorker()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range k {
		open(t, w, idleBinding(i))
	}
	if settle != nil {
		settle(e)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := e.sessions.Len(); n != k {
		t.Fatalf("%d sessions tracked, want %d", n, k)
	}
	runtime.KeepAlive(w)
	runtime.KeepAlive(kern)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(k), e
}

// TestIdleSessionHeap measures what an idle tracked session costs on the
// heap: the session, its table entries, and what its traffic left behind.
// A session must stay within half the 1 KiB of resident memory it may cost
// (issue 10): the collector lets the heap grow past what is live (by half,
// with the daemon's gc-percent 50) before it collects. It was 2927 bytes
// with 64 records in line per direction and a map entry per key with a
// pointer; 389 bytes with a 312-byte Session, 357 with the 280-byte one.
// A pending expectation adds about 540 bytes (package expect and the audit
// log's control connection of it) until it is used or expires.
func TestIdleSessionHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates tens of thousands of sessions")
	}
	const k = 20000
	cfg := Config{MaxSessions: 2 * k, MaxExpect: 2 * k}
	noop := func(t *testing.T, w *Worker, b conntrack.Binding) {
		cport := b.Orig.SrcPort
		w.Handle(build(t, seg{src: b.Orig.Src, dst: server, sport: cport, dport: 21, seq: 1, ack: 1, payload: "NOOP\r\n"}))
		w.Handle(build(t, seg{src: server, dst: gwPublic, sport: 21, dport: cport, seq: 1, ack: 7, payload: "200 ok\r\n"}))
	}
	port := func(t *testing.T, w *Worker, b conntrack.Binding) {
		cport := b.Orig.SrcPort
		data := 10000 + cport - 20000 // a port of its own
		port := portCommand(b.Orig.Src.As4(), data)
		wire := portCommand(gwPublic.As4(), data)
		w.Handle(build(t, seg{src: b.Orig.Src, dst: server, sport: cport, dport: 21, seq: 1, ack: 1, payload: port}))
		w.Handle(build(t, seg{src: server, dst: gwPublic, sport: 21, dport: cport, seq: 1, ack: uint32(1 + len(wire)), payload: "200 ok\r\n"}))
	}
	expired := func(e *Engine) { e.expire(e.now().Add(e.policy().Timeout), nil) }
	tests := []struct {
		name    string
		open    func(t *testing.T, w *Worker, b conntrack.Binding)
		persist bool
		settle  func(e *Engine)
		max     float64 // bytes per session
		// what the sessions' traffic must have done
		rewrites, expects int
	}{
		{name: "a command and its reply", open: noop, max: 448},
		{name: "one PORT rewritten and acknowledged", open: port, max: 1152, rewrites: k, expects: k},
		{name: "one PORT, expectation expired", open: port, settle: expired, max: 512, rewrites: k},
		{name: "one PORT, persisted, expectation expired", open: port, persist: true, settle: expired, max: 512, rewrites: k},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			per, e := heapPerSession(t, cfg, k, tt.persist, tt.open, tt.settle)
			if st := e.Stats(); int(st.Rewrites) != tt.rewrites || e.exps.Len() != tt.expects {
				t.Fatalf("%d rewrites and %d expectations, want %d and %d", st.Rewrites, e.exps.Len(), tt.rewrites, tt.expects)
			}
			t.Logf("%.0f heap bytes per idle session (%d sessions)", per, k)
			if per > tt.max {
				t.Errorf("%.0f heap bytes per idle session, want at most %.0f", per, tt.max)
			}
		})
	}
}

// portCommand is a PORT command announcing a:port.
func portCommand(a [4]byte, port uint16) string {
	return "PORT " + strconv.Itoa(int(a[0])) + "," + strconv.Itoa(int(a[1])) + "," + strconv.Itoa(int(a[2])) + "," + strconv.Itoa(int(a[3])) + "," +
		strconv.Itoa(int(port>>8)) + "," + strconv.Itoa(int(port&0xff)) + "\r\n"
}
