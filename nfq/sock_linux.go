//go:build linux

package nfq

import (
	"fmt"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// sock is what a Queue needs of its netlink socket. The reader is its only
// user once Open returns, so implementations need not lock; interrupt alone
// is called from another goroutine.
type sock interface {
	// read reads one datagram into b.
	read(b []byte) (int, error)
	// write sends one datagram to the kernel.
	write(b []byte) error
	// interrupt makes a blocked read, and every later one, fail.
	interrupt()
	close() error
}

// netlinkSock is a NETLINK_NETFILTER socket from mdlayher/netlink (which
// creates it in the caller's network namespace and registers it with the Go
// runtime's poller). Packets are read and verdicts written through its
// syscall.RawConn into nfq's own buffers: netlink.Conn's Receive and Send
// allocate for every message.
type netlinkSock struct {
	c  *netlink.Conn
	rc syscall.RawConn

	// State of the call in progress; readFn and writeFn are bound once so
	// that a read or a write allocates nothing.
	buf     []byte
	n       int
	err     error
	readFn  func(fd uintptr) bool
	writeFn func(fd uintptr) bool
}

func dialSock(readBuffer int) (*netlinkSock, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, fmt.Errorf("open nfnetlink socket: %w", err)
	}
	s := &netlinkSock{c: c}
	s.readFn = func(fd uintptr) bool { return s.rw(fd, unix.Read) }
	s.writeFn = func(fd uintptr) bool { return s.rw(fd, unix.Write) }
	if s.rc, err = c.SyscallConn(); err != nil {
		c.Close()
		return nil, fmt.Errorf("nfnetlink socket: %w", err)
	}
	// A failed verdict's error then echoes only its header, not the payload.
	if err := c.SetOption(netlink.CapAcknowledge, true); err != nil {
		c.Close()
		return nil, fmt.Errorf("nfnetlink socket option: %w", err)
	}
	// NETLINK_NO_ENOBUFS stays off: an overflow is then reported as
	// ENOBUFS by the next read, which counts it (Stats.Overruns).
	var serr error
	if err := s.rc.Control(func(fd uintptr) {
		// Root may exceed net.core.rmem_max; others get what it allows.
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, readBuffer)
		if serr != nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, readBuffer)
		}
	}); err != nil || serr != nil {
		c.Close()
		return nil, fmt.Errorf("nfnetlink socket receive buffer of %d bytes: %w", readBuffer, firstErr(err, serr))
	}
	return s, nil
}

func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func (s *netlinkSock) read(b []byte) (int, error) {
	s.buf = b
	if err := s.rc.Read(s.readFn); err != nil {
		return 0, err
	}
	return s.n, s.err
}

func (s *netlinkSock) write(b []byte) error {
	s.buf = b
	if err := s.rc.Write(s.writeFn); err != nil {
		return err
	}
	return s.err
}

// rw is readFn (op unix.Read) and writeFn (op unix.Write): it runs op on
// s.buf, again after EINTR, and keeps its result; on EAGAIN it returns false
// to wait in the poller.
func (s *netlinkSock) rw(fd uintptr, op func(int, []byte) (int, error)) bool {
	for {
		n, err := op(int(fd), s.buf)
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		s.n, s.err = n, err
		return true
	}
}

// interrupt sets a read deadline in the past: a blocked read returns at
// once, and so does every later one.
func (s *netlinkSock) interrupt() { _ = s.c.SetReadDeadline(time.Unix(1, 0)) }

// close closes the socket; the kernel unbinds its queue on release.
func (s *netlinkSock) close() error { return s.c.Close() }
