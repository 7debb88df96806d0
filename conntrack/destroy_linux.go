//go:build linux

package conntrack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/mdlayher/netlink"
	ctnl "github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// DestroyWatcher receives the kernel's conntrack DESTROY events: one for
// each connection its conntrack table forgets (closed and timed out, expired
// idle, deleted by hand, flushed).
//
// It reads the events itself over mdlayher/netlink and decodes them with
// ti-mo/conntrack: ti-mo/conntrack's Listen ends its workers at the first
// receive error, and the one error expected here is ENOBUFS (events lost,
// the socket stays usable), which must be counted and survived.
type DestroyWatcher struct {
	c         *netlink.Conn
	closeOnce sync.Once
	closeErr  error
}

// destroyReadBuffer is the event socket's receive buffer: about 25,000
// DESTROY events of ~160 bytes (a flush of a full table comes faster than
// any reader; what overflows is reported as lost).
const destroyReadBuffer = 4 << 20

// eventsSysctl is the switch of conntrack's event delivery, per network
// namespace: 0 off, 1 on, 2 on once a listener exists (the default).
const eventsSysctl = "/proc/sys/net/netfilter/nf_conntrack_events"

// ListenDestroy subscribes to DESTROY events in the current network
// namespace. From its return on, every connection the kernel forgets is
// reported to Run, or its loss is. It returns ErrNoEvents when the kernel
// delivers no conntrack events (net.netfilter.nf_conntrack_events = 0).
func ListenDestroy() (*DestroyWatcher, error) {
	if b, err := os.ReadFile(eventsSysctl); err == nil && strings.TrimSpace(string(b)) == "0" {
		return nil, ErrNoEvents
	}
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, fmt.Errorf("open ctnetlink events: %w", err)
	}
	if err := forceReadBuffer(c, destroyReadBuffer); err != nil {
		_ = c.SetReadBuffer(destroyReadBuffer) // capped by net.core.rmem_max
	}
	if err := c.JoinGroup(uint32(netfilter.GroupCTDestroy)); err != nil {
		c.Close()
		return nil, fmt.Errorf("listen for conntrack destroy events: %w", err)
	}
	return &DestroyWatcher{c: c}, nil
}

// forceReadBuffer sets c's receive buffer past net.core.rmem_max
// (SO_RCVBUFFORCE, needs CAP_NET_ADMIN).
func forceReadBuffer(c *netlink.Conn, n int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
	}); err != nil {
		return err
	}
	return serr
}

// Run calls gone with the original tuple of every TCP connection the
// kernel forgets, in the order the kernel reports them, until ctx is
// cancelled (it returns nil) or the socket fails. When the kernel dropped
// events because they came faster than they were read (ENOBUFS), it calls
// lost and goes on reading: which connections ended is then unknown, and
// the caller must find out another way. Run closes the socket on return.
func (w *DestroyWatcher) Run(ctx context.Context, gone func(Tuple), lost func()) error {
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
		}
		w.Close()
	}()
	for {
		msgs, err := w.c.Receive()
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, unix.ENOBUFS) {
			lost()
			continue
		}
		if err != nil {
			return fmt.Errorf("conntrack destroy events: %w", err)
		}
		for _, m := range msgs {
			var ev ctnl.Event
			if err := ev.Unmarshal(m); err != nil || ev.Type != ctnl.EventDestroy || ev.Flow == nil ||
				ev.Flow.TupleOrig.Proto.Protocol != unix.IPPROTO_TCP {
				continue
			}
			gone(tupleOf(ev.Flow.TupleOrig))
		}
	}
}

// Close closes the socket: a Run in progress returns. It is idempotent.
func (w *DestroyWatcher) Close() error {
	w.closeOnce.Do(func() { w.closeErr = w.c.Close() })
	return w.closeErr
}
