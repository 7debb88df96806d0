//go:build linux

package conntrack

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// Kernel talks to the kernel's conntrack table over ctnetlink.
type Kernel struct {
	mu sync.Mutex
	c  *ct.Conn
}

// DialKernel opens a ctnetlink connection in the current network namespace.
func DialKernel() (*Kernel, error) {
	c, err := ct.Dial(nil)
	if err != nil {
		return nil, fmt.Errorf("open ctnetlink: %w", err)
	}
	return &Kernel{c: c}, nil
}

// Close closes the connection.
func (k *Kernel) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.c == nil {
		return nil
	}
	err := k.c.Close()
	k.c = nil
	return err
}

func tupleOf(t ct.Tuple) Tuple {
	return Tuple{Src: t.IP.SourceAddress, Dst: t.IP.DestinationAddress, SrcPort: t.Proto.SourcePort, DstPort: t.Proto.DestinationPort}
}

// Lookup returns the binding of the TCP connection one of whose directions is
// t (as the packet carries it before NAT: the kernel finds either direction).
// It returns ErrNoEntry when the kernel does not track the connection.
func (k *Kernel) Lookup(t Tuple) (Binding, error) {
	var q ct.Flow
	q.TupleOrig.IP.SourceAddress = t.Src
	q.TupleOrig.IP.DestinationAddress = t.Dst
	q.TupleOrig.Proto.Protocol = unix.IPPROTO_TCP
	q.TupleOrig.Proto.SourcePort = t.SrcPort
	q.TupleOrig.Proto.DestinationPort = t.DstPort
	k.mu.Lock()
	if k.c == nil {
		k.mu.Unlock()
		return Binding{}, errClosed
	}
	f, err := k.c.Get(q)
	k.mu.Unlock()
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return Binding{}, ErrNoEntry
		}
		return Binding{}, fmt.Errorf("conntrack get %s: %w", t, err)
	}
	return Binding{Orig: tupleOf(f.TupleOrig), Reply: tupleOf(f.TupleReply), Mark: f.Mark}, nil
}

var errClosed = errors.New("conntrack connection closed")

// WatchNew calls fn for every new TCP connection whose conntrack mark has all
// bits of mark set, until ctx is cancelled or the event socket fails. It
// opens its own event socket.
func WatchNew(ctx context.Context, mark uint32, fn func(Binding)) error {
	c, err := ct.Dial(nil)
	if err != nil {
		return fmt.Errorf("open ctnetlink events: %w", err)
	}
	_ = c.SetReadBuffer(4 << 20)
	// Lost events only delay bookkeeping (expectations also expire); keep reading.
	_ = c.SetOption(netlink.NoENOBUFS, true)
	evCh := make(chan ct.Event, 256)
	errCh, err := c.Listen(evCh, 1, []netfilter.NetlinkGroup{netfilter.GroupCTNew})
	if err != nil {
		c.Close()
		return fmt.Errorf("listen for conntrack events: %w", err)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
		}
		c.Close()
	}()
	defer close(done)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errCh:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("conntrack events: %w", err)
		case ev := <-evCh:
			if ev.Flow == nil || ev.Flow.TupleOrig.Proto.Protocol != unix.IPPROTO_TCP || ev.Flow.Mark&mark != mark {
				continue
			}
			fn(Binding{Orig: tupleOf(ev.Flow.TupleOrig), Reply: tupleOf(ev.Flow.TupleReply), Mark: ev.Flow.Mark})
		}
	}
}
