//go:build linux

package conntrack

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	ctnl "github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// Kernel talks to the kernel's conntrack table over ctnetlink.
//
// Lookups do not use ti-mo/conntrack's Conn.Get: recent kernels answer a
// CT_GET with a reply flagged NLM_F_MULTI and end it with an ACK instead of
// NLMSG_DONE, and mdlayher/netlink's Execute then waits for the DONE forever
// (mdlayher/netlink pull request 315). Kernel sends the request itself, reads
// until the ACK, and decodes the entry with ti-mo/conntrack (imported as
// ctnl, to keep it apart from this package).
//
// Requests are serialised on one socket. Close does not wait for them: it
// closes the socket, which ends a read in progress.
type Kernel struct {
	mu     sync.Mutex // serialises requests on c and guards buf
	c      *netlink.Conn
	closed atomic.Bool
	buf    [8192]byte
}

// DialKernel opens a ctnetlink connection in the current network namespace.
func DialKernel() (*Kernel, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, fmt.Errorf("open ctnetlink: %w", err)
	}
	return &Kernel{c: c}, nil
}

// Close closes the connection. It is idempotent and does not wait for a
// request in progress: closing the socket ends its read, and it returns an
// error.
func (k *Kernel) Close() error {
	if !k.closed.CompareAndSwap(false, true) {
		return nil
	}
	return k.c.Close()
}

func tupleOf(t ctnl.Tuple) Tuple {
	return Tuple{Src: t.IP.SourceAddress, Dst: t.IP.DestinationAddress, SrcPort: t.Proto.SourcePort, DstPort: t.Proto.DestinationPort}
}

// ctnetlink attribute types, include/uapi/linux/netfilter/nfnetlink_conntrack.h.
const (
	ctaTupleOrig    = 1  // CTA_TUPLE_ORIG
	ctaTupleIP      = 1  // CTA_TUPLE_IP
	ctaTupleProto   = 2  // CTA_TUPLE_PROTO
	ctaIPv4Src      = 1  // CTA_IP_V4_SRC
	ctaIPv4Dst      = 2  // CTA_IP_V4_DST
	ctaIPv6Src      = 3  // CTA_IP_V6_SRC
	ctaIPv6Dst      = 4  // CTA_IP_V6_DST
	ctaProtoNum     = 1  // CTA_PROTO_NUM
	ctaProtoSrcPort = 2  // CTA_PROTO_SRC_PORT
	ctaProtoDstPort = 3  // CTA_PROTO_DST_PORT
	ctaLabels       = 22 // CTA_LABELS
	ctaLabelsMask   = 23 // CTA_LABELS_MASK
	ctaProtoInfo    = 4  // CTA_PROTOINFO
	ctaProtoInfoTCP = 1  // CTA_PROTOINFO_TCP
	ctaTCPFlagsOrig = 4  // CTA_PROTOINFO_TCP_FLAGS_ORIGINAL
	ctaTCPFlagsRepl = 5  // CTA_PROTOINFO_TCP_FLAGS_REPLY
	ipctnlMsgCtNew  = 0  // IPCTNL_MSG_CT_NEW, cntl_msg_types
	ipctnlMsgCtGet  = 1  // IPCTNL_MSG_CT_GET
)

// LabelsSize is the size of a conntrack entry's labels in bytes
// (NF_CT_LABELS_MAX_SIZE, include/net/netfilter/nf_conntrack_labels.h).
const LabelsSize = 16

func getRequest(t Tuple) (netlink.Message, error) {
	return request(t, ipctnlMsgCtGet, nil)
}

// tcpFlagBeLiberal is IP_CT_TCP_FLAG_BE_LIBERAL
// (include/uapi/linux/netfilter/nf_conntrack_tcp.h): conntrack's TCP window
// tracking accepts every segment of a direction with this flag that its
// window checks would mark INVALID or ignore (nf_tcp_log_invalid in
// net/netfilter/nf_conntrack_proto_tcp.c).
const tcpFlagBeLiberal = 0x08

// liberal sets IP_CT_TCP_FLAG_BE_LIBERAL in both directions and leaves the
// other flags alone: each attribute is a struct nf_ct_tcp_flags {flags,
// mask}, and the kernel changes only the bits in mask (nlattr_to_tcp).
var liberal = netfilter.Attribute{Type: ctaProtoInfo, Nested: true, Children: []netfilter.Attribute{
	{Type: ctaProtoInfoTCP, Nested: true, Children: []netfilter.Attribute{
		{Type: ctaTCPFlagsOrig, Data: []byte{tcpFlagBeLiberal, tcpFlagBeLiberal}},
		{Type: ctaTCPFlagsRepl, Data: []byte{tcpFlagBeLiberal, tcpFlagBeLiberal}},
	}},
}}

// resizedRequest asks the kernel to replace all labels of t's connection
// and to make its TCP window tracking liberal in both directions
// (IPCTNL_MSG_CT_NEW without NLM_F_CREATE updates an existing entry only).
// The kernel applies CTA_PROTOINFO before CTA_LABELS
// (ctnetlink_change_conntrack), so an entry without room for labels still
// becomes liberal.
func resizedRequest(t Tuple, labels [LabelsSize]byte) (netlink.Message, error) {
	mask := [LabelsSize]byte{}
	for i := range mask {
		mask[i] = 0xff
	}
	return request(t, ipctnlMsgCtNew, []netfilter.Attribute{
		liberal,
		{Type: ctaLabels, Data: labels[:]},
		{Type: ctaLabelsMask, Data: mask[:]},
	})
}

