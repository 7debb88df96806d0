//go:build linux

package conntrack

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// The kernel's conntrack events, read by hand: mdlayher/netlink opens the
// socket and joins the group; the datagrams are read with recvfrom(2)
// through the socket's RawConn and decoded in place (decodeFlow, compared
// with ti-mo/conntrack's decoder in the tests). Not ti-mo/conntrack's
// Listen, for three reasons: its workers end at the first receive error,
// and the one error expected here is ENOBUFS (events lost, the socket stays
// usable), which must be counted and survived; it hands events over a
// channel, so nobody can tell whether every event the kernel has queued so
// far was handled (NewWatcher.Sync needs that); and it allocates per event,
// on a gateway where every connection sends one.

// eventsSysctl is the switch of conntrack's event delivery, per network
// namespace: 0 off, 1 on, 2 on once a listener exists (the default).
const eventsSysctl = "/proc/sys/net/netfilter/nf_conntrack_events"

// eventReadBuffer is an event socket's receive buffer: about 25,000 events
// of ~160 bytes (a flush of a full table comes faster than any reader;
// what overflows is reported as lost).
const eventReadBuffer = 4 << 20

// events is one ctnetlink event socket subscribed to one group. Its
// datagrams are read and handled one at a time, under mu, by Run's loop or
// by drain: so events are handled in the order the kernel queued them
// whoever reads them.
type events struct {
	c  *netlink.Conn
	rc syscall.RawConn
	// msgType is the ctnetlink message type of the group's events; others
	// are ignored.
	msgType uint16

	mu sync.Mutex // held while a datagram is read and handled
	// handle is called with each TCP connection's event, its binding and
	// the protocol of its original tuple decoded; lost when the kernel
	// dropped events (ENOBUFS). Both are set before the first read.
	handle func(Binding)
	lost   func()
	buf    []byte

	closeOnce sync.Once
	closeErr  error
}

// listenEvents subscribes to ctnetlink event group g in the current network
// namespace: from its return on, every event of the group is queued on the
// socket or its loss is. It returns ErrNoEvents when the kernel delivers no
// conntrack events (net.netfilter.nf_conntrack_events = 0).
func listenEvents(g netfilter.NetlinkGroup, msgType uint8) (*events, error) {
	if b, err := os.ReadFile(eventsSysctl); err == nil && strings.TrimSpace(string(b)) == "0" {
		return nil, ErrNoEvents
	}
	c, rc, err := dialNetfilter("ctnetlink events")
	if err != nil {
		return nil, err
	}
	if err := forceReadBuffer(rc, eventReadBuffer); err != nil {
		_ = c.SetReadBuffer(eventReadBuffer) // capped by net.core.rmem_max
	}
	if err := c.JoinGroup(uint32(g)); err != nil {
		c.Close()
		return nil, fmt.Errorf("listen for conntrack events: %w", err)
	}
	// One ctnetlink event fits a page (ctnetlink_conntrack_event sizes its
	// message to the attributes it carries): room for a few.
	return &events{c: c, rc: rc, msgType: subsysCT<<8 | uint16(msgType), buf: make([]byte, 32<<10)}, nil
}

// forceReadBuffer sets the socket's receive buffer past net.core.rmem_max
// (SO_RCVBUFFORCE, needs CAP_NET_ADMIN).
func forceReadBuffer(rc syscall.RawConn, n int) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
	}); err != nil {
		return err
	}
	return serr
}

// run reads and handles events until ctx is cancelled (it returns nil) or
// the socket fails. It closes the socket on return.
func (s *events) run(ctx context.Context) error {
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
		}
		s.close()
	}()
	var rerr error
	read := func(fd uintptr) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		var more bool
		more, rerr = s.readLocked(int(fd))
		return more || rerr != nil // nothing queued: wait in the poller
	}
	for {
		rerr = nil
		err := s.rc.Read(read)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("conntrack events: %w", err)
		}
		if rerr != nil {
			return fmt.Errorf("conntrack events: %w", rerr)
		}
	}
}

// drain handles every event queued on the socket now, without waiting for
// more. Events the run loop has read are handled by the time drain takes
// mu, so on return every event the kernel queued before the call has been
// handled.
func (s *events) drain() {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.rc.Control(func(fd uintptr) {
		for {
			if more, err := s.readLocked(int(fd)); !more || err != nil {
				return // a failed socket is reported by run
			}
		}
	})
}

