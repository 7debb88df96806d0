package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/ftpct/ftpct/control"
	"github.com/ftpct/ftpct/engine"
	"github.com/ftpct/ftpct/rules"
)

// options are the daemon's settings, shared by run and rules.
type options struct {
	rules    rules.Config
	engine   engine.Config
	socket   string
	install  bool
	logLevel slog.Level
}

// portList is a comma-separated list of TCP ports.
type portList []uint16

func (p *portList) String() string {
	s := make([]string, len(*p))
	for i, v := range *p {
		s[i] = strconv.Itoa(int(v))
	}
	return strings.Join(s, ",")
}

func (p *portList) Set(v string) error {
	var out []uint16
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("bad port %q", f)
		}
		out = append(out, uint16(n))
	}
	*p = out
	return nil
}

// hexUint32 accepts 0x-prefixed or decimal numbers.
type hexUint32 uint32

func (h *hexUint32) String() string { return fmt.Sprintf("%#08x", uint32(*h)) }
func (h *hexUint32) Set(v string) error {
	n, err := strconv.ParseUint(v, 0, 32)
	if err != nil {
		return fmt.Errorf("bad mark %q", v)
	}
	*h = hexUint32(n)
	return nil
}

func daemonFlags(name string, stderr io.Writer) (*flag.FlagSet, *options, func() error) {
	fs := flag.NewFlagSet("ftpct "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{rules: rules.DefaultConfig(), engine: engine.DefaultConfig()}
	ports := portList(o.rules.Ports)
	mark := hexUint32(o.rules.Mark)
	queue := uint(o.rules.Queue)
	noIPv6 := false
	noInstall := false
	level := "info"
	fs.Var(&ports, "ports", "FTP control `ports` to divert, comma-separated")
	fs.UintVar(&queue, "queue", queue, "NFQUEUE `number`")
	fs.Var(&mark, "mark", "conntrack mark `bit(s)` set on data connections ftpct lets in")
	fs.StringVar(&o.rules.Table, "table", o.rules.Table, "name of ftpct's own nftables tables (ip and ip6)")
	fs.BoolVar(&noIPv6, "no-ipv6", false, "do not divert IPv6 control connections")
	fs.BoolVar(&noInstall, "no-install-rules", false, "install no rules: the operator adds what 'ftpct rules' prints")
	fs.StringVar(&o.socket, "socket", control.DefaultSocket, "control socket `path`")
	fs.DurationVar(&o.engine.Timeout, "timeout", o.engine.Timeout, "how long an expected data connection may take to arrive")
	fs.IntVar(&o.engine.PerSession, "max-per-session", o.engine.PerSession, "pending expectations per control connection (a new one replaces the oldest)")
	fs.IntVar(&o.engine.MaxExpect, "max-expect", o.engine.MaxExpect, "pending expectations altogether (more are refused)")
	fs.IntVar(&o.engine.MaxSessions, "max-sessions", o.engine.MaxSessions, "control connections tracked")
	fs.BoolVar(&o.engine.AllowLowPorts, "allow-low-ports", false, "allow holes to privileged ports (< 1024); the kernel helper does, ftpct does not by default")
	fs.StringVar(&level, "log-level", level, "debug, info, warn or error")
	finish := func() error {
		if fs.NArg() > 0 {
			return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
		}
		if queue > 65535 {
			return fmt.Errorf("%w: --queue must be 0..65535", errUsage)
		}
		o.rules.Ports = ports
		o.rules.Queue = uint16(queue)
		o.rules.Mark = uint32(mark)
		o.rules.IPv6 = !noIPv6
		o.install = !noInstall
		if err := o.logLevel.UnmarshalText([]byte(level)); err != nil {
			return fmt.Errorf("%w: --log-level: %v", errUsage, err)
		}
		if o.engine.Timeout < time.Second {
			return fmt.Errorf("%w: --timeout must be at least 1s", errUsage)
		}
		if err := o.rules.Validate(); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		return nil
	}
	return fs, o, finish
}
