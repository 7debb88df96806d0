//go:build linux

package conntrack

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/ftpct/ftpct/internal/nlmsg"
)

// The subset of ctnetlink that Kernel writes and reads by hand, into buffers
// it keeps: netlink and attribute headers are in host byte order, ports in
// network byte order (include/uapi/linux/netlink.h,
// include/uapi/linux/netfilter/nfnetlink.h).
const (
	nlmsgHdrLen   = 16     // struct nlmsghdr
	nlaHdrLen     = 4      // struct nlattr
	nlaFNested    = 0x8000 // NLA_F_NESTED
	nlaTypeMask   = 0x3fff // ^(NLA_F_NESTED | NLA_F_NET_BYTEORDER)
	nlmFRequest   = 0x1    // NLM_F_REQUEST
	nlmFAck       = 0x4    // NLM_F_ACK
	nlmsgError    = 0x2    // NLMSG_ERROR
	nlmsgDone     = 0x3    // NLMSG_DONE
	nfgenHdrLen   = 4      // struct nfgenmsg
	nfnetlinkV0   = 0      // NFNETLINK_V0
	subsysCT      = 1      // NFNL_SUBSYS_CTNETLINK
	afINET        = 2      // AF_INET
	afINET6       = 10     // AF_INET6
	ipprotoTCP    = 6      // IPPROTO_TCP
	ctaTupleReply = 2      // CTA_TUPLE_REPLY
	ctaMark       = 8      // CTA_MARK: __be32
	// maxRequestLen bounds a request Kernel builds: an IPv6 tuple,
	// CTA_PROTOINFO and two label attributes come to 152 bytes.
	maxRequestLen = 256
)

// appendRequest appends to dst a ctnetlink request of type typ with
// sequence number seq for the connection one of whose tuples is t: the
// tuple as CTA_TUPLE_ORIG. The caller appends the other attributes and then
// calls finishMessage with the start of the message.
func appendRequest(dst []byte, typ uint8, seq uint32, t Tuple) []byte {
	family := byte(afINET)
	srcType, dstType := uint16(ctaIPv4Src), uint16(ctaIPv4Dst)
	src, dst16 := t.Src.Unmap(), t.Dst.Unmap()
	if !src.Is4() {
		family = afINET6
		srcType, dstType = ctaIPv6Src, ctaIPv6Dst
	}
	dst = binary.NativeEndian.AppendUint32(dst, 0) // length, set by finishMessage
	dst = binary.NativeEndian.AppendUint16(dst, subsysCT<<8|uint16(typ))
	dst = binary.NativeEndian.AppendUint16(dst, nlmFRequest|nlmFAck)
	dst = binary.NativeEndian.AppendUint32(dst, seq)
	dst = binary.NativeEndian.AppendUint32(dst, 0) // to the kernel
	dst = append(dst, family, nfnetlinkV0, 0, 0)   // res_id 0
	tuple := len(dst)
	dst = appendNestStart(dst, ctaTupleOrig)
	ip := len(dst)
	dst = appendNestStart(dst, ctaTupleIP)
	if family == afINET {
		a, b := src.As4(), dst16.As4()
		dst = appendAttr(dst, srcType, a[:])
		dst = appendAttr(dst, dstType, b[:])
	} else {
		a, b := src.As16(), dst16.As16()
		dst = appendAttr(dst, srcType, a[:])
		dst = appendAttr(dst, dstType, b[:])
	}
	dst = nestEnd(dst, ip)
	proto := len(dst)
	dst = appendNestStart(dst, ctaTupleProto)
	dst = appendAttr(dst, ctaProtoNum, []byte{ipprotoTCP})
	var port [2]byte
	binary.BigEndian.PutUint16(port[:], t.SrcPort)
	dst = appendAttr(dst, ctaProtoSrcPort, port[:])
	binary.BigEndian.PutUint16(port[:], t.DstPort)
	dst = appendAttr(dst, ctaProtoDstPort, port[:])
	dst = nestEnd(dst, proto)
	return nestEnd(dst, tuple)
}

