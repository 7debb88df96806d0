//go:build linux

// Command qaccept is the NFQUEUE ceiling of bench/sidebyside.sh: ftpct's
// divert rules (rules.Manager.Install with the daemon's defaults: the same
// chains, ports, bypass flag and --queues) and one nfq reader per queue, as
// `ftpct run` opens them, whose handler accepts every packet unread. Every
// control packet ftpct would see crosses to userspace and back, and nothing
// else happens: no engine, no session, no hole. No NFQUEUE helper can be
// faster than this on the same machine.
//
// With -hold-all it also queues what ftpct queues only for some flows: every
// packet of a control connection, bare acknowledgements included (ftpct: of
// connections in its hold set, those it resized), and every connection's
// first SYN (ftpct: from peers in its guard set, those just sent a guarded
// announcement). Run next to the kernel's FTP helper, which does the FTP
// work, that is the ceiling of an NFQUEUE helper for full sessions
// (holdall.go).
//
//	qaccept [-queues N] [-queue Q] [-table NAME] [-hold-all]
//
// It prints "ready" once the rules are installed, and on SIGINT or SIGTERM
// removes them, closes the queues and prints "packets N" (packets it
// accepted, all queues). Linux only, root, in the network namespace to
// divert (e.g. `ip netns exec GATEWAY qaccept`).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/ftpct/ftpct/nfq"
	"github.com/ftpct/ftpct/rules"
)

func main() {
	def := rules.DefaultConfig()
	queues := flag.Int("queues", runtime.NumCPU(), "number of queues, as ftpct run's --queues (default: one per CPU, as ftpct's)")
	queue := flag.Int("queue", int(def.Queue), "first queue number")
	table := flag.String("table", "ftpctq", "nftables table name (ftpct's rules, under another name)")
	all := flag.Bool("hold-all", false, "also queue every packet of control connections (bare ACKs included) and every first SYN")
	flag.Parse()
	if *queues < 1 || *queues > 256 || *queue < 0 || *queue+*queues > 65536 {
		fmt.Fprintln(os.Stderr, "qaccept: -queues 1 to 256, -queue from 0, the last queue at most 65535")
		os.Exit(2)
	}
	cfg := def
	cfg.Queue, cfg.Queues, cfg.Table = uint16(*queue), uint16(*queues), *table
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, *all); err != nil {
		fmt.Fprintln(os.Stderr, "qaccept:", err)
		os.Exit(1)
	}
}

// run opens the queues, installs the rules, waits for ctx, then removes the
// rules and closes the queues. With all, holdAll's rules are added.
func run(ctx context.Context, cfg rules.Config, all bool) (err error) {
	accept := func(nfq.Packet) (nfq.Verdict, []byte) { return nfq.Accept, nil }
	var qs []*nfq.Queue
	defer func() {
		var n uint64
		for _, q := range qs {
			err = errors.Join(err, q.Close())
			n += q.Stats().Packets.Load()
		}
		fmt.Println("packets", n)
	}()
	for i := range cfg.Queues {
		qcfg := nfq.DefaultConfig()
		qcfg.Num = cfg.Queue + i
		// Open until the rules are gone (closed by the deferred Close).
		q, err := nfq.Open(context.WithoutCancel(ctx), qcfg, accept)
		if err != nil {
			return err
		}
		qs = append(qs, q)
	}
	m, err := rules.New(cfg)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, m.Shutdown()) }()
	// After the queues are bound, as ftpct: nothing is diverted unread.
	if err := m.Install(); err != nil {
		return err
	}
	if all {
		if err := holdAll(cfg); err != nil {
			return errors.Join(err, m.Remove())
		}
	}
	fmt.Println("ready")
	select {
	case <-ctx.Done():
	case q := <-firstDone(qs):
		err = fmt.Errorf("a queue reader stopped: %w", q.Err())
	}
	return errors.Join(err, m.Remove())
}

// firstDone yields the first of qs to stop. Its goroutines end when the
// queues are closed.
func firstDone(qs []*nfq.Queue) <-chan *nfq.Queue {
	c := make(chan *nfq.Queue, len(qs))
	for _, q := range qs {
		go func() {
			<-q.Done()
			c <- q
		}()
	}
	return c
}
