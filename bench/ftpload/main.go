// Command ftpload is the load generator of bench/sidebyside.sh: FTP control
// connections against vsftpd (or its own minimal responder) through the
// namespace lab's gateway, and the report of a run.
//
//	ftpload storm    -addr A -conns 8 -dur 5s -want ok|refused
//	ftpload noop     -addr A -conns 8 -dur 5s
//	ftpload sessions -addr A -conns 16 -dur 5s [-max N] [-ports 2000-4999]
//	                 [-ctrl-ports 5000-7999 | -src-port P] -want ok|fail
//	ftpload idle     -addr A -n K -src 10.0.1.10,10.0.1.11 [-hold 2m]
//	ftpload serve    -listen A
//	ftpload report   FILE
//
// Loads print "metric value" lines (metrics prefixed with -tag) and exit 1
// when the outcome is not the wanted one (a PORT not answered 200, a session
// that failed, ...). The idle load prints "ready" once its sessions are open
// and holds them until SIGUSR1.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ftpload:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: ftpload storm|noop|sessions|idle|serve|report [flags]")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	addr := fs.String("addr", "203.0.113.2:21", "server's control address")
	conns := fs.Int("conns", 8, "concurrent control connections")
	dur := fs.Duration("dur", 5*time.Second, "duration of the load")
	want := fs.String("want", "ok", "wanted outcome: ok, refused (storm) or fail (sessions)")
	file := fs.String("file", "hello.txt", "file to RETR in a session")
	maxN := fs.Int("max", 0, "sessions: stop after this many in all (0: only the duration)")
	tag := fs.String("tag", "", "prefix of the printed metric names")
	n := fs.Int("n", 1000, "idle: sessions to hold")
	src := fs.String("src", "", "idle: comma-separated source addresses")
	par := fs.Int("par", 32, "idle: sessions opened at once")
	hold := fs.Duration("hold", 2*time.Minute, "idle: hold at most this long without SIGUSR1")
	ports := fs.String("ports", "2000-31999", "sessions: client ports for data connections, taken in order (the loads stops when they run out)")
	ctrlPorts := fs.String("ctrl-ports", "", "sessions: client ports for control connections, taken in order (default: the kernel picks, and reuses a port soon after the server closed it)")
	srcPort := fs.Int("src-port", 0, "sessions: client port of every control connection (0: any), as a client reusing its port does")
	listen := fs.String("listen", "", "serve: address to listen on")
	fs.DurationVar(&keepAlive, "keepalive", 0, "TCP keep-alive interval of every control connection, dialled or accepted (0: Go's default, 15s; negative: off, so that idle sessions send nothing)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg := loadConfig{addr: *addr, conns: *conns, dur: *dur, file: *file, ports: &portRange{}, src: *srcPort}
	if cfg.src < 0 || cfg.src > 65535 || (cfg.src != 0 && (cfg.conns != 1 || cfg.ctrl != nil)) {
		return fmt.Errorf("-src-port %d: want 0, or a port with -conns 1 and no -ctrl-ports", cfg.src)
	}
	if err := parseRange(*ports, cfg.ports); err != nil {
		return fmt.Errorf("-ports: %w", err)
	}
	if *ctrlPorts != "" {
		cfg.ctrl = &portRange{}
		if err := parseRange(*ctrlPorts, cfg.ctrl); err != nil {
			return fmt.Errorf("-ctrl-ports: %w", err)
		}
	}
	var r *result
	var err error
	switch args[0] {
	case "storm":
		r, err = storm(ctx, cfg, *want)
	case "noop":
		r, err = noop(ctx, cfg)
	case "sessions":
		r, err = sessions(ctx, cfg, *maxN, *want)
	case "idle":
		var srcs []net.IP
		for _, s := range strings.Split(*src, ",") {
			ip := net.ParseIP(strings.TrimSpace(s))
			if ip == nil {
				return fmt.Errorf("idle: bad -src address %q", s)
			}
			srcs = append(srcs, ip)
		}
		r, err = idle(ctx, *addr, srcs, *n, *par, *hold)
	case "serve":
		return serve(ctx, *listen)
	case "report":
		if fs.NArg() != 1 {
			return fmt.Errorf("usage: ftpload report FILE")
		}
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			return err
		}
		defer f.Close()
		ss, err := readSamples(f)
		if err != nil {
			return fmt.Errorf("%s: %w", fs.Arg(0), err)
		}
		report(os.Stdout, ss)
		return nil
	default:
		return fmt.Errorf("unknown load %q", args[0])
	}
	if r != nil {
		for _, name := range r.names {
			fmt.Printf("%s%s %.6g\n", prefix(*tag), name, r.values[name])
		}
	}
	return err
}

// parseRange parses "FROM-TO" (inclusive, within 1024-65535) into r.
func parseRange(s string, r *portRange) error {
	if _, err := fmt.Sscanf(s, "%d-%d", &r.from, &r.to); err != nil ||
		r.from < 1024 || r.to > 65535 || r.from > r.to {
		return fmt.Errorf("%q: want FROM-TO within 1024-65535", s)
	}
	return nil
}

func prefix(tag string) string {
	if tag == "" {
		return ""
	}
	return tag + "."
}
