//go:build linux

package conntrack

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Kernel talks to the kernel's conntrack table over ctnetlink.
//
// It writes its requests and reads their answers itself, through the
// socket's syscall.RawConn, into buffers it keeps: mdlayher/netlink's Send
// and Receive allocate for every message, and SetResized runs on the packet
// path. Lookups do not use ti-mo/conntrack's Conn.Get either: recent
// kernels answer a CT_GET with a reply flagged NLM_F_MULTI and end it with
// an ACK instead of NLMSG_DONE, and mdlayher/netlink's Execute then waits
// for the DONE forever (mdlayher/netlink pull request 315). Kernel reads
// until the ACK and decodes the entry in place (events_linux.go decodes
// the kernel's events the same way).
//
// Requests are serialised on one socket. Close does not wait for them.
//
// The socket is blocking and kept out of the Go runtime's network poller
// (epoll). The kernel answers a ctnetlink request while it is written (the
// answer is queued on the socket before write returns), so the read that
// follows finds it at once. Registered in the poller, every answer arriving
// on the socket would wake the thread blocked in epoll_pwait for nothing: on
// the packet path (SetResized, one per rewritten announcement) that was a
// third to a half of the wake-ups ftpct's threads made of each other in an
// announcement storm (BENCHMARKS.md, branch handoff). A reply that does not
// come ends the read after replyTimeout (SO_RCVTIMEO) instead of a poller
// deadline.
type Kernel struct {
	f      *os.File // the socket, not in the poller
	rc     syscall.RawConn
	closed atomic.Bool

	mu  sync.Mutex // serialises requests on f and guards what follows
	seq uint32     // of the request in req
	req []byte
	buf [8192]byte
	// io is the state of the read or the write in progress; readFn and
	// writeFn are bound once so that an exchange allocates nothing.
	io      ioCall
	readFn  func(fd uintptr) bool
	writeFn func(fd uintptr) bool
}

// ioCall is the state of one read or write on the socket.
type ioCall struct {
	buf []byte
	n   int
	err error
}

// rw runs op on c.buf (the socket blocks), again after EINTR, and keeps its
// result: EAGAIN is the socket's timeout (SO_RCVTIMEO) and is kept as
// errReplyTimeout.
func (c *ioCall) rw(fd uintptr, op func(int, []byte) (int, error)) bool {
	for {
		n, err := op(int(fd), c.buf)
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			c.n, c.err = 0, errReplyTimeout
			return true
		}
		c.n, c.err = n, err
		return true
	}
}

// replyTimeout is the longest a request waits for the kernel's answer: a
// reply that does not come is a kernel or library fault, not a reason to
// stall the packet path.
const replyTimeout = time.Second

// errReplyTimeout: no answer within replyTimeout.
var errReplyTimeout = fmt.Errorf("ctnetlink: no answer within %v", replyTimeout)

// DialKernel opens a ctnetlink connection in the current network namespace.
func DialKernel() (*Kernel, error) {
	f, rc, err := dialBlocking("ctnetlink", replyTimeout)
	if err != nil {
		return nil, err
	}
	k := &Kernel{f: f, rc: rc, req: make([]byte, 0, maxRequestLen)}
	k.readFn = func(fd uintptr) bool { return k.io.rw(fd, unix.Read) }
	k.writeFn = func(fd uintptr) bool { return k.io.rw(fd, unix.Write) }
	return k, nil
}

// dialBlocking opens a blocking netfilter netlink socket in the current
// network namespace, bound to an address the kernel picks, whose reads give
// up after timeout; what names it in errors. It is not registered with the
// runtime's poller (os.NewFile keeps a blocking descriptor out of it): its
// reads and writes are plain system calls through the returned RawConn, and
// Close of the file waits for none of them (the descriptor is released when
// the last one returns).
func dialBlocking(what string, timeout time.Duration) (*os.File, syscall.RawConn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", what, err)
	}
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("%s socket receive timeout: %w", what, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("bind %s socket: %w", what, err)
	}
	f := os.NewFile(uintptr(fd), what)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s socket: %w", what, err)
	}
	return f, rc, nil
}

