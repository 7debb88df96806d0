package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/ftpct/ftpct/control"
	"github.com/ftpct/ftpct/counters"
	"github.com/ftpct/ftpct/engine"
	"github.com/ftpct/ftpct/metrics"
	"github.com/ftpct/ftpct/nfq"
	"github.com/ftpct/ftpct/rules"
)

// The daemon's side of what operators watch: the log format, the audit
// log, the Prometheus metrics and the control socket's commands.

// opsState is what observe.go adds to the daemon.
type opsState struct {
	metrics *metrics.Metrics
	ln      net.Listener // the metrics address, until served
}

// watchBuffer is how many events wait for one `ftpct expect watch` client
// before further ones are lost for it (and counted in watch_lost).
const watchBuffer = 1024

// logHandler returns the daemon's log handler in format ("text" or "json").
func logHandler(w io.Writer, format string, level slog.Leveler) slog.Handler {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// auditHandler writes the audit lines (level Info) whatever --log-level
// says: the built-in handlers check the level only in Enabled.
type auditHandler struct{ slog.Handler }

func (h auditHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h auditHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return auditHandler{h.Handler.WithAttrs(a)}
}

func (h auditHandler) WithGroup(name string) slog.Handler {
	return auditHandler{h.Handler.WithGroup(name)}
}

// sourceCounter is one counter kept outside the engine, by an S (the
// NFQUEUE reader's nfq.Stats, the hole committer), described once.
type sourceCounter[S any] struct {
	counters.Desc
	get func(*S) uint64
}

var queueCounters = []sourceCounter[nfq.Stats]{
	{counters.Desc{Name: "queue_overruns", Kind: counters.Counter,
		Help: "times the queue's socket buffer overflowed (ENOBUFS): the kernel could not hand packets over to ftpct and dropped them; TCP retransmits them"},
		func(s *nfq.Stats) uint64 { return s.Overruns.Load() }},
	{counters.Desc{Name: "queue_verdict_errors", Kind: counters.Counter,
		Help: "verdicts that failed (a netlink send error, or the kernel refused the verdict): the packet is lost and TCP retransmits it; also counted in errors"},
		func(s *nfq.Stats) uint64 { return s.VerdictErrors.Load() }},
	{counters.Desc{Name: "queue_malformed", Kind: counters.Counter,
		Help: "messages from the kernel's queue that ftpct could not read: passed over, their packets get no verdict from ftpct"},
		func(s *nfq.Stats) uint64 { return s.Malformed.Load() }},
}

var commitCounters = []sourceCounter[rules.Committer]{
	{counters.Desc{Name: "commit_rejected", Kind: counters.Counter,
		Help: "passes of hole commits (one nftables transaction each) the kernel rejected whole, e.g. a delete of an element already gone or an add it refused: each is committed again by halves down to the request at fault, which alone fails; logged at warn with the kernel's error, the first at once"},
		func(c *rules.Committer) uint64 { p, _ := c.Rejections(); return p }},
	{counters.Desc{Name: "commit_retries", Kind: counters.Counter,
		Help: "nftables transactions spent committing the passes of commit_rejected again"},
		func(c *rules.Committer) uint64 { _, r := c.Rejections(); return r }},
}

// counterDescs describes every value `ftpct stats` shows, in order.
func counterDescs() []counters.Desc {
	d := engine.Counters()
	for _, q := range queueCounters {
		d = append(d, q.Desc)
	}
	for _, c := range commitCounters {
		d = append(d, c.Desc)
	}
	return d
}

// counters are the values `ftpct stats` and /metrics show.
func (d *daemon) counters() counters.Values {
	vals := engine.Values(d.eng.Stats())
	var verdictErrors uint64
	for _, c := range queueCounters {
		var sum uint64 // over all queues
		for _, q := range d.queues {
			sum += c.get(q.Stats())
		}
		vals = append(vals, counters.Value{Desc: c.Desc, Value: sum})
	}
	for _, c := range commitCounters {
		var v uint64
		if d.commit != nil {
			v = c.get(d.commit)
		}
		vals = append(vals, counters.Value{Desc: c.Desc, Value: v})
	}
	for _, q := range d.queues {
		verdictErrors += q.Stats().VerdictErrors.Load()
	}
	for i := range vals {
		if vals[i].Name == "errors" {
			vals[i].Value += verdictErrors
		}
	}
	return vals
}

// listenMetrics opens the --metrics address, if any, so that a taken one
// fails the start.
func (d *daemon) listenMetrics() error {
	addr := d.cfg.Metrics
	if addr == "" {
		return nil
	}
	m, err := metrics.New(metrics.Source{
		Descs:        counterDescs(),
		Counters:     d.counters,
		Sessions:     func() []engine.StateCount { return d.eng.SessionsByState() },
		Expectations: func() []engine.StateCount { return d.eng.ExpectationsByState() },
	})
	if err != nil {
		return err
	}
	ln, err := metrics.Listen(addr) // "metrics: listen tcp ADDR: ..."
	if err != nil {
		return err
	}
	d.ops.metrics, d.ops.ln = m, ln
	return nil
}

// timed returns h, timed for the hole commit histogram when metrics are on.
func (d *daemon) timed(h engine.Holes) engine.Holes {
	if d.ops.metrics == nil {
		return h
	}
	return d.ops.metrics.Holes(h)
}

// timedCommitter returns c, timed for the hole commit histogram when
// metrics are on.
func (d *daemon) timedCommitter(c engine.Committer) engine.Committer {
	if d.ops.metrics == nil {
		return c
	}
	return d.ops.metrics.Committer(c)
}

// handlePacket is the engine's verdict on the queued packet tag names (see
// verdict), timed when metrics are on (a packet left pending is timed until
// then).
func (d *daemon) handlePacket(w *engine.Worker, tag uint64, pkt []byte, held bool) (engine.Decision, []byte) {
	m := d.ops.metrics
	if m == nil {
		return w.HandleMarked(tag, pkt, held)
	}
	start := time.Now()
	v, out := w.HandleMarked(tag, pkt, held)
	m.ObservePacket(time.Since(start))
	return v, out
}

// startMetrics serves /metrics until ctx is cancelled, when they are on.
func (d *daemon) startMetrics(ctx context.Context) {
	if d.ops.ln == nil {
		return
	}
	ln := d.ops.ln
	d.ops.ln = nil // Serve owns it now
	d.goRun(func() error { return d.ops.metrics.Serve(ctx, ln) })
}

// closeOps closes what startMetrics did not get to own.
func (d *daemon) closeOps() {
	if d.ops.ln != nil {
		d.ops.ln.Close()
		d.ops.ln = nil
	}
}

// observe turns on the audit log and registers the control commands.
func (d *daemon) observe(srv *control.Server, handlers map[string]control.HandlerFunc) {
	d.eng.SetAudit(engine.AuditConfig{Logger: slog.New(auditHandler{d.log.Handler()})})
	handlers["stats"] = func() (any, error) { return d.counters(), nil }
	handlers["sessions"] = func() (any, error) { return sessionViews(d.eng.SessionInfos()), nil }
	srv.HandleArgs("expect", func(args json.RawMessage) (any, error) {
		var a expectArgs
		if err := control.DecodeArgs(args, &a); err != nil {
			return nil, err
		}
		f := engine.ExpectFilter{Session: a.Session}
		if a.Peer != "" {
			p, err := netip.ParseAddr(a.Peer)
			if err != nil {
				return nil, fmt.Errorf("%w: peer: %v", control.ErrArgs, err)
			}
			f.Peer = p
		}
		return expectations(d.eng.ExpectationsOf(f)), nil
	})
	srv.HandleArgs("expect-delete", func(args json.RawMessage) (any, error) {
		var a deleteArgs
		if err := control.DecodeArgs(args, &a); err != nil {
			return nil, err
		}
		x, err := d.eng.DeleteExpectation(a.ID)
		if err != nil {
			return nil, err
		}
		return expectView1(x), nil
	})
	srv.HandleStream("expect-watch", func(ctx context.Context, _ json.RawMessage, send func(any) error) error {
		w := d.eng.Watch(watchBuffer)
		defer w.Close()
		for {
			select {
			case <-ctx.Done():
				return nil
			case ev := <-w.Events():
				if err := send(eventOf(ev)); err != nil {
					return nil
				}
				if n := w.TakeLost(); n > 0 {
					if err := send(eventView{Event: "lost", Time: time.Now(), Lost: n}); err != nil {
						return nil
					}
				}
			}
		}
	})
}
