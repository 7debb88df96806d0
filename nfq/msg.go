package nfq

import (
	"encoding/binary"
	"fmt"
	"syscall"

	"github.com/ftpct/ftpct/internal/nlmsg"

	"github.com/mdlayher/netlink"
)

// The subset of the nfnetlink_queue protocol that nfq speaks. Netlink and
// attribute headers are in host byte order, nfnetlink_queue's own fields in
// network byte order.
const (
	// include/uapi/linux/netlink.h
	nlmsgHdrLen  = 16     // struct nlmsghdr
	nlaHdrLen    = 4      // struct nlattr
	nlaTypeMask  = 0x3fff // ^(NLA_F_NESTED | NLA_F_NET_BYTEORDER)
	nlmFRequest  = 0x1    // NLM_F_REQUEST
	nlmsgError   = 0x2    // NLMSG_ERROR
	nlmsgErrLen  = 4      // struct nlmsgerr's int error, before the echoed header
	nfgenHdrLen  = 4      // struct nfgenmsg (include/uapi/linux/netfilter/nfnetlink.h)
	nfnetlinkV0  = 0      // NFNETLINK_V0
	subsysQueue  = 3      // NFNL_SUBSYS_QUEUE (include/uapi/linux/netfilter/nfnetlink.h)
	msgPacket    = 0      // NFQNL_MSG_PACKET (include/uapi/linux/netfilter/nfnetlink_queue.h)
	msgVerdict   = 1      // NFQNL_MSG_VERDICT
	msgConfig    = 2      // NFQNL_MSG_CONFIG
	typePacket   = subsysQueue<<8 | msgPacket
	typeVerdict  = subsysQueue<<8 | msgVerdict
	typeConfig   = subsysQueue<<8 | msgConfig
	attrPktHdr   = 1  // NFQA_PACKET_HDR: struct nfqnl_msg_packet_hdr
	attrVerdict  = 2  // NFQA_VERDICT_HDR: struct nfqnl_msg_verdict_hdr
	attrMark     = 3  // NFQA_MARK: __be32 packet mark (sent when non-zero; a verdict's sets it)
	attrPayload  = 10 // NFQA_PAYLOAD
	pktHdrLen    = 7  // __be32 packet_id, __be16 hw_protocol, __u8 hook (packed)
	cfgCmd       = 1  // NFQA_CFG_CMD: struct nfqnl_msg_config_cmd
	cfgParams    = 2  // NFQA_CFG_PARAMS: struct nfqnl_msg_config_params
	cfgQueueLen  = 3  // NFQA_CFG_QUEUE_MAXLEN: __be32
	cfgCmdBind   = 1  // NFQNL_CFG_CMD_BIND
	copyPacket   = 2  // NFQNL_COPY_PACKET
	maxCopyRange = 0xffff
	// include/uapi/linux/netfilter.h
	nfDrop   = 0 // NF_DROP
	nfAccept = 1 // NF_ACCEPT
	nfRepeat = 4 // NF_REPEAT
	// verdictLen is a verdict message without a payload.
	verdictLen = nlmsgHdrLen + nfgenHdrLen + nlaHdrLen + 8
	// recvBufLen holds the largest message the kernel sends us: a copied
	// packet of up to maxCopyRange bytes plus headers and the few metadata
	// attributes (interfaces, hardware address, mark, timestamp, ...).
	recvBufLen = 1 << 17
)

// nlHeader is a struct nlmsghdr.
type nlHeader = nlmsg.Header

// nextMessage splits the first netlink message off datagram b (nlmsg.Next).
func nextMessage(b []byte) (nlHeader, []byte, []byte, error) { return nlmsg.Next(b, errMalformed) }

// parseError returns the errno carried by an NLMSG_ERROR body: 0 for an
// acknowledgement (nlmsg.ParseError).
func parseError(body []byte) (syscall.Errno, error) { return nlmsg.ParseError(body, errMalformed) }

// parsePacket decodes the body of an NFQNL_MSG_PACKET. Data points into body.
func parsePacket(body []byte) (Packet, error) {
	var p Packet
	if len(body) < nfgenHdrLen {
		return p, fmt.Errorf("%w: packet message of %d bytes", errMalformed, len(body))
	}
	haveHdr := false
	for b := body[nfgenHdrLen:]; len(b) > 0; {
		if len(b) < nlaHdrLen {
			return p, fmt.Errorf("%w: %d trailing bytes", errMalformed, len(b))
		}
		l := int(binary.NativeEndian.Uint16(b))
		if l < nlaHdrLen || l > len(b) {
			return p, fmt.Errorf("%w: attribute length %d with %d bytes left", errMalformed, l, len(b))
		}
		v := b[nlaHdrLen:l]
		switch binary.NativeEndian.Uint16(b[2:]) & nlaTypeMask {
		case attrPktHdr:
			if len(v) < pktHdrLen {
				return p, fmt.Errorf("%w: packet header of %d bytes", errMalformed, len(v))
			}
			p.ID = binary.BigEndian.Uint32(v)
			p.Hook = v[6]
			haveHdr = true
		case attrPayload:
			p.Data = v
		case attrMark:
			if len(v) < 4 {
				return p, fmt.Errorf("%w: mark of %d bytes", errMalformed, len(v))
			}
			p.Mark = binary.BigEndian.Uint32(v)
		}
		b = b[min(align4(l), len(b)):]
	}
	if !haveHdr {
		return p, fmt.Errorf("%w: packet without NFQA_PACKET_HDR", errMalformed)
	}
	return p, nil
}

