package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ftpct/ftpct/config"
	"github.com/ftpct/ftpct/conntrack"
	"github.com/ftpct/ftpct/control"
	"github.com/ftpct/ftpct/engine"
	"github.com/ftpct/ftpct/nfq"
	"github.com/ftpct/ftpct/rules"
)

// cmdRun runs the daemon until SIGINT or SIGTERM; SIGHUP reloads the
// config file's live settings. What it installs stays on the way out
// (sessions and holes outlive a restart; `ftpct uninstall` removes it)
// unless remove-on-exit is set; a failed start removes what it added.
func cmdRun(args []string, stderr io.Writer) error {
	fs, l := settingsFlags("run", nil)
	c, err := loadSettings(fs, l, args, stderr)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("run needs root (CAP_NET_ADMIN) to divert packets and install rules")
	}
	level := new(slog.LevelVar)
	level.Set(c.LogLevel)
	log := slog.New(logHandler(stderr, c.LogFormat, level))
	c.Engine.Logger = log
	gcPercent, memLimit := applyGC(&c.Settings, log)

	// Before anything starts: SIGHUP's default action would end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	d := &daemon{cfg: c, loader: l, level: level, log: log}
	defer d.teardown()
	if err := d.start(ctx); err != nil {
		return err
	}
	log.Info("ftpct running", "version", versionString(), "config", orNone(c.File), "ports", config.Lookup("ports").Text(&c.Settings),
		"queue", c.Rules.Queue, "queues", c.Rules.Queues, "socket", c.Socket, "rules_installed", c.Install,
		"gc_percent", gcPercent, "memory_limit", memLimit)
	return d.wait(ctx, hup)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// daemon holds what cmdRun started, so teardown can undo exactly that.
type daemon struct {
	cfg    *config.Config // in force; replaced by reload
	loader *config.Loader
	level  *slog.LevelVar
	log    *slog.Logger

	claims    []interface{ Close() error }
	srv       *control.Server
	kernel    *conntrack.Kernel
	destroy   *conntrack.DestroyWatcher // nil: no DESTROY events
	used      *conntrack.NewWatcher     // nil: no NEW events
	mgr       *rules.Manager
	installed bool
	eng       *engine.Engine
	queues    []*nfq.Queue // one per number, each with its own worker
	cancel    context.CancelFunc
	errc      chan error
	workers   int
	ops       opsState // metrics, audit, inspection (observe.go)

	// commit commits holes off the packet path; commitDone is closed when
	// its Run returned.
	commit     *rules.Committer
	commitDone chan struct{}

	// The queue readers handle no packet before the rules are installed
	// and what an earlier run left is taken over (ready closed by
	// markReady): a packet handled before that, such as a retransmitted
	// 227 whose hole the earlier run left, would make an expectation that
	// the take-over then finds in conflict and closes.
	ready     chan struct{}
	readyOnce sync.Once
	isReady   atomic.Bool
}

// markReady lets the queue readers handle packets; safe to call twice.
func (d *daemon) markReady() {
	d.readyOnce.Do(func() {
		d.isReady.Store(true)
		close(d.ready)
	})
}

