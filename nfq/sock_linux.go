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
// reader once Open returns; writes are serialised by the Queue (wmu) but may
// come from another goroutine than the reader's, while it reads: a read and
// a write must not share state. interrupt is called from another goroutine.
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

	// The read and the write in progress (one of each at a time, possibly
	// at once: a verdict given from another goroutine while the reader
	// reads); readFn and writeFn are bound once so that a read or a write
	// allocates nothing.
	rd, wr  sockCall
	readFn  func(fd uintptr) bool
	writeFn func(fd uintptr) bool
}

// sockCall is the state of one read or write.
type sockCall struct {
	buf []byte
	n   int
	err error
}

func dialSock(readBuffer int) (*netlinkSock, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, fmt.Errorf("open nfnetlink socket: %w", err)
	}
	s := &netlinkSock{c: c}
	s.readFn = func(fd uintptr) bool { return s.rd.rw(fd, unix.Read) }
	s.writeFn = func(fd uintptr) bool { return s.wr.rw(fd, unix.Write) }
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
	s.rd.buf = b
	if err := s.rc.Read(s.readFn); err != nil {
		return 0, err
	}
	return s.rd.n, s.rd.err
}

func (s *netlinkSock) write(b []byte) error {
	s.wr.buf = b
	if err := s.rc.Write(s.writeFn); err != nil {
		return err
	}
	return s.wr.err
}

// rw is readFn's (op unix.Read, on s.rd) and writeFn's (op unix.Write, on
// s.wr): it runs op on c.buf, again after EINTR, and keeps its result; on
// EAGAIN it returns false to wait in the poller.
func (c *sockCall) rw(fd uintptr, op func(int, []byte) (int, error)) bool {
	for {
		n, err := op(int(fd), c.buf)
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		c.n, c.err = n, err
		return true
	}
}

// interrupt sets a read deadline in the past: a blocked read returns at
// once, and so does every later one.
func (s *netlinkSock) interrupt() { _ = s.c.SetReadDeadline(time.Unix(1, 0)) }

// close closes the socket; the kernel unbinds its queue on release.
func (s *netlinkSock) close() error { return s.c.Close() }