// dialNetfilter opens a netfilter netlink socket in the current network
// namespace, with its raw connection, through which the callers read and
// write it themselves; what names the socket in errors.
func dialNetfilter(what string) (*netlink.Conn, syscall.RawConn, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", what, err)
	}
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("%s socket: %w", what, err)
	}
	return c, rc, nil
}

// Close closes the connection. It is idempotent and does not wait for a
// request in progress: that one ends with its answer (or, if none comes,
// after replyTimeout), the socket is released after it, and requests made
// after Close fail.
func (k *Kernel) Close() error {
	if !k.closed.CompareAndSwap(false, true) {
		return nil
	}
	return k.f.Close()
}

// ctnetlink attribute types, include/uapi/linux/netfilter/nfnetlink_conntrack.h.
const (
	ctaTupleOrig      = 1  // CTA_TUPLE_ORIG
	ctaTupleIP        = 1  // CTA_TUPLE_IP
	ctaTupleProto     = 2  // CTA_TUPLE_PROTO
	ctaIPv4Src        = 1  // CTA_IP_V4_SRC
	ctaIPv4Dst        = 2  // CTA_IP_V4_DST
	ctaIPv6Src        = 3  // CTA_IP_V6_SRC
	ctaIPv6Dst        = 4  // CTA_IP_V6_DST
	ctaProtoNum       = 1  // CTA_PROTO_NUM
	ctaProtoSrcPort   = 2  // CTA_PROTO_SRC_PORT
	ctaProtoDstPort   = 3  // CTA_PROTO_DST_PORT
	ctaLabels         = 22 // CTA_LABELS
	ctaLabelsMask     = 23 // CTA_LABELS_MASK
	ctaProtoInfo      = 4  // CTA_PROTOINFO
	ctaProtoInfoTCP   = 1  // CTA_PROTOINFO_TCP
	ctaTCPFlagsOrig   = 4  // CTA_PROTOINFO_TCP_FLAGS_ORIGINAL
	ctaTCPFlagsRepl   = 5  // CTA_PROTOINFO_TCP_FLAGS_REPLY
	ipctnlMsgCtNew    = 0  // IPCTNL_MSG_CT_NEW, cntl_msg_types
	ipctnlMsgCtGet    = 1  // IPCTNL_MSG_CT_GET
	ipctnlMsgCtDelete = 2  // IPCTNL_MSG_CT_DELETE
)

// LabelsSize is the size of a conntrack entry's labels in bytes
// (NF_CT_LABELS_MAX_SIZE, include/net/netfilter/nf_conntrack_labels.h).
const LabelsSize = 16

// tcpFlagBeLiberal is IP_CT_TCP_FLAG_BE_LIBERAL
// (include/uapi/linux/netfilter/nf_conntrack_tcp.h): conntrack's TCP window
// tracking accepts every segment of a direction with this flag that its
// window checks would mark INVALID or ignore (nf_tcp_log_invalid in
// net/netfilter/nf_conntrack_proto_tcp.c).
const tcpFlagBeLiberal = 0x08

// Lookup returns the binding of the TCP connection one of whose directions is
// t (as the packet carries it before NAT: the kernel finds either direction),
// with its labels. It returns ErrNoEntry when the kernel does not track the
// connection.
func (k *Kernel) Lookup(t Tuple) (Binding, error) {
	var (
		b     Binding
		found bool
	)
	k.mu.Lock()
	k.seq++
	k.req = appendGet(k.req[:0], k.seq, t)
	err := k.exchange(func(_ nlHeader, body []byte) error {
		var err error
		b, _, err = decodeFlow(body)
		found = err == nil
		return err
	})
	k.mu.Unlock()
	if err == nil && !found {
		err = ErrNoEntry
	}
	if err != nil {
		if errors.Is(err, ErrNoEntry) {
			return Binding{}, err
		}
		return Binding{}, fmt.Errorf("conntrack get %s: %w", t, err)
	}
	return b, nil
}

