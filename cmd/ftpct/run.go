package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ftpct/ftpct/conntrack"
	"github.com/ftpct/ftpct/control"
	"github.com/ftpct/ftpct/engine"
	"github.com/ftpct/ftpct/nfq"
	"github.com/ftpct/ftpct/rules"
)

// cmdRun runs the daemon until SIGINT or SIGTERM. Everything it installs is
// removed again on the way out, also after a failed start.
func cmdRun(args []string, stderr io.Writer) error {
	fs, o, finish := daemonFlags("run", stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if err := finish(); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("run needs root (CAP_NET_ADMIN) to divert packets and install rules")
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: o.logLevel}))
	o.engine.Logger = log

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	d := &daemon{o: o, log: log}
	defer d.teardown()
	if err := d.start(ctx); err != nil {
		return err
	}
	log.Info("ftpct running", "version", version, "ports", (*portList)(&o.rules.Ports).String(),
		"queue", o.rules.Queue, "socket", o.socket, "rules_installed", o.install)
	return d.wait(ctx)
}

// daemon holds what cmdRun started, so teardown can undo exactly that.
type daemon struct {
	o   *options
	log *slog.Logger

	srv       *control.Server
	kernel    *conntrack.Kernel
	mgr       *rules.Manager
	installed bool
	eng       *engine.Engine
	queue     *nfq.Queue
	cancel    context.CancelFunc
	errc      chan error
	workers   int
}

func (d *daemon) start(parent context.Context) error {
	o := d.o
	ctx, cancel := context.WithCancel(parent)
	d.cancel = cancel
	d.errc = make(chan error, 4)

	var err error
	// The control socket first: it tells whether another daemon runs.
	handlers := map[string]control.HandlerFunc{}
	if d.srv, err = control.Listen(o.socket, handlers); err != nil {
		return err
	}
	if d.kernel, err = conntrack.DialKernel(); err != nil {
		return fmt.Errorf("%w (is the nf_conntrack module available?)", err)
	}
	if d.mgr, err = rules.New(o.rules); err != nil {
		return err
	}
	d.eng = engine.New(o.engine, d.kernel, d.mgr)
	handlers["stats"] = func() (any, error) { return d.stats(), nil }
	handlers["expect"] = func() (any, error) { return expectations(d.eng.Expectations(), time.Now()), nil }

	w := d.eng.NewWorker()
	debug := d.log.Enabled(context.Background(), slog.LevelDebug)
	handle := func(p nfq.Packet) (nfq.Verdict, []byte) {
		v, out := w.Handle(p.Data)
		if debug {
			d.log.Debug("packet", "id", p.ID, "hook", p.Hook, "len", len(p.Data), "verdict", v.String(), "out_len", len(out))
		}
		switch v {
		case engine.VerdictDrop:
			return nfq.Drop, nil
		case engine.VerdictModified:
			return nfq.Accept, out
		default:
			return nfq.Accept, nil
		}
	}
	qcfg := nfq.DefaultConfig()
	qcfg.Num = o.rules.Queue
	qcfg.Logger = d.log
	if d.queue, err = nfq.Open(ctx, qcfg, handle); err != nil {
		return err
	}
	if o.install {
		// Installed last, with the queue already bound: no packet is
		// diverted before someone reads it.
		if err := d.mgr.Install(); err != nil {
			return err
		}
		d.installed = true
	}
	d.goRun(func() error { return d.srv.Serve(ctx) })
	d.goRun(func() error { return d.eng.Run(ctx) })
	d.goRun(func() error {
		// Without events expectations still expire on time; only the
		// "used" bookkeeping is lost. Keep running.
		if err := conntrack.WatchNew(ctx, o.rules.Mark, d.eng.DataConnection); err != nil {
			d.log.Error("conntrack events stopped; used expectations will be counted as expired", "err", err)
		}
		<-ctx.Done()
		return nil
	})
	return nil
}

func (d *daemon) goRun(f func() error) {
	d.workers++
	go func() { d.errc <- f() }()
}

// wait blocks until a signal or the first failure of a part.
func (d *daemon) wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		d.log.Info("stopping", "reason", "signal")
		return nil
	case <-d.queue.Done():
		if err := d.queue.Err(); err != nil {
			return err
		}
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

// teardown undoes start in reverse order; safe after a partial start.
func (d *daemon) teardown() {
	if d.installed {
		if err := d.mgr.Remove(); err != nil {
			d.log.Error("remove rules", "err", err)
		}
	}
	if d.cancel != nil {
		d.cancel()
	}
	if d.queue != nil {
		d.queue.Close()
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
	if d.mgr != nil {
		d.mgr.Shutdown()
	}
	if d.kernel != nil {
		d.kernel.Close()
	}
}

// statsView is what `ftpct stats` shows: the engine's counters plus the queue's.
type statsView struct {
	engine.Snapshot
	QueueOverruns      uint64 `json:"queue_overruns"`
	QueueVerdictErrors uint64 `json:"queue_verdict_errors"`
}

func (d *daemon) stats() statsView {
	v := statsView{Snapshot: d.eng.Stats()}
	if d.queue != nil {
		qs := d.queue.Stats()
		v.QueueOverruns = qs.Overruns.Load()
		v.QueueVerdictErrors = qs.VerdictErrors.Load()
		v.Errors += v.QueueVerdictErrors
	}
	return v
}