func (d *daemon) start(parent context.Context) error {
	o := &d.cfg.Settings
	ctx, cancel := context.WithCancel(parent)
	d.cancel = cancel
	d.errc = make(chan error, 4+int(o.Rules.Queues))
	d.ready = make(chan struct{})

	var err error
	// The control socket first: it tells whether another daemon runs.
	handlers := map[string]control.HandlerFunc{}
	if d.srv, err = control.Listen(o.Socket, handlers); err != nil {
		return err
	}
	// Then what another daemon with another socket would share.
	type resource struct{ name, what string }
	claims := []resource{
		{"table/" + o.Rules.Table, fmt.Sprintf("nftables table %q", o.Rules.Table)},
	}
	for n := range queueNums(o.Rules) {
		claims = append(claims, resource{fmt.Sprintf("queue/%d", n), fmt.Sprintf("NFQUEUE %d", n)})
	}
	// Two daemons with one mark would share one accept rule, and the
	// first to stop would remove it from under the other.
	claims = append(claims, resource{fmt.Sprintf("mark/%#x", o.Rules.Mark), fmt.Sprintf("mark %#08x", o.Rules.Mark)})
	// Two daemons with one hold mark would each hold the other's
	// resized flows (both tables' hold-mark rules see the bit).
	claims = append(claims, resource{fmt.Sprintf("mark/%#x", o.Rules.HoldMark), fmt.Sprintf("hold-mark %#08x", o.Rules.HoldMark)})
	for _, c := range claims {
		cl, err := claim(c.name, c.what)
		if err != nil {
			return err
		}
		d.claims = append(d.claims, cl)
	}
	if err := d.listenMetrics(); err != nil {
		return err
	}
	if d.kernel, err = conntrack.DialKernel(); err != nil {
		return fmt.Errorf("%w (is the nf_conntrack module available?)", err)
	}
	// Subscribed early: with net.netfilter.nf_conntrack_events = 2 (the
	// default) only connections made while a listener exists send DESTROY
	// events.
	if d.destroy, err = conntrack.ListenDestroy(); err != nil {
		d.log.Warn("no conntrack DESTROY events; "+destroyFallback, "err", err)
		d.destroy = nil
	}
	if o.Install && o.Rules.Accept {
		if missing := missingIptables(o.Rules.IPv6); missing != "" {
			// An nftables-only host: the rest works without the binary.
			d.log.Warn(fmt.Sprintf("no %s binary: ftpct inserts no iptables accept rule; add this line to your own nftables filter chains (forward, input) before any drop: %s", missing, markAcceptLine(o.Rules.Mark)))
			o.Rules.Accept = false
		}
	}
	if d.mgr, err = rules.New(o.Rules); err != nil {
		return err
	}
	d.eng = engine.New(o.Engine, d.kernel, d.timed(d.mgr))
	// Subscribed before any hole exists (reconcile restores them) and
	// before ready: a data connection's NEW event is how its expectation
	// is known used.
	if d.used, err = conntrack.ListenNew(o.Rules.Mark, d.eng.DataConnection, d.eng.DataEventsLost); err != nil {
		d.log.Warn("no conntrack NEW events; used expectations will be counted as expired", "err", err)
		d.used = nil
	} else {
		d.eng.UsedEvents(d.used.Sync)
	}
	d.eng.Persist(d.kernel, d.mgr) // sessions survive a restart (README "Restarts")
	// Holes are committed off the packet path, many in one transaction;
	// an announcement's packet leaves at once, marked, and its peer's
	// first SYNs wait for the hole instead (engine/guard.go, the rules'
	// guard set and chains).
	d.commit = d.mgr.Committer()
	d.commit.SetLogger(d.log)
	d.eng.Defer(d.timedCommitter(d.commit), d.verdict)
	d.eng.Guard(o.Rules.Ports)
	// A session's first resize holds its flows in the packet path: given
	// back to the kernel once with the hold mark (engine/holdpath.go, the
	// rules' hold-mark rules), it waits for no commit either.
	d.eng.HoldInPath()
	d.observe(d.srv, handlers)

	// One worker per queue: the kernel hashes each flow to one queue, the
	// engine locks per session (the two directions of a NATed connection
	// hash apart).
	for n := range queueNums(o.Rules) {
		qcfg := nfq.DefaultConfig()
		qcfg.Num = n
		qcfg.Mark = o.Rules.Mark         // the guard's mark (AcceptMark)
		qcfg.HoldMark = o.Rules.HoldMark // the hold mark (Repeat, AcceptHold)
		qcfg.Logger = d.log.With("queue", n)
		w := d.eng.NewWorker()
		// Packets that waited behind a first resize leave after it.
		qcfg.Decided = w.Decided
		// The queues outlive ctx: teardown closes them once the
		// committer's last pass gave the waiting packets their verdicts.
		q, err := nfq.Open(context.WithoutCancel(ctx), qcfg, d.handler(w, len(d.queues)))
		if err != nil {
			return err
		}
		d.queues = append(d.queues, q)
	}
	d.commitDone = make(chan struct{})
	d.goRun(func() error {
		defer close(d.commitDone)
		return d.commit.Run(ctx)
	})
	if o.Install {
		// Installed last, with the queue already bound: no packet is
		// diverted before someone reads it.
		if err := d.mgr.Install(); err != nil {
			return err
		}
		d.installed = true
		d.reconcile()
	}
	d.markReady()
	d.watchQueues(ctx)
	d.goRun(func() error { return d.srv.Serve(ctx) })
	d.startMetrics(ctx)
	d.watchDestroy(ctx)
	d.goRun(func() error { return d.eng.Run(ctx) })
	if w := d.used; w != nil {
		d.goRun(func() error {
			// Without events expectations still expire on time; only
			// the "used" bookkeeping is lost. Keep running.
			if err := w.Run(ctx); err != nil {
				d.log.Error("conntrack NEW events stopped; used expectations will be counted as expired", "err", err)
			}
			<-ctx.Done()
			return nil
		})
	}
	return nil
}