// request builds a ctnetlink request of type typ for the connection one of
// whose tuples is t, with the attributes extra after the tuple.
func request(t Tuple, typ uint8, extra []netfilter.Attribute) (netlink.Message, error) {
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
		MessageType: netfilter.MessageType(typ),
		Family:      family,
		Flags:       netlink.Request | netlink.Acknowledge,
	}, append([]netfilter.Attribute{tuple}, extra...))
}

// Lookup returns the binding of the TCP connection one of whose directions is
// t (as the packet carries it before NAT: the kernel finds either direction),
// with its labels. It returns ErrNoEntry when the kernel does not track the
// connection.
func (k *Kernel) Lookup(t Tuple) (Binding, error) {
	req, err := getRequest(t)
	if err != nil {
		return Binding{}, fmt.Errorf("conntrack get %s: %w", t, err)
	}
	var (
		b     Binding
		found bool
	)
	err = k.exchange(req, func(nm netlink.Message) error {
		var ev ctnl.Event
		if err := ev.Unmarshal(nm); err != nil || ev.Flow == nil {
			return fmt.Errorf("decode: %v", err)
		}
		b = Binding{Orig: tupleOf(ev.Flow.TupleOrig), Reply: tupleOf(ev.Flow.TupleReply), Mark: ev.Flow.Mark}
		if tcp := ev.Flow.ProtoInfo.TCP; tcp != nil {
			// ti-mo/conntrack reads struct nf_ct_tcp_flags as a
			// big-endian uint16: flags is its high byte.
			b.Liberal = (tcp.OriginalFlags&tcp.ReplyFlags)>>8&tcpFlagBeLiberal != 0
		}
		// The kernel sends CTA_LABELS only when a bit is set.
		copy(b.Labels[:], ev.Flow.Labels)
		found = true
		return nil
	})
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
// It returns ErrNoLabels when the entry has no room for labels (it was
// created while no rule setting ct labels existed; it is made liberal all
// the same) and ErrNoEntry when the kernel does not track the connection.
func (k *Kernel) SetResized(t Tuple, labels [LabelsSize]byte) error {
	req, err := resizedRequest(t, labels)
	if err != nil {
		return fmt.Errorf("conntrack set resized %s: %w", t, err)
	}
	err = k.exchange(req, func(netlink.Message) error { return nil })
	switch {
	case err == nil, errors.Is(err, ErrNoEntry):
		return err
	case errors.Is(err, unix.ENOSPC):
		return fmt.Errorf("conntrack set resized %s: %w", t, ErrNoLabels)
	default:
		return fmt.Errorf("conntrack set resized %s: %w", t, err)
	}
}

// exchange sends req and passes every answer message to fn until the
// kernel's ACK (or NLMSG_DONE) ends the answer. ENOENT is ErrNoEntry.
func (k *Kernel) exchange(req netlink.Message, fn func(netlink.Message) error) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed.Load() {
		return errClosed
	}
	// A reply that does not come is a kernel or library fault, not a reason
	// to stall the packet path.
	_ = k.c.SetReadDeadline(time.Now().Add(time.Second))
	req, err := k.c.Send(req) // Send fills in the sequence number
	if err != nil {
		return k.failed(err)
	}
	rc, err := k.c.SyscallConn()
	if err != nil {
		return k.failed(err)
	}
	buf := k.buf[:]
	for {
		var n int
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), buf, 0)
			return rerr != unix.EAGAIN && rerr != unix.EWOULDBLOCK
		}); err != nil {
			return k.failed(err)
		}
		if rerr != nil {
			return k.failed(rerr)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Header.Seq != req.Header.Sequence {
				continue // a stale answer to an earlier, timed-out request
			}
			switch m.Header.Type {
			case unix.NLMSG_ERROR:
				if len(m.Data) < 4 {
					return errors.New("short error message")
				}
				if errno := -int32(nativeEndian.Uint32(m.Data[:4])); errno != 0 {
					if syscall.Errno(errno) == unix.ENOENT {
						return ErrNoEntry
					}
					return syscall.Errno(errno)
				}
				return nil // the ACK ends the answer
			case unix.NLMSG_DONE:
				return nil
			}
			nm := netlink.Message{Header: netlink.Header{Length: m.Header.Len, Type: netlink.HeaderType(m.Header.Type),
				Flags: netlink.HeaderFlags(m.Header.Flags), Sequence: m.Header.Seq, PID: m.Header.Pid}, Data: m.Data}
			if err := fn(nm); err != nil {
				return err
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

// nativeEndian is the byte order of netlink headers and error codes.
var nativeEndian = binary.NativeEndian

// WatchNew calls fn for every new TCP connection whose conntrack mark has all
// bits of mark set, until ctx is cancelled or the event socket fails. It
// opens its own event socket.
func WatchNew(ctx context.Context, mark uint32, fn func(Binding)) error {
	c, err := ctnl.Dial(nil)
	if err != nil {
		return fmt.Errorf("open ctnetlink events: %w", err)
	}
	_ = c.SetReadBuffer(4 << 20)
	// Lost events only delay bookkeeping (expectations also expire); keep reading.
	_ = c.SetOption(netlink.NoENOBUFS, true)
	evCh := make(chan ctnl.Event, 256)
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
