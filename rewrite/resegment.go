package rewrite

import (
	"encoding/binary"
	"fmt"

	"github.com/ftpct/ftpct/seqnum"
)

// Resegment builds into dst (append-style, like Rewrite) a packet with pkt's IP and
// TCP headers, sequence number seq and the payload head followed by tail, with
// lengths and checksums set as a sender would have set them, and fills q with its
// decoded offsets. The engine uses it to emit a segment without the bytes of a
// line it holds back (head only), and later to emit those bytes together with the
// rest of the line (head = held bytes, tail = the new segment's payload).
//
// A packet longer than pkt gets the IPv4 Don't Fragment bit cleared, as in
// Rewrite. A FIN stays only on a segment that ends where pkt's payload ended
// (the FIN follows the sender's last byte). The TCP checksum is computed from
// scratch (see TCPChecksum for IPv6 routing headers). dst must not overlap
// pkt, head or tail.
func Resegment(dst, pkt []byte, p *Packet, seq seqnum.Value, head, tail []byte, q *Packet) ([]byte, error) {
	if p.Len > len(pkt) || p.PayloadOff > p.Len || p.TCPOff+tcpMinHeader > p.PayloadOff {
		return dst[:0], fmt.Errorf("resegment: packet does not match its decoded offsets: %w", ErrBadHeader)
	}
	n := p.PayloadOff + len(head) + len(tail)
	if ipLen := n - p.ipLenBase(); ipLen > maxIPLen {
		return dst[:0], fmt.Errorf("resegment: IP length %d: %w", ipLen, ErrTooBig)
	}
	var out []byte
	if cap(dst) >= n {
		out = dst[:n]
	} else {
		out = make([]byte, n)
	}
	off := copy(out, pkt[:p.PayloadOff])
	off += copy(out[off:], head)
	copy(out[off:], tail)
	if p.V6 {
		binary.BigEndian.PutUint16(out[4:], uint16(n-ipv6Header))
	} else {
		binary.BigEndian.PutUint16(out[2:], uint16(n))
		if n > p.Len {
			// Longer than the sender made it: see Rewrite.
			out[6] &^= ipv4FlagDF
		}
		binary.BigEndian.PutUint16(out[10:], 0)
		binary.BigEndian.PutUint16(out[10:], IPv4HeaderChecksum(out[:p.TCPOff]))
	}
	*q = *p
	q.Len = n
	q.Seq = seq
	t := p.TCPOff
	if p.Flags&FlagFIN != 0 && seq.Add(int32(len(head)+len(tail))) != p.Seq.Add(int32(p.Len-p.PayloadOff)) {
		q.Flags &^= FlagFIN
		out[t+13] &^= FlagFIN
	}
	binary.BigEndian.PutUint32(out[t+4:], uint32(seq))
	binary.BigEndian.PutUint16(out[t+16:], TCPChecksum(out, q))
	return out, nil
}