// destroyFallback is how ended sessions are found without DESTROY events.
const destroyFallback = "ended sessions are found by checking idle ones against the kernel"

// watchDestroy has the engine told of the control connections the kernel
// forgets (conntrack DESTROY events) instead of asking the kernel about
// every idle one. Without events (net.netfilter.nf_conntrack_events = 0,
// or the socket failed) the engine checks idle sessions as before.
func (d *daemon) watchDestroy(ctx context.Context) {
	w := d.destroy
	if w == nil {
		return
	}
	d.eng.KernelEvents(true)
	d.goRun(func() error {
		err := w.Run(ctx, d.eng.SessionGone, d.eng.EventsLost)
		d.eng.KernelEvents(false)
		if err != nil {
			d.log.Error("conntrack DESTROY events stopped; "+destroyFallback, "err", err)
		}
		<-ctx.Done()
		return nil
	})
}

// queueNums yields the queue numbers of r: Queue .. Queue+Queues-1.
func queueNums(r rules.Config) func(yield func(uint16) bool) {
	return func(yield func(uint16) bool) {
		for i := range int(r.Queues) {
			if !yield(r.Queue + uint16(i)) {
				return
			}
		}
	}
}

// handler returns the handler of the queue at index qi of d.queues: it
// decides packets with worker w. A packet's tag is its id, with qi in the
// upper 32 bits (see verdict).
func (d *daemon) handler(w *engine.Worker, qi int) nfq.Handler {
	return func(p nfq.Packet) (nfq.Verdict, []byte) {
		if !d.isReady.Load() {
			<-d.ready // the kernel keeps queueing meanwhile
		}
		held := p.Mark&d.cfg.Rules.HoldMark != 0
		v, out := d.handlePacket(w, uint64(qi)<<32|uint64(p.ID), p.Data, held)
		if d.level.Level() <= slog.LevelDebug {
			d.log.Debug("packet", "queue", d.cfg.Rules.Queue+uint16(qi), "id", p.ID, "hook", p.Hook, "len", len(p.Data), "verdict", v.String(), "out_len", len(out), "marked", w.Marked(), "held", held)
		}
		nv, payload := queueVerdict(v, out)
		return markedVerdict(nv, w.Marked(), w.Held()), payload
	}
}

// markedVerdict is the accept verdict nv with the marks the packet must
// leave with: the guard's (its hole may not be committed yet: the guard
// chains put its destination in @guard on its way out) and the hold mark
// (its reverse flow is held on its way out). Other verdicts are kept.
func markedVerdict(nv nfq.Verdict, marked, held bool) nfq.Verdict {
	if nv != nfq.Accept {
		return nv
	}
	switch {
	case marked && held:
		return nfq.AcceptMarkHold
	case marked:
		return nfq.AcceptMark
	case held:
		return nfq.AcceptHold
	}
	return nv
}

// queueVerdict is the queue's verdict for the engine's decision.
func queueVerdict(v engine.Decision, out []byte) (nfq.Verdict, []byte) {
	switch v {
	case engine.DecisionDrop:
		return nfq.Drop, nil
	case engine.DecisionModified:
		return nfq.Accept, out
	case engine.DecisionPending:
		return nfq.Pending, nil
	case engine.DecisionRepeat:
		return nfq.Repeat, nil
	default:
		return nfq.Accept, nil
	}
}

// verdict gives a packet the engine left pending its decision. The tag is
// the packet's id, with the index of its queue in d.queues in the upper 32
// bits (handler). Called by the committer, which starts after every queue
// is open.
func (d *daemon) verdict(tag uint64, v engine.Decision, out []byte) {
	q, id := d.queues[tag>>32], uint32(tag)
	nv, payload := queueVerdict(v, out)
	if err := q.Verdict(id, nv, payload); err != nil && d.level.Level() <= slog.LevelDebug {
		// Counted by the queue (queue_verdict_errors) unless it is
		// closed; then the kernel dropped the packet and TCP resends it.
		d.log.Debug("deferred verdict not given", "queue", d.cfg.Rules.Queue+uint16(tag>>32), "id", id, "err", err)
	}
	if d.level.Level() <= slog.LevelDebug {
		d.log.Debug("packet", "queue", d.cfg.Rules.Queue+uint16(tag>>32), "id", id, "verdict", v.String(), "out_len", len(out), "deferred", true)
	}
}

