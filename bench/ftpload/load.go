package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

var errWant = errors.New("outcome not as wanted")

// loadConfig is what the timed loads share.
type loadConfig struct {
	addr  string        // server's control address
	conns int           // concurrent control connections (sessions)
	dur   time.Duration // how long to run
	file  string        // file to RETR in a session
	ports *portRange    // client ports for data connections (sessions)
	src   int           // client port of every control connection (sessions; 0: any)
	ctrl  *portRange    // client ports for control connections (sessions; nil: the kernel picks)
}

// portRange hands out the client's data connection ports one after the other.
// The server (vsftpd connects from port 20) closes each data connection first
// and keeps its 4-tuple in TIME_WAIT for a minute: a random port that repeats
// within that minute makes its connect fail (425). So sessions take ports in
// sequence from a range the caller does not reuse for a while.
type portRange struct {
	mu       sync.Mutex
	from, to int // inclusive
	next     int
}

// take returns the next port, and false when the range is used up.
func (p *portRange) take() (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next == 0 {
		p.next = p.from
	}
	if p.next > p.to {
		return 0, false
	}
	p.next++
	return p.next - 1, true
}

// result is the outcome of one load: named values in print order.
type result struct {
	names  []string
	values map[string]float64
}

func (r *result) set(name string, v float64) {
	if r.values == nil {
		r.values = map[string]float64{}
	}
	if _, ok := r.values[name]; !ok {
		r.names = append(r.names, name)
	}
	r.values[name] = v
}

// counter collects per-worker outcomes.
type counter struct {
	mu    sync.Mutex
	ok    int
	bad   int
	errs  int
	lat   []time.Duration
	first error
}

func (c *counter) add(ok bool, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ok {
		c.ok++
		c.lat = append(c.lat, d)
	} else {
		c.bad++
	}
}

func (c *counter) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs++
	if c.first == nil {
		c.first = err
	}
}

// pingPong runs conns control connections that each send line and wait for
// the reply until the deadline; replies with code okCode count as ok.
func pingPong(ctx context.Context, cfg loadConfig, okCode int, line func(k *ctrl, worker, n int) string) (*counter, time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, cfg.dur+10*time.Second)
	defer cancel()
	var c counter
	var wg sync.WaitGroup
	ready := make(chan *ctrl, cfg.conns)
	for w := 0; w < cfg.conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := dial(ctx, nil, cfg.addr)
			if err != nil {
				c.fail(err)
				ready <- nil
				return
			}
			if err := k.login(); err != nil {
				c.fail(err)
				k.close()
				ready <- nil
				return
			}
			ready <- k
		}()
	}
	var ks []*ctrl
	for w := 0; w < cfg.conns; w++ {
		if k := <-ready; k != nil {
			ks = append(ks, k)
		}
	}
	wg.Wait()
	start := time.Now()
	end := start.Add(cfg.dur)
	for w, k := range ks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer k.close()
			_ = k.c.SetDeadline(end.Add(5 * time.Second))
			stop := context.AfterFunc(ctx, func() { k.close() })
			defer stop()
			for n := 0; time.Now().Before(end); n++ {
				t0 := time.Now()
				code, err := k.cmd(line(k, w, n))
				if err != nil {
					c.fail(err)
					return
				}
				c.add(code == okCode, time.Since(t0))
			}
			_, _ = k.cmd("QUIT\r\n")
		}()
	}
	wg.Wait()
	return &c, time.Since(start)
}

// storm: every connection sends PORT one at a time and waits for the reply.
// want "ok": every PORT must be answered 200 (rewritten where NAT needs it);
// want "refused": every one must be refused (no helper: vsftpd sees the
// client's private address and answers 500).
func storm(ctx context.Context, cfg loadConfig, want string) (*result, error) {
	c, el := pingPong(ctx, cfg, 200, func(k *ctrl, w, n int) string {
		return portCmd(k.localIP(), 10000+w*5000+n%5000)
	})
	var r result
	total := c.ok + c.bad
	r.set("storm_port_per_s", float64(total)/el.Seconds())
	r.set("storm_ok", float64(c.ok))
	r.set("storm_refused", float64(c.bad))
	r.set("storm_errors", float64(c.errs))
	return &r, check(want, c, total)
}

