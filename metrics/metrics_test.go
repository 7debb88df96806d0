package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ftpct/ftpct/counters"
	"github.com/ftpct/ftpct/engine"
	"github.com/ftpct/ftpct/rules"
)

var testDescs = []counters.Desc{
	{Name: "packets", Kind: counters.Counter, Help: "packets handled"},
	{Name: "sessions_open", Kind: counters.Gauge, Help: "sessions now"},
}

func testSource(packets uint64) Source {
	return Source{
		Descs: testDescs,
		Counters: func() counters.Values {
			return counters.Values{{Desc: testDescs[0], Value: packets}, {Desc: testDescs[1], Value: 2}}
		},
		Sessions: func() []engine.StateCount {
			return []engine.StateCount{{State: "active", Count: 1}, {State: "tls", Count: 0}, {State: "closing", Count: 1}}
		},
		Expectations: func() []engine.StateCount { return []engine.StateCount{{State: "pending", Count: 3}} },
	}
}

func TestExposition(t *testing.T) {
	m, err := New(testSource(42))
	if err != nil {
		t.Fatal(err)
	}
	want := `# HELP ftpct_expectations_by_state ` + expectDoc.Help + `
# TYPE ftpct_expectations_by_state gauge
ftpct_expectations_by_state{state="pending"} 3
# HELP ftpct_packets_total packets handled
# TYPE ftpct_packets_total counter
ftpct_packets_total 42
# HELP ftpct_sessions_by_state ` + sessionsDoc.Help + `
# TYPE ftpct_sessions_by_state gauge
ftpct_sessions_by_state{state="active"} 1
ftpct_sessions_by_state{state="closing"} 1
ftpct_sessions_by_state{state="tls"} 0
# HELP ftpct_sessions_open sessions now
# TYPE ftpct_sessions_open gauge
ftpct_sessions_open 2
`
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want),
		"ftpct_packets_total", "ftpct_sessions_open", "ftpct_sessions_by_state", "ftpct_expectations_by_state"); err != nil {
		t.Error(err)
	}
	if probs, err := testutil.GatherAndLint(m.reg); err != nil || len(probs) > 0 {
		t.Errorf("lint problems: %v %v", probs, err)
	}
}

func TestBadDescriptions(t *testing.T) {
	src := testSource(1)
	src.Descs = append(src.Descs, counters.Desc{Name: "packets", Help: "again"})
	if _, err := New(src); !errors.Is(err, counters.ErrDesc) {
		t.Errorf("New with a name twice: %v, want ErrDesc", err)
	}
}

type nopHoles struct{ err error }

func (n nopHoles) Open(rules.Hole) error  { time.Sleep(time.Millisecond); return n.err }
func (n nopHoles) Close(rules.Hole) error { return n.err }

func TestHistograms(t *testing.T) {
	m, err := New(testSource(1))
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	h := m.Holes(nopHoles{err: boom})
	if err := h.Open(rules.Hole{}); !errors.Is(err, boom) {
		t.Errorf("Open error not passed on: %v", err)
	}
	_ = h.Close(rules.Hole{})
	_ = h.Close(rules.Hole{})
	m.ObservePacket(3 * time.Microsecond)
	if n := testutil.CollectAndCount(m.reg, "ftpct_hole_commit_seconds", "ftpct_packet_handling_seconds"); n != 3 {
		t.Errorf("%d histogram series, want 3 (open, close, packet)", n)
	}
	body := scrape(t, m)
	for _, want := range []string{
		`ftpct_hole_commit_seconds_count{op="open"} 1`,
		`ftpct_hole_commit_seconds_count{op="close"} 2`,
		`ftpct_packet_handling_seconds_count 1`,
		`ftpct_packet_handling_seconds_bucket{le="4e-06"} 1`,
		`ftpct_packet_handling_seconds_bucket{le="2e-06"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
	// An Open that took 1 ms lands above the 640 µs bucket.
	if strings.Contains(body, `ftpct_hole_commit_seconds_bucket{op="open",le="0.00064"} 1`) {
		t.Errorf("open of 1 ms counted below 640 µs")
	}
}

// The per-packet observation is on the packet path: it must not allocate.
func TestObservePacketAllocs(t *testing.T) {
	m, err := New(testSource(1))
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() {
		start := time.Now()
		m.ObservePacket(time.Since(start))
	}); n != 0 {
		t.Errorf("%v allocs per observation, want 0", n)
	}
}

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %v %s", err, resp.Status)
	}
	return string(b)
}

func TestListenTaken(t *testing.T) {
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := Listen(ln.Addr().String()); err == nil || !strings.Contains(err.Error(), "metrics:") {
		t.Errorf("second Listen on %s: %v, want a metrics: error", ln.Addr(), err)
	}
}

// laterCommitter keeps each Submit; the test commits them.
type laterCommitter struct {
	done    []func(rules.Result)
	hurried int
}

func (c *laterCommitter) Hurry() { c.hurried++ }

func (c *laterCommitter) Submit(done func(rules.Result), ops ...rules.Op) error {
	c.done = append(c.done, done)
	return nil
}

// The committer's histogram measures the wait as the announcement sees it:
// from Submit to its result, not the transaction alone.
func TestCommitterHistogram(t *testing.T) {
	m, err := New(testSource(1))
	if err != nil {
		t.Fatal(err)
	}
	c := &laterCommitter{}
	tc := m.Committer(c)
	var got []rules.Result
	keep := func(r rules.Result) { got = append(got, r) }
	boom := errors.New("boom")
	for _, ops := range [][]rules.Op{
		{{Kind: rules.OpClose}, {Kind: rules.OpOpen}},
		{{Kind: rules.OpClose}},
	} {
		if err := tc.Submit(keep, ops...); err != nil {
			t.Fatal(err)
		}
	}
	tc.Hurry()
	if c.hurried != 1 {
		t.Errorf("Hurry reached the committer %d times, want 1", c.hurried)
	}
	time.Sleep(2 * time.Millisecond) // the wait for the next pass
	c.done[0](rules.Result{Err: boom})
	c.done[1](rules.Result{})
	if len(got) != 2 || !errors.Is(got[0].Err, boom) || got[1].Err != nil {
		t.Errorf("results not passed on: %v", got)
	}
	body := scrape(t, m)
	for _, want := range []string{
		`ftpct_hole_commit_seconds_count{op="open"} 1`,
		`ftpct_hole_commit_seconds_count{op="close"} 1`,
		`ftpct_hole_commit_seconds_bucket{op="open",le="0.00128"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
}
