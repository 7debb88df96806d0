package rewrite

import (
	"encoding/binary"
	"net/netip"

	"github.com/ftpct/ftpct/seqnum"
)

// TCP header flag bits (RFC 9293 section 3.1), as in Packet.Flags.
const (
	FlagFIN uint8 = 0x01
	FlagSYN uint8 = 0x02
	FlagRST uint8 = 0x04
	FlagPSH uint8 = 0x08
	FlagACK uint8 = 0x10
	FlagURG uint8 = 0x20
	FlagECE uint8 = 0x40
	FlagCWR uint8 = 0x80
)

// IP protocol / IPv6 next-header numbers (IANA; linux/in.h, linux/in6.h).
const (
	protoHopByHop = 0
	protoTCP      = 6
	protoRouting  = 43
	protoFragment = 44
	protoDstOpts  = 60
)

const (
	ipv4MinHeader = 20
	ipv6Header    = 40
	tcpMinHeader  = 20
	// maxExtHeaders bounds the IPv6 extension header walk.
	maxExtHeaders = 8 // errIPv6TooManyExt names it
)

// Packet holds the decoded fields and offsets of one IPv4 or IPv6 packet carrying TCP. It is
// caller-owned and filled by Decode without allocating; offsets refer into the decoded buffer.
type Packet struct {
	V6               bool
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Seq, Ack         seqnum.Value
	Flags            uint8 // TCP flags byte: FlagFIN, FlagSYN, ...
	IPHeaderLen      int   // bytes before the TCP header: IPv4 IHL*4, IPv6 40 + extension headers
	TCPOff           int   // offset of the TCP header (== IPHeaderLen)
	PayloadOff       int   // offset of the TCP payload
	Len              int   // packet length per the IP header; trailing bytes of b beyond it are ignored
}

// Decode parses the IPv4 or IPv6 packet in b (starting at the IP header) into p. It walks
// IPv6 hop-by-hop, routing and destination options headers; fragments are refused
// (ErrFragment). It never panics and never allocates, also when it fails: its
// errors are fixed values that wrap the package's sentinels; p's offsets satisfy
// TCPOff+20 <= PayloadOff <= Len <= len(b) on success. On error p is undefined.
func Decode(b []byte, p *Packet) error {
	if len(b) < 1 {
		return errEmpty
	}
	var err error
	switch b[0] >> 4 {
	case 4:
		if p.IPHeaderLen, p.Len, err = decodeIPv4(b); err != nil {
			return err
		}
		p.V6, p.Src, p.Dst = false, netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20]))
	case 6:
		if p.IPHeaderLen, p.Len, err = decodeIPv6(b); err != nil {
			return err
		}
		p.V6, p.Src, p.Dst = true, netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40]))
	default:
		return errVersion
	}
	return decodeTCP(b, p)
}

// decodeIPv4 checks the IPv4 header at the start of b and returns its
// length and the packet's total length.
func decodeIPv4(b []byte) (hdrLen, total int, err error) {
	if len(b) < ipv4MinHeader {
		return 0, 0, errIPv4Short
	}
	ihl := int(b[0]&0x0f) * 4
	total = int(binary.BigEndian.Uint16(b[2:]))
	switch {
	case ihl < ipv4MinHeader:
		return 0, 0, errIPv4HeaderLen
	case total < ihl:
		return 0, 0, errIPv4TotalLen
	case total > len(b):
		return 0, 0, errIPv4Truncated
	}
	if b[9] != protoTCP {
		return 0, 0, errIPv4NotTCP
	}
	if frag := binary.BigEndian.Uint16(b[6:]); frag&0x3fff != 0 { // MF bit or fragment offset
		return 0, 0, errIPv4Fragment
	}
	return ihl, total, nil
}

// decodeIPv6 checks the IPv6 header and the extension headers before TCP at
// the start of b and returns their length and the packet's total length.
func decodeIPv6(b []byte) (hdrLen, total int, err error) {
	if len(b) < ipv6Header {
		return 0, 0, errIPv6Short
	}
	plen := int(binary.BigEndian.Uint16(b[4:]))
	if plen == 0 {
		return 0, 0, errIPv6Jumbo
	}
	total = ipv6Header + plen
	if total > len(b) {
		return 0, 0, errIPv6Truncated
	}
	next, off := b[6], ipv6Header
	for i := 0; ; i++ {
		if next == protoTCP {
			break
		}
		if i == maxExtHeaders {
			return 0, 0, errIPv6TooManyExt
		}
		switch next {
		case protoHopByHop:
			if off != ipv6Header {
				return 0, 0, errIPv6HopByHop
			}
		case protoRouting, protoDstOpts:
		case protoFragment:
			return 0, 0, errIPv6Fragment
		default:
			return 0, 0, errIPv6NotTCP
		}
		if off+8 > total {
			return 0, 0, errIPv6ExtShort
		}
		hlen := (int(b[off+1]) + 1) * 8
		if off+hlen > total {
			return 0, 0, errIPv6ExtTruncated
		}
		next = b[off]
		off += hlen
	}
	return off, total, nil
}

func decodeTCP(b []byte, p *Packet) error {
	t := p.IPHeaderLen
	if t+tcpMinHeader > p.Len {
		return errTCPShort
	}
	doff := int(b[t+12]>>4) * 4
	if doff < tcpMinHeader || t+doff > p.Len {
		return errTCPDataOff
	}
	p.TCPOff = t
	p.PayloadOff = t + doff
	p.SrcPort = binary.BigEndian.Uint16(b[t:])
	p.DstPort = binary.BigEndian.Uint16(b[t+2:])
	p.Seq = seqnum.Value(binary.BigEndian.Uint32(b[t+4:]))
	p.Ack = seqnum.Value(binary.BigEndian.Uint32(b[t+8:]))
	p.Flags = b[t+13]
	return nil
}

// Payload returns the TCP payload of the packet p was decoded from: b[p.PayloadOff:p.Len].
// It refers into b.
func (p *Packet) Payload(b []byte) []byte {
	return b[p.PayloadOff:p.Len]
}

// SrcAddrPort returns the sender's address and port.
func (p *Packet) SrcAddrPort() netip.AddrPort { return netip.AddrPortFrom(p.Src, p.SrcPort) }

// DstAddrPort returns the receiver's address and port.
func (p *Packet) DstAddrPort() netip.AddrPort { return netip.AddrPortFrom(p.Dst, p.DstPort) }