// readLocked reads one datagram without waiting and handles its events.
// more is false when nothing was queued (EAGAIN). ENOBUFS is reported to
// lost and is not an error: the socket stays usable.
func (s *events) readLocked(fd int) (more bool, err error) {
	for {
		n, _, err := unix.Recvfrom(fd, s.buf, unix.MSG_DONTWAIT)
		switch err {
		case nil:
			s.dispatch(s.buf[:n])
			return true, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false, nil
		case unix.ENOBUFS:
			if s.lost != nil {
				s.lost()
			}
			return true, nil
		}
		return false, err
	}
}

// dispatch handles the events of one datagram; messages that do not parse
// or are not TCP events of the socket's kind are skipped.
func (s *events) dispatch(b []byte) {
	for len(b) > 0 {
		h, body, rest, err := nextMessage(b)
		if err != nil {
			return
		}
		b = rest
		if h.Type != s.msgType {
			continue
		}
		f, proto, err := decodeFlow(body)
		if err != nil || proto != ipprotoTCP {
			continue
		}
		s.handle(f)
	}
}

// close closes the socket: a run in progress returns. It is idempotent.
func (s *events) close() error {
	s.closeOnce.Do(func() { s.closeErr = s.c.Close() })
	return s.closeErr
}

// DestroyWatcher receives the kernel's conntrack DESTROY events: one for
// each connection its conntrack table forgets (closed and timed out, expired
// idle, deleted by hand, flushed).
type DestroyWatcher struct{ ev *events }

// ListenDestroy subscribes to DESTROY events in the current network
// namespace. From its return on, every connection the kernel forgets is
// reported to Run, or its loss is. It returns ErrNoEvents when the kernel
// delivers no conntrack events (net.netfilter.nf_conntrack_events = 0).
func ListenDestroy() (*DestroyWatcher, error) {
	ev, err := listenEvents(netfilter.GroupCTDestroy, ipctnlMsgCtDelete)
	if err != nil {
		return nil, err
	}
	return &DestroyWatcher{ev: ev}, nil
}

// Run calls gone with the original tuple of every TCP connection the
// kernel forgets, in the order the kernel reports them, until ctx is
// cancelled (it returns nil) or the socket fails. When the kernel dropped
// events because they came faster than they were read (ENOBUFS), it calls
// lost and goes on reading: which connections ended is then unknown, and
// the caller must find out another way. Run closes the socket on return.
func (w *DestroyWatcher) Run(ctx context.Context, gone func(Tuple), lost func()) error {
	w.ev.mu.Lock()
	w.ev.handle = func(b Binding) { gone(b.Orig) }
	w.ev.lost = lost
	w.ev.mu.Unlock()
	return w.ev.run(ctx)
}

// Close closes the socket: a Run in progress returns. It is idempotent.
func (w *DestroyWatcher) Close() error { return w.ev.close() }

// NewWatcher receives the kernel's conntrack NEW events of the connections
// whose conntrack mark carries given bits: the data connections let in
// through ftpct's holes.
type NewWatcher struct{ ev *events }

// ListenNew subscribes to NEW events in the current network namespace:
// from its return on, fn is called (from Run or Sync) with the binding of
// every new TCP connection whose conntrack mark has all bits of mark set.
// Events the kernel dropped because they came faster than they were read
// are only counted by lost: fn never sees those connections. It returns
// ErrNoEvents when the kernel delivers no conntrack events.
func ListenNew(mark uint32, fn func(Binding), lost func()) (*NewWatcher, error) {
	ev, err := listenEvents(netfilter.GroupCTNew, ipctnlMsgCtNew)
	if err != nil {
		return nil, err
	}
	ev.handle = func(b Binding) {
		if b.Mark&mark == mark {
			fn(b)
		}
	}
	ev.lost = lost
	return &NewWatcher{ev: ev}, nil
}

// Run handles events until ctx is cancelled (it returns nil) or the socket
// fails. It closes the socket on return.
func (w *NewWatcher) Run(ctx context.Context) error { return w.ev.run(ctx) }

// Sync handles every event the kernel has queued so far, without waiting:
// on return fn has seen every matching connection the kernel confirmed
// before the call. Safe for concurrent use with Run and other Syncs.
func (w *NewWatcher) Sync() { w.ev.drain() }

// Close closes the socket: a Run in progress returns. It is idempotent.
func (w *NewWatcher) Close() error { return w.ev.close() }
