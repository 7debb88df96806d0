package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Errors of the FTP conversation.
var (
	errReply    = errors.New("unexpected reply")
	errBadReply = errors.New("malformed reply")
)

// ctrl is one FTP control connection.
type ctrl struct {
	c  net.Conn
	br *bufio.Reader
}

// keepAlive is the TCP keep-alive interval of control connections (-keepalive):
// 0 is Go's default (15 s), negative is none.
var keepAlive time.Duration

// dial opens a control connection from src (nil: any) to addr and reads the
// greeting.
func dial(ctx context.Context, src net.IP, addr string) (*ctrl, error) {
	return dialFrom(ctx, src, 0, addr)
}

// dialFrom is dial from a given source port (0: any).
func dialFrom(ctx context.Context, src net.IP, port int, addr string) (*ctrl, error) {
	d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: keepAlive}
	if src != nil || port != 0 {
		d.LocalAddr = &net.TCPAddr{IP: src, Port: port}
	}
	if port != 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
			})
			return errors.Join(err, serr)
		}
	}
	c, err := d.DialContext(ctx, "tcp4", addr)
	// A fixed port is busy until the last connection from it has closed
	// (LAST_ACK waits for the server's ACK of our FIN): retry a little.
	for i := 0; port != 0 && i < 200 && (errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EADDRINUSE)); i++ {
		time.Sleep(10 * time.Millisecond)
		c, err = d.DialContext(ctx, "tcp4", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(10 * time.Second)
	}
	_ = c.SetDeadline(dl) // the caller sets its own after the greeting
	k := &ctrl{c: c, br: bufio.NewReaderSize(c, 4096)}
	if _, err := k.expect(220); err != nil {
		c.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	return k, nil
}

// login logs in anonymously (vsftpd with no_anon_password answers 230 to USER).
func (k *ctrl) login() error {
	code, err := k.cmd("USER anonymous\r\n")
	if err != nil {
		return err
	}
	if code == 331 {
		code, err = k.cmd("PASS bench@\r\n")
		if err != nil {
			return err
		}
	}
	if code != 230 {
		return fmt.Errorf("login: %w: %d", errReply, code)
	}
	return nil
}

// cmd sends one command line and returns the reply's code.
func (k *ctrl) cmd(line string) (int, error) {
	if _, err := k.c.Write([]byte(line)); err != nil {
		return 0, err
	}
	return k.reply()
}

// expect reads a reply and fails unless its code is want.
func (k *ctrl) expect(want int) (int, error) {
	code, err := k.reply()
	if err != nil {
		return code, err
	}
	if code != want {
		return code, fmt.Errorf("%w: %d, want %d", errReply, code, want)
	}
	return code, nil
}

// reply reads one (possibly multi-line) reply and returns its code.
func (k *ctrl) reply() (int, error) {
	line, err := k.br.ReadString('\n')
	if err != nil {
		return 0, err
	}
	code, more, err := parseReplyLine(line)
	if err != nil {
		return 0, err
	}
	for more {
		line, err = k.br.ReadString('\n')
		if err != nil {
			return 0, err
		}
		if c, m, err := parseReplyLine(line); err == nil && c == code && !m {
			more = false
		}
	}
	return code, nil
}

// parseReplyLine returns the code of a reply line and whether it opens a
// multi-line reply ("150-").
func parseReplyLine(line string) (code int, more bool, err error) {
	if len(line) < 4 {
		return 0, false, fmt.Errorf("%w: %q", errBadReply, line)
	}
	code, err = strconv.Atoi(line[:3])
	if err != nil || code < 100 || code > 599 {
		return 0, false, fmt.Errorf("%w: %q", errBadReply, line)
	}
	switch line[3] {
	case ' ', '\r', '\n':
		return code, false, nil
	case '-':
		return code, true, nil
	}
	return 0, false, fmt.Errorf("%w: %q", errBadReply, line)
}

// portCmd formats "PORT a,b,c,d,p1,p2\r\n" for an IPv4 address and port.
func portCmd(ip net.IP, port int) string {
	v4 := ip.To4()
	if v4 == nil {
		v4 = net.IPv4zero.To4()
	}
	return fmt.Sprintf("PORT %d,%d,%d,%d,%d,%d\r\n", v4[0], v4[1], v4[2], v4[3], port>>8, port&0xff)
}

// parsePort parses the argument of a PORT command.
func parsePort(arg string) (net.IP, int, error) {
	f := strings.Split(strings.TrimSpace(arg), ",")
	if len(f) != 6 {
		return nil, 0, fmt.Errorf("%w: PORT %q", errBadReply, arg)
	}
	var n [6]int
	for i, s := range f {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 || v > 255 {
			return nil, 0, fmt.Errorf("%w: PORT %q", errBadReply, arg)
		}
		n[i] = v
	}
	return net.IPv4(byte(n[0]), byte(n[1]), byte(n[2]), byte(n[3])), n[4]<<8 | n[5], nil
}

func (k *ctrl) localIP() net.IP { return k.c.LocalAddr().(*net.TCPAddr).IP }

func (k *ctrl) close() { k.c.Close() }
