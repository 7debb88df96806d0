package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ftpct/ftpct/counters"
	"github.com/ftpct/ftpct/engine"
	"github.com/ftpct/ftpct/rules"
)

// Doc describes a metric only /metrics has (README.md lists them).
type Doc struct {
	Metric string
	Type   string // "histogram" or "gauge"
	Label  string // its label, if any
	Help   string
}

// The metrics beyond `ftpct stats`, each described once here.
var (
	packetDoc = Doc{Metric: "ftpct_packet_handling_seconds", Type: "histogram",
		Help: "time the engine took to decide one queued packet's verdict (parse, rewrite, and any hole opened inline)"}
	holeDoc = Doc{Metric: "ftpct_hole_commit_seconds", Type: "histogram", Label: "op",
		Help: "time from an announcement's hole being submitted to its nftables transaction committed (op=open): what its peer's guarded SYN, or a session's first resize, may wait; closes alone are op=close"}
	sessionsDoc = Doc{Metric: "ftpct_sessions_by_state", Type: "gauge", Label: "state",
		Help: "control connections tracked now, by state: active (read and rewritten), tls (switched to TLS), closing (FIN or RST seen)"}
	expectDoc = Doc{Metric: "ftpct_expectations_by_state", Type: "gauge", Label: "state",
		Help: "expectations now, by state: pending (waiting for their data connection)"}
)

// Docs lists the metrics beyond `ftpct stats`.
func Docs() []Doc { return []Doc{packetDoc, holeDoc, sessionsDoc, expectDoc} }

// Source is what each scrape reads.
type Source struct {
	// Descs describes the values Counters returns (the same names).
	Descs []counters.Desc
	// Counters returns the values `ftpct stats` shows.
	Counters func() counters.Values
	// Sessions and Expectations count them by state.
	Sessions     func() []engine.StateCount
	Expectations func() []engine.StateCount
}

// Metrics is ftpct's Prometheus registry.
type Metrics struct {
	reg       *prometheus.Registry
	packet    prometheus.Histogram
	holeOpen  prometheus.Observer
	holeClose prometheus.Observer
}

// New registers src's values, the state gauges, the histograms and the Go
// runtime's and process's standard metrics.
func New(src Source) (*Metrics, error) {
	if err := counters.CheckAll(src.Descs); err != nil {
		return nil, err
	}
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.packet = prometheus.NewHistogram(prometheus.HistogramOpts{Name: packetDoc.Metric, Help: packetDoc.Help,
		// 250 ns (a plain packet) to 4 ms (a hole opened inline on a busy host).
		Buckets: prometheus.ExponentialBuckets(250e-9, 2, 15)})
	holes := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: holeDoc.Metric, Help: holeDoc.Help,
		// 5 µs to 80 ms.
		Buckets: prometheus.ExponentialBuckets(5e-6, 2, 15)}, []string{holeDoc.Label})
	m.holeOpen, m.holeClose = holes.WithLabelValues("open"), holes.WithLabelValues("close")
	c := &collector{src: src, descs: make(map[string]*prometheus.Desc, len(src.Descs)),
		sessions: prometheus.NewDesc(sessionsDoc.Metric, sessionsDoc.Help, []string{sessionsDoc.Label}, nil),
		expect:   prometheus.NewDesc(expectDoc.Metric, expectDoc.Help, []string{expectDoc.Label}, nil)}
	for _, d := range src.Descs {
		c.descs[d.Name] = prometheus.NewDesc(d.Metric(), d.Help, nil, nil)
		c.kinds = append(c.kinds, d)
	}
	for _, col := range []prometheus.Collector{c, m.packet, holes,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := m.reg.Register(col); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// ObservePacket records the time one packet took. It does not allocate.
func (m *Metrics) ObservePacket(d time.Duration) { m.packet.Observe(d.Seconds()) }

// Holes returns h timed: each Open and Close is observed in the hole
// commit histogram.
func (m *Metrics) Holes(h engine.Holes) engine.Holes { return &timedHoles{h: h, m: m} }

type timedHoles struct {
	h engine.Holes
	m *Metrics
}

func (t *timedHoles) Open(h rules.Hole) error {
	start := time.Now()
	err := t.h.Open(h)
	t.m.holeOpen.Observe(time.Since(start).Seconds())
	return err
}

func (t *timedHoles) Close(h rules.Hole) error {
	start := time.Now()
	err := t.h.Close(h)
	t.m.holeClose.Observe(time.Since(start).Seconds())
	return err
}

// Committer returns c timed: each Submit is observed in the hole commit
// histogram when its operations are committed, from the time it was
// submitted (the wait an announcement's packet sees, the group commit's
// queueing included). A Submit that opens a hole is op=open.
func (m *Metrics) Committer(c engine.Committer) engine.Committer { return &timedCommitter{c: c, m: m} }

type timedCommitter struct {
	c engine.Committer
	m *Metrics
}

func (t *timedCommitter) Submit(done func(rules.Result), ops ...rules.Op) error {
	obs := t.m.holeClose
	for _, op := range ops {
		if op.Kind == rules.OpOpen {
			obs = t.m.holeOpen
		}
	}
	start := time.Now()
	return t.c.Submit(func(r rules.Result) {
		obs.Observe(time.Since(start).Seconds())
		if done != nil {
			done(r)
		}
	}, ops...)
}

// Hurry makes the committer commit at once (engine.Committer).
func (t *timedCommitter) Hurry() { t.c.Hurry() }

// Handler serves the metrics in Prometheus' exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Listen opens the metrics address (host:port) so that a start fails at
// once when it is taken.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return ln, nil
}

// Serve serves /metrics on ln until ctx is cancelled, then closes ln.
func (m *Metrics) Serve(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	defer stop()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// collector reads the source at each scrape.
type collector struct {
	src      Source
	descs    map[string]*prometheus.Desc
	kinds    []counters.Desc
	sessions *prometheus.Desc
	expect   *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.kinds {
		ch <- c.descs[d.Name]
	}
	ch <- c.sessions
	ch <- c.expect
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, v := range c.src.Counters() {
		d, ok := c.descs[v.Name]
		if !ok {
			ch <- prometheus.NewInvalidMetric(prometheus.NewDesc("ftpct_undescribed", "a value without a description", nil, nil),
				fmt.Errorf("%w: %s", counters.ErrDesc, v.Name))
			continue
		}
		t := prometheus.CounterValue
		if v.Kind == counters.Gauge {
			t = prometheus.GaugeValue
		}
		ch <- prometheus.MustNewConstMetric(d, t, float64(v.Value))
	}
	for _, s := range c.src.Sessions() {
		ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(s.Count), s.State)
	}
	for _, s := range c.src.Expectations() {
		ch <- prometheus.MustNewConstMetric(c.expect, prometheus.GaugeValue, float64(s.Count), s.State)
	}
}