// appendResized appends the request SetResized sends (resizedRequest's
// documentation in kernel_linux.go): t's tuple, both directions liberal, and
// all label bits replaced by labels.
func appendResized(dst []byte, seq uint32, t Tuple, labels *[LabelsSize]byte) []byte {
	start := len(dst)
	dst = appendRequest(dst, ipctnlMsgCtNew, seq, t)
	info := len(dst)
	dst = appendNestStart(dst, ctaProtoInfo)
	tcp := len(dst)
	dst = appendNestStart(dst, ctaProtoInfoTCP)
	// struct nf_ct_tcp_flags {flags, mask}: only the bits in mask change.
	dst = appendAttr(dst, ctaTCPFlagsOrig, []byte{tcpFlagBeLiberal, tcpFlagBeLiberal})
	dst = appendAttr(dst, ctaTCPFlagsRepl, []byte{tcpFlagBeLiberal, tcpFlagBeLiberal})
	dst = nestEnd(dst, tcp)
	dst = nestEnd(dst, info)
	dst = appendAttr(dst, ctaLabels, labels[:])
	dst = binary.NativeEndian.AppendUint16(dst, nlaHdrLen+LabelsSize)
	dst = binary.NativeEndian.AppendUint16(dst, ctaLabelsMask)
	for range LabelsSize {
		dst = append(dst, 0xff)
	}
	return finishMessage(dst, start)
}

// appendGet appends a CT_GET request for the connection one of whose
// tuples is t.
func appendGet(dst []byte, seq uint32, t Tuple) []byte {
	start := len(dst)
	return finishMessage(appendRequest(dst, ipctnlMsgCtGet, seq, t), start)
}

// finishMessage sets the length of the netlink message that starts at
// dst[start].
func finishMessage(dst []byte, start int) []byte {
	binary.NativeEndian.PutUint32(dst[start:], uint32(len(dst)-start))
	return dst
}

// appendAttr appends an attribute, padded to four bytes. The compiler keeps
// small literal slices passed here on the stack.
func appendAttr(dst []byte, typ uint16, v []byte) []byte {
	dst = binary.NativeEndian.AppendUint16(dst, uint16(nlaHdrLen+len(v)))
	dst = binary.NativeEndian.AppendUint16(dst, typ)
	dst = append(dst, v...)
	for len(dst)%4 != 0 {
		dst = append(dst, 0)
	}
	return dst
}

// appendNestStart appends the header of a nested attribute; nestEnd sets
// its length once its children are appended.
func appendNestStart(dst []byte, typ uint16) []byte {
	dst = binary.NativeEndian.AppendUint16(dst, 0)
	return binary.NativeEndian.AppendUint16(dst, typ|nlaFNested)
}

func nestEnd(dst []byte, start int) []byte {
	binary.NativeEndian.PutUint16(dst[start:], uint16(len(dst)-start))
	return dst
}

// nlHeader is a struct nlmsghdr.
type nlHeader = nlmsg.Header

// nextMessage splits the first netlink message off datagram b (nlmsg.Next).
func nextMessage(b []byte) (nlHeader, []byte, []byte, error) { return nlmsg.Next(b, errMalformed) }

func align4(n int) int { return nlmsg.Align4(n) }

// parseError returns the errno carried by an NLMSG_ERROR body: 0 for an
// acknowledgement (nlmsg.ParseError).
func parseError(body []byte) (syscall.Errno, error) { return nlmsg.ParseError(body, errMalformed) }

// nextAttr splits the first attribute off b: its type without the
// NLA_F_NESTED and NLA_F_NET_BYTEORDER flags, its value and what follows.
func nextAttr(b []byte) (typ uint16, v, rest []byte, err error) {
	if len(b) < nlaHdrLen {
		return 0, nil, nil, fmt.Errorf("%w: %d trailing bytes", errMalformed, len(b))
	}
	l := int(binary.NativeEndian.Uint16(b))
	if l < nlaHdrLen || l > len(b) {
		return 0, nil, nil, fmt.Errorf("%w: attribute length %d with %d bytes left", errMalformed, l, len(b))
	}
	return binary.NativeEndian.Uint16(b[2:]) & nlaTypeMask, b[nlaHdrLen:l], b[min(align4(l), len(b)):], nil
}

