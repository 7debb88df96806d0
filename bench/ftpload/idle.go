package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// idle opens n control connections spread over the source addresses srcs,
// each logged in with one PORT answered 200, prints "ready", holds them until
// SIGUSR1 (or hold passes), then checks every one still answers NOOP.
func idle(ctx context.Context, addr string, srcs []net.IP, n, par int, hold time.Duration) (*result, error) {
	ks := make([]*ctrl, n)
	var wg sync.WaitGroup
	var c counter
	next := make(chan int)
	go func() {
		defer close(next)
		for i := 0; i < n; i++ {
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	t0 := time.Now()
	for w := 0; w < par; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				k, err := dial(ctx, srcs[i%len(srcs)], addr)
				if err != nil {
					c.fail(err)
					continue
				}
				_ = k.c.SetDeadline(time.Now().Add(10 * time.Second))
				if err := k.login(); err != nil {
					c.fail(err)
					k.close()
					continue
				}
				code, err := k.cmd(portCmd(k.localIP(), 10000+i%50000))
				if err != nil {
					c.fail(err)
					k.close()
					continue
				}
				c.add(code == 200, 0)
				ks[i] = k
			}
		}()
	}
	wg.Wait()
	var r result
	r.set("idle_sessions", float64(n))
	r.set("idle_port_ok", float64(c.ok))
	r.set("idle_open_errors", float64(c.errs))
	r.set("idle_open_s", time.Since(t0).Seconds())
	fmt.Println("ready")
	usr := make(chan os.Signal, 1)
	signal.Notify(usr, syscall.SIGUSR1)
	defer signal.Stop(usr)
	select {
	case <-usr:
	case <-time.After(hold):
	case <-ctx.Done():
	}
	var usable counter
	sem := make(chan struct{}, par)
	for _, k := range ks {
		if k == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			defer k.close()
			_ = k.c.SetDeadline(time.Now().Add(10 * time.Second))
			code, err := k.cmd("NOOP\r\n")
			if err != nil {
				usable.fail(err)
				return
			}
			usable.add(code == 200, 0)
		}()
	}
	wg.Wait()
	r.set("idle_usable", float64(usable.ok))
	if c.ok != n || usable.ok != n {
		return &r, fmt.Errorf("%w: %d of %d sessions got PORT 200, %d still usable (first error: %v, %v)", errWant, c.ok, n, usable.ok, c.first, usable.first)
	}
	return &r, nil
}
