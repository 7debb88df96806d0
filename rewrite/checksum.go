package rewrite

import "encoding/binary"

// sum returns the RFC 1071 ones'-complement sum of b (an odd last byte is padded with zero)
// added to initial, folded to 16 bits. The result is never 0 unless all inputs are 0.
func sum(initial uint32, b []byte) uint16 {
	acc := uint64(initial)
	for len(b) >= 8 {
		acc += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:]))
		b = b[8:]
	}
	if len(b) >= 4 {
		acc += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		acc += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint64(b[0]) << 8
	}
	return fold(acc)
}

// fold reduces a wide ones'-complement accumulator to 16 bits with end-around carry.
func fold(acc uint64) uint16 {
	for acc > 0xffff {
		acc = (acc >> 16) + (acc & 0xffff)
	}
	return uint16(acc)
}

// add16 is ones'-complement addition of 16-bit values.
func add16(a, b uint16) uint16 { return fold(uint64(a) + uint64(b)) }

// pseudoSum returns the ones'-complement sum of the TCP pseudo-header (RFC 9293 3.1 for IPv4,
// RFC 8200 8.1 for IPv6) using the addresses of the IP header, for a TCP length tcpLen.
func pseudoSum(b []byte, p *Packet, tcpLen int) uint16 {
	var s uint16
	if p.V6 {
		s = sum(0, b[8:40])
	} else {
		s = sum(0, b[12:20])
	}
	return add16(s, fold(uint64(protoTCP)+uint64(tcpLen)))
}

// TCPChecksum computes the TCP checksum of the decoded packet in b from scratch, with the
// pseudo-header built from the IP header's addresses. For IPv6 with a routing header the RFC
// pseudo-header uses the final destination instead; Rewrite does not depend on this function
// (it carries the pseudo-header sum over from the original checksum).
func TCPChecksum(b []byte, p *Packet) uint16 {
	seg := b[p.TCPOff:p.Len]
	s := add16(pseudoSum(b, p, len(seg)), sum(0, seg[:16]))
	return ^add16(s, sum(0, seg[18:]))
}

// ValidTCPChecksum reports whether the TCP checksum of the decoded packet in b is right
// (pseudo-header from the IP header's addresses, see TCPChecksum).
func ValidTCPChecksum(b []byte, p *Packet) bool {
	return add16(pseudoSum(b, p, p.Len-p.TCPOff), sum(0, b[p.TCPOff:p.Len])) == 0xffff
}

// IPv4HeaderChecksum computes the IPv4 header checksum of hdr (the header only, IHL*4 bytes),
// treating the checksum field as zero.
func IPv4HeaderChecksum(hdr []byte) uint16 {
	return ^add16(sum(0, hdr[:10]), sum(0, hdr[12:]))
}
