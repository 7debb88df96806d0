package rules

import (
	"fmt"
	"syscall"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// elemSocketLinux is an elemBatch's own NETLINK_NETFILTER socket. It reads
// and writes through the runtime's poller (syscall.RawConn) with functions
// made once, so a transaction allocates nothing.
type elemSocketLinux struct {
	nl     *netlink.Conn // owns the socket
	rc     syscall.RawConn
	sndbuf int // SO_SNDBUF as the kernel reports it (twice what was set)

	// The running call's buffer and result, for wfn and rfn.
	b        []byte
	n        int
	err      error
	wfn, rfn func(fd uintptr) bool
}

// dialElemSocket opens the socket in the network namespace netns refers to
// (0: the caller's), as nftables.WithNetNSFd does for the Manager's
// connection.
func dialElemSocket(netns int) (*elemSocketLinux, error) {
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return nil, err
	}
	s := &elemSocketLinux{nl: nl}
	s.wfn, s.rfn = s.write, s.read
	if s.rc, err = nl.SyscallConn(); err != nil {
		nl.Close()
		return nil, err
	}
	// Errors carry the request's header, not the whole request
	// (NETLINK_CAP_ACK, Linux 4.3), and the offset of the attribute at
	// fault (NETLINK_EXT_ACK, 4.12): the element. Without them errors
	// are still read (their start fits replyBufLen), naming no element.
	_ = nl.SetOption(netlink.CapAcknowledge, true)
	_ = nl.SetOption(netlink.ExtendedAcknowledge, true)
	if s.sndbuf, err = nl.WriteBuffer(); err != nil {
		nl.Close()
		return nil, err
	}
	return s, nil
}

// send writes b in one sendmsg. The kernel refuses a datagram larger than
// the send buffer (EMSGSIZE, netlink_sendmsg): it is made large enough first,
// as nft does for its batches (SO_SNDBUFFORCE: CAP_NET_ADMIN, which
// every transaction needs anyway).
func (s *elemSocketLinux) send(b []byte) error {
	if need := len(b) + 32; need > s.sndbuf {
		if err := s.growSendBuffer(need); err != nil {
			return err
		}
	}
	s.b = b
	err := s.rc.Write(s.wfn)
	s.b = nil
	switch {
	case err != nil:
		return err
	case s.err != nil:
		return fmt.Errorf("sendmsg: %w", s.err)
	case s.n != len(b):
		return fmt.Errorf("sendmsg: wrote %d of %d bytes", s.n, len(b))
	}
	return nil
}

func (s *elemSocketLinux) growSendBuffer(need int) error {
	var serr error
	err := s.rc.Control(func(fd uintptr) {
		// The kernel doubles the value set (socket(7)).
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, need)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("send buffer of %d bytes: %w", need, err)
	}
	n, err := s.nl.WriteBuffer()
	if err != nil {
		return fmt.Errorf("send buffer: %w", err)
	}
	s.sndbuf = n
	return nil
}

func (s *elemSocketLinux) write(fd uintptr) bool {
	for {
		s.n, s.err = unix.Write(int(fd), s.b)
		if s.err != unix.EINTR {
			return s.err != unix.EAGAIN
		}
	}
}

// recv reads one datagram. The kernel has queued the answer to a
// transaction before its write returns, so it does not wait.
func (s *elemSocketLinux) recv(b []byte) (int, error) {
	s.b = b
	err := s.rc.Read(s.rfn)
	s.b = nil
	switch {
	case err != nil:
		return 0, err
	case s.err != nil:
		return 0, fmt.Errorf("recvmsg: %w", s.err)
	}
	return s.n, nil
}

func (s *elemSocketLinux) read(fd uintptr) bool {
	for {
		s.n, s.err = unix.Read(int(fd), s.b)
		if s.err != unix.EINTR {
			return s.err != unix.EAGAIN
		}
	}
}

func (s *elemSocketLinux) close() error { return s.nl.Close() }