// noop: every connection sends NOOP one at a time; the round-trip times.
func noop(ctx context.Context, cfg loadConfig) (*result, error) {
	c, el := pingPong(ctx, cfg, 200, func(*ctrl, int, int) string { return "NOOP\r\n" })
	var r result
	r.set("noop_per_s", float64(c.ok)/el.Seconds())
	r.set("noop_p50_us", micros(percentile(c.lat, 50)))
	r.set("noop_p99_us", micros(percentile(c.lat, 99)))
	r.set("noop_errors", float64(c.errs+c.bad))
	return &r, check("ok", c, c.ok+c.bad)
}

// check compares a counter's outcome with what the caller wants.
func check(want string, c *counter, total int) error {
	switch {
	case total == 0:
		return fmt.Errorf("%w: nothing completed (first error: %v)", errWant, c.first)
	case want == "ok" && (c.bad > 0 || c.errs > 0):
		return fmt.Errorf("%w: %d of %d not ok, %d errors (first: %v)", errWant, c.bad, total, c.errs, c.first)
	case want == "refused" && c.ok > 0:
		return fmt.Errorf("%w: %d of %d accepted, want all refused", errWant, c.ok, total)
	case want == "fail" && c.ok > 0:
		return fmt.Errorf("%w: %d of %d succeeded, want all failed", errWant, c.ok, total)
	}
	return nil
}

// sessions runs conns workers, each running full active-mode sessions one
// after the other until the deadline (or until max sessions in all, if > 0).
func sessions(ctx context.Context, cfg loadConfig, max int, want string) (*result, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.dur+20*time.Second)
	defer cancel()
	var c counter
	var wg sync.WaitGroup
	var mu sync.Mutex
	started := 0
	take := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if max > 0 && started >= max {
			return false
		}
		started++
		return true
	}
	start := time.Now()
	end := start.Add(cfg.dur)
	for w := 0; w < cfg.conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) && ctx.Err() == nil && take() {
				port, ok := cfg.ports.take()
				if !ok {
					return
				}
				src := cfg.src
				if cfg.ctrl != nil {
					if src, ok = cfg.ctrl.take(); !ok {
						return
					}
				}
				t0 := time.Now()
				err := session(ctx, cfg.addr, cfg.file, port, src)
				if err != nil {
					c.fail(err)
					if want == "fail" {
						continue
					}
				}
				c.add(err == nil, time.Since(t0))
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	var r result
	r.set("sessions_per_s", float64(c.ok)/el.Seconds())
	r.set("session_p50_ms", millis(percentile(c.lat, 50)))
	r.set("session_p99_ms", millis(percentile(c.lat, 99)))
	r.set("sessions_ok", float64(c.ok))
	r.set("sessions_failed", float64(c.errs))
	return &r, check(want, &c, c.ok+c.errs)
}

// session is one active-mode session: login, PORT, RETR file, QUIT.
func session(ctx context.Context, addr, file string, port, srcPort int) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	k, err := dialFrom(ctx, nil, srcPort, addr)
	if err != nil {
		return err
	}
	defer k.close()
	stop := context.AfterFunc(ctx, func() { k.close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = k.c.SetDeadline(dl)
	}
	if err := k.login(); err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp4", net.JoinHostPort(k.localIP().String(), strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	stopLn := context.AfterFunc(ctx, func() { ln.Close() })
	defer stopLn()
	if _, err := k.c.Write([]byte(portCmd(k.localIP(), port))); err != nil {
		return err
	}
	if _, err := k.expect(200); err != nil {
		return fmt.Errorf("PORT: %w", err)
	}
	if _, err := k.c.Write([]byte("RETR " + file + "\r\n")); err != nil {
		return err
	}
	if _, err := k.expect(150); err != nil {
		return fmt.Errorf("RETR: %w", err)
	}
	dc, err := ln.Accept()
	if err != nil {
		return fmt.Errorf("accept data connection: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = dc.SetDeadline(dl)
	}
	n, err := io.Copy(io.Discard, dc)
	dc.Close()
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("data: %w: empty file", errReply)
	}
	if _, err := k.expect(226); err != nil {
		return fmt.Errorf("after RETR: %w", err)
	}
	if _, err := k.cmd("QUIT\r\n"); err != nil {
		return fmt.Errorf("QUIT: %w", err)
	}
	// Wait for the server to close first, as it does after 221: the
	// client's port is then free at once (no TIME_WAIT on this side), and
	// Linux hands it out again soon, which real clients see too.
	if _, err := io.Copy(io.Discard, k.br); err != nil {
		return fmt.Errorf("after QUIT: %w", err)
	}
	return nil
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
