package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// serve is a minimal FTP control responder for the idle-session memory load:
// one goroutine per connection instead of vsftpd's processes. Like vsftpd
// (port_promiscuous=NO) it answers PORT 200 only when the announced address
// is the connection's peer, 500 otherwise; data connections are never made.
func serve(ctx context.Context, listen string) error {
	lc := net.ListenConfig{KeepAlive: keepAlive} // for the accepted connections
	ln, err := lc.Listen(ctx, "tcp4", listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			stopC := context.AfterFunc(ctx, func() { c.Close() })
			defer stopC()
			defer c.Close()
			answer(c)
		}()
	}
}

// answer speaks the responder's side of one control connection.
func answer(c net.Conn) {
	peer := c.RemoteAddr().(*net.TCPAddr).IP
	br := bufio.NewReader(c)
	if _, err := c.Write([]byte("220 ftpload\r\n")); err != nil {
		return
	}
	for {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Minute))
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		var reply string
		switch strings.ToUpper(verb) {
		case "USER", "PASS":
			reply = "230 Login successful.\r\n"
		case "NOOP":
			reply = "200 NOOP ok.\r\n"
		case "PORT":
			ip, _, err := parsePort(arg)
			if err == nil && ip.Equal(peer) {
				reply = "200 PORT command successful.\r\n"
			} else {
				reply = "500 Illegal PORT command.\r\n"
			}
		case "QUIT":
			_, _ = c.Write([]byte("221 Goodbye.\r\n"))
			return
		default:
			reply = "502 Command not implemented.\r\n"
		}
		if _, err := c.Write([]byte(reply)); err != nil {
			return
		}
	}
}
