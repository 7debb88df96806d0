//go:build linux

package nfq

import (
	"fmt"
	"syscall"
	"time"
	"unsafe"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// sock is what a Queue needs of its netlink socket. The reader is its only
// reader once Open returns; writes are serialised by the Queue (wmu) but may
// come from another goroutine than the reader's, while it reads: a read and
// a write must not share state. interrupt is called from another goroutine.
type sock interface {
	// read waits for a datagram and reads it into bufs[0], and the ones
	// that wait behind it, if any, into the next ones: it returns how
	// many it read (at least one, unless it fails), their lengths in ns.
	read(bufs [][]byte, ns []int) (int, error)
	// write sends one datagram to the kernel.
	write(b []byte) error
	// interrupt makes a blocked read, and every later one, fail.
	interrupt()
	close() error
}

// netlinkSock is a NETLINK_NETFILTER socket from mdlayher/netlink (which
// creates it in the caller's network namespace and registers it with the Go
// runtime's poller). Packets are read with recvmmsg(2) and verdicts written
// through its syscall.RawConn into nfq's own buffers: netlink.Conn's Receive
// and Send allocate for every message, and read one message per system call.
type netlinkSock struct {
	c  *netlink.Conn
	rc syscall.RawConn

	// The read and the write in progress (one of each at a time, possibly
	// at once: a verdict given from another goroutine while the reader
	// reads); readFn and writeFn are bound once so that a read or a write
	// allocates nothing.
	rd      recvCall
	wr      sockCall
	readFn  func(fd uintptr) bool
	writeFn func(fd uintptr) bool
}

// sockCall is the state of one write.
type sockCall struct {
	buf []byte
	n   int
	err error
}

// recvCall is the state of one read: a struct mmsghdr and an iovec per
// buffer (include/linux/socket.h, include/uapi/linux/uio.h).
type recvCall struct {
	hdrs []mmsghdr
	iovs []unix.Iovec
	k    int // buffers in use
	n    int
	err  error
}

// mmsghdr is struct mmsghdr: a msghdr and the length received (Go pads it
// to the C layout's alignment).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

func dialSock(readBuffer int) (*netlinkSock, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, fmt.Errorf("open nfnetlink socket: %w", err)
	}
	s := &netlinkSock{c: c}
	s.readFn = s.rd.recv
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

func (s *netlinkSock) read(bufs [][]byte, ns []int) (int, error) {
	c := &s.rd
	c.k = min(len(bufs), len(ns))
	if len(c.hdrs) < c.k {
		c.hdrs = make([]mmsghdr, c.k)
		c.iovs = make([]unix.Iovec, c.k)
	}
	for i, b := range bufs[:c.k] {
		c.iovs[i] = unix.Iovec{Base: unsafe.SliceData(b)}
		c.iovs[i].SetLen(len(b))
		c.hdrs[i] = mmsghdr{hdr: unix.Msghdr{Iov: &c.iovs[i], Iovlen: 1}}
	}
	if err := s.rc.Read(s.readFn); err != nil {
		return 0, err
	}
	if c.err != nil {
		return 0, c.err
	}
	for i := range c.n {
		ns[i] = int(c.hdrs[i].len)
	}
	return c.n, nil
}

// recv is readFn: recvmmsg(2) into the buffers of c, again after EINTR;
// on EAGAIN (nothing to read, the socket is non-blocking) it returns false
// to wait in the poller. With one datagram or more read, it returns those
// that were there: the socket does not wait for the rest.
func (c *recvCall) recv(fd uintptr) bool {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(unsafe.SliceData(c.hdrs))), uintptr(c.k), 0, 0, 0)
		switch errno {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		case 0:
			c.n, c.err = int(n), nil
		default:
			c.n, c.err = 0, errno
		}
		return true
	}
}

func (s *netlinkSock) write(b []byte) error {
	s.wr.buf = b
	if err := s.rc.Write(s.writeFn); err != nil {
		return err
	}
	return s.wr.err
}

// rw is writeFn's (op unix.Write, on s.wr): it runs op on c.buf, again
// after EINTR, and keeps its result; on EAGAIN it returns false to wait in
// the poller.
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