// decodeFlow decodes the body of a ctnetlink message that describes a
// connection (the answer to CT_GET) in place: its tuples, mark, labels
// (zero when the kernel sends none: it omits CTA_LABELS when no bit is set)
// and whether its TCP window tracking is liberal in both directions; and
// the protocol of its original tuple (CTA_PROTO_NUM, 0 when absent).
func decodeFlow(body []byte) (b Binding, proto uint8, err error) {
	if len(body) < nfgenHdrLen {
		return b, 0, fmt.Errorf("%w: conntrack message of %d bytes", errMalformed, len(body))
	}
	var haveOrig, haveReply bool
	for a := body[nfgenHdrLen:]; len(a) > 0; {
		typ, v, rest, err := nextAttr(a)
		if err != nil {
			return b, 0, err
		}
		a = rest
		switch typ {
		case ctaTupleOrig:
			b.Orig, proto, err = decodeTuple(v)
			haveOrig = true
		case ctaTupleReply:
			b.Reply, _, err = decodeTuple(v)
			haveReply = true
		case ctaMark:
			if len(v) != 4 {
				return b, 0, fmt.Errorf("%w: mark of %d bytes", errMalformed, len(v))
			}
			b.Mark = binary.BigEndian.Uint32(v)
		case ctaLabels:
			copy(b.Labels[:], v)
		case ctaProtoInfo:
			b.Liberal, err = decodeLiberal(v)
		}
		if err != nil {
			return b, 0, err
		}
	}
	if !haveOrig || !haveReply {
		return b, 0, fmt.Errorf("%w: conntrack message without both tuples", errMalformed)
	}
	return b, proto, nil
}

// decodeTuple decodes the value of CTA_TUPLE_ORIG or CTA_TUPLE_REPLY, and
// its protocol number.
func decodeTuple(b []byte) (t Tuple, proto uint8, err error) {
	for len(b) > 0 {
		typ, v, rest, err := nextAttr(b)
		if err != nil {
			return t, 0, err
		}
		b = rest
		switch typ {
		case ctaTupleIP:
			for len(v) > 0 {
				typ, a, rest, err := nextAttr(v)
				if err != nil {
					return t, 0, err
				}
				v = rest
				switch {
				case (typ == ctaIPv4Src || typ == ctaIPv4Dst) && len(a) == 4:
					addr := netip.AddrFrom4([4]byte(a))
					if typ == ctaIPv4Src {
						t.Src = addr
					} else {
						t.Dst = addr
					}
				case (typ == ctaIPv6Src || typ == ctaIPv6Dst) && len(a) == 16:
					addr := netip.AddrFrom16([16]byte(a))
					if typ == ctaIPv6Src {
						t.Src = addr
					} else {
						t.Dst = addr
					}
				case typ >= ctaIPv4Src && typ <= ctaIPv6Dst:
					return t, 0, fmt.Errorf("%w: address attribute %d of %d bytes", errMalformed, typ, len(a))
				}
			}
		case ctaTupleProto:
			for len(v) > 0 {
				typ, a, rest, err := nextAttr(v)
				if err != nil {
					return t, 0, err
				}
				v = rest
				if typ == ctaProtoNum && len(a) == 1 {
					proto = a[0]
					continue
				}
				if typ != ctaProtoSrcPort && typ != ctaProtoDstPort {
					continue
				}
				if len(a) != 2 {
					return t, 0, fmt.Errorf("%w: port attribute %d of %d bytes", errMalformed, typ, len(a))
				}
				if typ == ctaProtoSrcPort {
					t.SrcPort = binary.BigEndian.Uint16(a)
				} else {
					t.DstPort = binary.BigEndian.Uint16(a)
				}
			}
		}
	}
	return t, proto, nil
}

// decodeLiberal reports whether the value of CTA_PROTOINFO sets
// IP_CT_TCP_FLAG_BE_LIBERAL in both directions: each of
// CTA_PROTOINFO_TCP_FLAGS_ORIGINAL and _REPLY is a struct nf_ct_tcp_flags
// {flags, mask}.
func decodeLiberal(b []byte) (bool, error) {
	var orig, reply byte
	for len(b) > 0 {
		typ, v, rest, err := nextAttr(b)
		if err != nil {
			return false, err
		}
		b = rest
		if typ != ctaProtoInfoTCP {
			continue
		}
		for len(v) > 0 {
			typ, a, rest, err := nextAttr(v)
			if err != nil {
				return false, err
			}
			v = rest
			if typ != ctaTCPFlagsOrig && typ != ctaTCPFlagsRepl {
				continue
			}
			if len(a) != 2 {
				return false, fmt.Errorf("%w: TCP flags attribute %d of %d bytes", errMalformed, typ, len(a))
			}
			if typ == ctaTCPFlagsOrig {
				orig = a[0]
			} else {
				reply = a[0]
			}
		}
	}
	return orig&reply&tcpFlagBeLiberal != 0, nil
}
