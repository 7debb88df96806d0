//go:build linux

package conntrack

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// Kernel talks to the kernel's conntrack table over ctnetlink.
//
// Lookups do not use ti-mo/conntrack's Conn.Get: recent kernels answer a
// CT_GET with a reply flagged NLM_F_MULTI and end it with an ACK instead of
// NLMSG_DONE, and mdlayher/netlink's Execute then waits for the DONE forever
// (mdlayher/netlink pull request 315). Kernel sends the request itself, reads
// until the ACK, and decodes the entry with ti-mo/conntrack.
type Kernel struct {
	mu sync.Mutex
	c  *netlink.Conn
}

// DialKernel opens a ctnetlink connection in the current network namespace.
func DialKernel() (*Kernel, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
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

// ctnetlink attribute types, include/uapi/linux/netfilter/nfnetlink_conntrack.h.
const (
	ctaTupleOrig    = 1 // CTA_TUPLE_ORIG
	ctaTupleIP      = 1 // CTA_TUPLE_IP
	ctaTupleProto   = 2 // CTA_TUPLE_PROTO
	ctaIPv4Src      = 1 // CTA_IP_V4_SRC
	ctaIPv4Dst      = 2 // CTA_IP_V4_DST
	ctaIPv6Src      = 3 // CTA_IP_V6_SRC
	ctaIPv6Dst      = 4 // CTA_IP_V6_DST
	ctaProtoNum     = 1 // CTA_PROTO_NUM
	ctaProtoSrcPort = 2 // CTA_PROTO_SRC_PORT
	ctaProtoDstPort = 3 // CTA_PROTO_DST_PORT
	ipctnlMsgCtGet  = 1 // IPCTNL_MSG_CT_GET, cntl_msg_types
)

func getRequest(t Tuple) (netlink.Message, error) {
	family := netfilter.ProtoIPv4
	srcType, dstType := uint16(ctaIPv4Src), uint16(ctaIPv4Dst)
	src, dst := t.Src.Unmap(), t.Dst.Unmap()
	if !src.Is4() {
		family = netfilter.ProtoIPv6
		srcType, dstType = ctaIPv6Src, ctaIPv6Dst
	}
	tuple := netfilter.Attribute{Type: ctaTupleOrig, Nested: true, Children: []netfilter.Attribute{
		{Type: ctaTupleIP, Nested: true, Children: []netfilter.Attribute{
			{Type: srcType, Data: src.AsSlice()},
			{Type: dstType, Data: dst.AsSlice()},
		}},
		{Type: ctaTupleProto, Nested: true, Children: []netfilter.Attribute{
			{Type: ctaProtoNum, Data: []byte{unix.IPPROTO_TCP}},
			{Type: ctaProtoSrcPort, Data: netfilter.Uint16Bytes(t.SrcPort)},
			{Type: ctaProtoDstPort, Data: netfilter.Uint16Bytes(t.DstPort)},
		}},
	}}
	return netfilter.MarshalNetlink(netfilter.Header{
		SubsystemID: netfilter.NFSubsysCTNetlink,
		MessageType: netfilter.MessageType(ipctnlMsgCtGet),
		Family:      family,
		Flags:       netlink.Request | netlink.Acknowledge,
	}, []netfilter.Attribute{tuple})
}

// Lookup returns the binding of the TCP connection one of whose directions is
// t (as the packet carries it before NAT: the kernel finds either direction).
// It returns ErrNoEntry when the kernel does not track the connection.
func (k *Kernel) Lookup(t Tuple) (Binding, error) {
	req, err := getRequest(t)
	if err != nil {
		return Binding{}, fmt.Errorf("conntrack get %s: %w", t, err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.c == nil {
		return Binding{}, errClosed
	}
	// A reply that does not come is a kernel or library fault, not a reason
	// to stall the packet path.
	_ = k.c.SetReadDeadline(time.Now().Add(time.Second))
	req, err = k.c.Send(req) // Send fills in the sequence number
	if err != nil {
		return Binding{}, fmt.Errorf("conntrack get %s: %w", t, err)
	}
	rc, err := k.c.SyscallConn()
	if err != nil {
		return Binding{}, fmt.Errorf("conntrack get %s: %w", t, err)
	}
	var (
		b     Binding
		found bool
		buf   = make([]byte, 8192)
	)
	for {
		var n int
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), buf, 0)
			return rerr != unix.EAGAIN && rerr != unix.EWOULDBLOCK
		}); err != nil {
			return Binding{}, fmt.Errorf("conntrack get %s: %w", t, err)
		}
		if rerr != nil {
			return Binding{}, fmt.Errorf("conntrack get %s: %w", t, rerr)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return Binding{}, fmt.Errorf("conntrack get %s: %w", t, err)
		}
		for _, m := range msgs {
			if m.Header.Seq != req.Header.Sequence {
				continue // a stale answer to an earlier, timed-out request
			}
			switch m.Header.Type {
			case unix.NLMSG_ERROR:
				if len(m.Data) < 4 {
					return Binding{}, fmt.Errorf("conntrack get %s: short error message", t)
				}
				if errno := -int32(nativeEndian.Uint32(m.Data[:4])); errno != 0 {
					if syscall.Errno(errno) == unix.ENOENT {
						return Binding{}, ErrNoEntry
					}
					return Binding{}, fmt.Errorf("conntrack get %s: %w", t, syscall.Errno(errno))
				}
				if !found {
					return Binding{}, ErrNoEntry
				}
				return b, nil // the ACK ends the answer
			case unix.NLMSG_DONE:
				if !found {
					return Binding{}, ErrNoEntry
				}
				return b, nil
			}
			var ev ct.Event
			nm := netlink.Message{Header: netlink.Header{Length: m.Header.Len, Type: netlink.HeaderType(m.Header.Type),
				Flags: netlink.HeaderFlags(m.Header.Flags), Sequence: m.Header.Seq, PID: m.Header.Pid}, Data: m.Data}
			if err := ev.Unmarshal(nm); err != nil || ev.Flow == nil {
				return Binding{}, fmt.Errorf("conntrack get %s: decode: %v", t, err)
			}
			b = Binding{Orig: tupleOf(ev.Flow.TupleOrig), Reply: tupleOf(ev.Flow.TupleReply), Mark: ev.Flow.Mark}
			found = true
		}
	}
}

var errClosed = errors.New("conntrack connection closed")

// nativeEndian is the byte order of netlink headers and error codes.
var nativeEndian = binary.NativeEndian

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