// watchQueues makes every queue reader a daemon part: the first one to
// stop while the daemon runs (a read error) stops the daemon (wait).
func (d *daemon) watchQueues(ctx context.Context) {
	n := d.cfg.Rules.Queue
	for _, q := range d.queues {
		d.goRun(func() error {
			select {
			case <-q.Done():
			case <-ctx.Done():
				return nil
			}
			if err := q.Err(); err != nil {
				return fmt.Errorf("NFQUEUE %d: %w", n, err)
			}
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("NFQUEUE %d: %w", n, errQueueStopped)
		})
		n++
	}
}

func (d *daemon) goRun(f func() error) {
	d.workers++
	go func() { d.errc <- f() }()
}

// wait blocks until a signal or the first failure of a part, reloading
// the configuration on each SIGHUP.
func (d *daemon) wait(ctx context.Context, hup <-chan os.Signal) error {
	for {
		select {
		case <-hup:
			d.reload()
			continue
		case <-ctx.Done():
			d.log.Info("stopping", "reason", "signal")
			return nil
		case err := <-d.errc:
			d.workers--
			if ctx.Err() != nil {
				return nil
			}
			if err == nil {
				err = errors.New("a daemon part stopped unexpectedly")
			}
			return err
		}
	}
}

// reload reads the config file again (with the same command-line flags on
// top) and applies what can change while running: the engine's policy and
// the log level. Sessions, offsets, expectations and holes stay. Settings
// that need a restart keep their running value and are named in one log
// line; an invalid file changes nothing.
func (d *daemon) reload() {
	next, err := d.loader.Load()
	if err != nil {
		d.log.Error("reload refused, configuration unchanged", "err", err)
		return
	}
	merged, kept, changed := d.cfg.Live(next)
	if len(kept) > 0 {
		d.log.Warn("reload: these settings need a restart and keep their running values", "keys", strings.Join(kept, ","))
	}
	merged.Engine.Logger = d.log
	if notLive := d.eng.Reload(merged.Engine); len(notLive) > 0 {
		d.log.Warn("reload: the engine kept these values", "fields", strings.Join(notLive, ","))
	}
	d.level.Set(merged.LogLevel)
	applyGC(&merged.Settings, d.log)
	d.cfg = merged
	d.log.Info("configuration reloaded", "config", orNone(merged.File), "changed", strings.Join(changed, ","))
}

// teardown undoes start in reverse order; safe after a partial start.
func (d *daemon) teardown() {
	if d.ready != nil {
		d.markReady() // a start that failed leaves no reader blocked
	}
	if d.installed && d.cfg.RemoveOnExit {
		if err := d.mgr.Remove(); err != nil {
			d.log.Error("remove rules", "err", err)
		}
	}
	if d.cancel != nil {
		d.cancel()
	}
	if d.commitDone != nil {
		// Its last pass commits what is pending and gives the waiting
		// packets their verdicts, before the queues close.
		select {
		case <-d.commitDone:
		case <-time.After(5 * time.Second):
			d.log.Warn("hole committer did not stop in time; packets still waiting are dropped and retransmitted")
		}
	}
	for _, q := range d.queues {
		q.Close()
	}
	for ; d.workers > 0; d.workers-- {
		select {
		case <-d.errc:
		case <-time.After(5 * time.Second):
			d.log.Warn("a daemon part did not stop in time")
			d.workers = 0
		}
	}
	if d.srv != nil {
		d.srv.Close()
	}
	d.closeOps()
	if d.mgr != nil {
		d.mgr.Shutdown()
	}
	if d.kernel != nil {
		d.kernel.Close()
	}
	if d.destroy != nil {
		d.destroy.Close() // a start that failed before its Run
	}
	if d.used != nil {
		d.used.Close()
	}
	for _, c := range d.claims {
		c.Close()
	}
}

// missingIptables names the iptables binary (or ip6tables, with IPv6)
// that is not on the PATH, or returns "" when all are there.
func missingIptables(ipv6 bool) string {
	bins := []string{"iptables"}
	if ipv6 {
		bins = append(bins, "ip6tables")
	}
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			return b
		}
	}
	return ""
}

// markAcceptLine is the nftables rule that accepts the data connections
// ftpct let in (rules/script.go prints the same in the operator's rules).
func markAcceptLine(mark uint32) string {
	return fmt.Sprintf("ct mark & 0x%08x == 0x%08x accept", mark, mark)
}