// appendVerdict appends an NFQNL_MSG_VERDICT for packet id of queue to dst:
// accept, drop or repeat, with payload replacing the packet when it is not
// nil (never with Repeat). With setMark, the packet mark is set to mark
// (NFQA_MARK).
func appendVerdict(dst []byte, queue uint16, id uint32, v Verdict, mark uint32, setMark bool, payload []byte) []byte {
	if v == Repeat || v == Drop {
		payload = nil
	}
	n := verdictLen
	if setMark {
		n += nlaHdrLen + 4
	}
	if payload != nil {
		n += nlaHdrLen + len(payload)
	}
	dst = binary.NativeEndian.AppendUint32(dst, uint32(n))
	dst = binary.NativeEndian.AppendUint16(dst, typeVerdict)
	dst = binary.NativeEndian.AppendUint16(dst, nlmFRequest)
	// The kernel echoes the sequence number in the error it sends when a
	// verdict fails: the packet id makes that error traceable.
	dst = binary.NativeEndian.AppendUint32(dst, id)
	dst = binary.NativeEndian.AppendUint32(dst, 0) // to the kernel
	dst = append(dst, 0 /* AF_UNSPEC */, nfnetlinkV0)
	dst = binary.BigEndian.AppendUint16(dst, queue)
	dst = binary.NativeEndian.AppendUint16(dst, nlaHdrLen+8)
	dst = binary.NativeEndian.AppendUint16(dst, attrVerdict)
	verdict := uint32(nfAccept)
	switch v {
	case Drop:
		verdict = nfDrop
	case Repeat:
		verdict = nfRepeat
	}
	dst = binary.BigEndian.AppendUint32(dst, verdict)
	dst = binary.BigEndian.AppendUint32(dst, id)
	if setMark {
		dst = binary.NativeEndian.AppendUint16(dst, nlaHdrLen+4)
		dst = binary.NativeEndian.AppendUint16(dst, attrMark)
		dst = binary.BigEndian.AppendUint32(dst, mark)
	}
	if payload != nil {
		dst = binary.NativeEndian.AppendUint16(dst, uint16(nlaHdrLen+len(payload)))
		dst = binary.NativeEndian.AppendUint16(dst, attrPayload)
		dst = append(dst, payload...)
		// The message length excludes the final padding (netlink.h:
		// NLMSG_LENGTH); a following message would start aligned.
		for len(dst)%4 != 0 {
			dst = append(dst, 0)
		}
	}
	return dst
}

// configMessage is the one NFQNL_MSG_CONFIG that binds queue, asks for
// whole packets and sets the kernel's queue length. The kernel handles the
// command before the parameters (nfqnl_recv_config,
// net/netfilter/nfnetlink_queue.c), so one message does it all and one
// acknowledgement answers it. It is built once per Open, with the netlink
// library.
func configMessage(seq uint32, queue uint16, maxQueueLen uint32) ([]byte, error) {
	ae := netlink.NewAttributeEncoder()
	// struct nfqnl_msg_config_cmd: u8 command, u8 pad, __be16 pf (unused
	// by BIND since Linux 3.8).
	ae.Bytes(cfgCmd, []byte{cfgCmdBind, 0, 0, 0})
	params := binary.BigEndian.AppendUint32(nil, maxCopyRange)
	ae.Bytes(cfgParams, append(params, copyPacket)) // packed: 5 bytes
	ae.Bytes(cfgQueueLen, binary.BigEndian.AppendUint32(nil, maxQueueLen))
	attrs, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	data := append([]byte{0 /* AF_UNSPEC */, nfnetlinkV0}, binary.BigEndian.AppendUint16(nil, queue)...)
	m := netlink.Message{
		Header: netlink.Header{
			Type:     typeConfig,
			Flags:    netlink.Request | netlink.Acknowledge,
			Sequence: seq,
		},
		Data: append(data, attrs...),
	}
	m.Header.Length = uint32(nlmsgHdrLen + len(m.Data))
	return m.MarshalBinary()
}

func align4(n int) int { return nlmsg.Align4(n) }