// SetResized records in the kernel that ftpct resized the stream of the
// connection one of whose directions is t, in one request: it replaces all
// 128 label bits with labels and makes conntrack's TCP window tracking of
// the connection liberal in both directions (Binding.Liberal).
//
// Liberal, because ftpct rewrites the connection's packets before conntrack
// sees them and leaves conntrack's view inconsistent: the resized sender's
// segments reach it shifted into the peer's (wire) sequence space, the
// peer's acknowledgements mapped back into the sender's original space.
// Once the summed growth passes conntrack's MAXACKWINDOW (66,000 bytes or
// the peer's largest window), its window checks reject the peer's segments
// and a ruleset that drops ct state invalid stalls the session. The
// kernel's own FTP helper escapes this because conntrack knows its sequence
// offsets; ftpct's live outside the kernel.
//
// The request is CT_NEW without NLM_F_CREATE, which updates an existing
// entry only. The kernel applies CTA_PROTOINFO before CTA_LABELS
// (ctnetlink_change_conntrack), so an entry without room for labels still
// becomes liberal. It allocates nothing when it succeeds.
//
// It returns ErrNoLabels when the entry has no room for labels (it was
// created while no rule setting ct labels existed; it is made liberal all
// the same) and ErrNoEntry when the kernel does not track the connection.
func (k *Kernel) SetResized(t Tuple, labels [LabelsSize]byte) error {
	k.mu.Lock()
	k.seq++
	k.req = appendResized(k.req[:0], k.seq, t, &labels)
	err := k.exchange(nil)
	k.mu.Unlock()
	switch {
	case err == nil, errors.Is(err, ErrNoEntry):
		return err
	case errors.Is(err, unix.ENOSPC):
		return fmt.Errorf("conntrack set resized %s: %w", t, ErrNoLabels)
	default:
		return fmt.Errorf("conntrack set resized %s: %w", t, err)
	}
}

// exchange sends the request in k.req, whose sequence number is k.seq, and
// passes every answer message to fn (when not nil) until the kernel's ACK
// (or NLMSG_DONE) ends the answer. ENOENT is ErrNoEntry. The caller holds
// k.mu.
func (k *Kernel) exchange(fn func(h nlHeader, body []byte) error) error {
	if k.closed.Load() {
		return errClosed
	}
	k.io.buf = k.req
	if err := k.rc.Write(k.writeFn); err != nil {
		return k.failed(err)
	}
	if k.io.err != nil {
		return k.failed(k.io.err)
	}
	for {
		k.io.buf = k.buf[:]
		if err := k.rc.Read(k.readFn); err != nil {
			return k.failed(err)
		}
		if k.io.err != nil {
			return k.failed(k.io.err)
		}
		for b := k.buf[:k.io.n]; len(b) > 0; {
			h, body, rest, err := nextMessage(b)
			if err != nil {
				return err
			}
			b = rest
			if h.Seq != k.seq {
				continue // a stale answer to an earlier, timed-out request
			}
			switch h.Type {
			case nlmsgError:
				errno, err := parseError(body)
				switch {
				case err != nil:
					return err
				case errno == 0:
					return nil // the ACK ends the answer
				case errno == unix.ENOENT:
					return ErrNoEntry
				}
				return errno
			case nlmsgDone:
				return nil
			}
			if fn != nil {
				if err := fn(h, body); err != nil {
					return err
				}
			}
		}
	}
}

// failed reports a socket error as errClosed once Close was called.
func (k *Kernel) failed(err error) error {
	if k.closed.Load() {
		return fmt.Errorf("%w: %v", errClosed, err)
	}
	return err
}

var errClosed = errors.New("conntrack connection closed")
