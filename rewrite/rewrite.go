package rewrite

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/ftpct/ftpct/seqnum"
)

// Splice replaces the payload bytes [Off, End) (offsets from the start of the TCP payload) with
// Repl. Off == End inserts; an empty Repl deletes.
type Splice struct {
	Off, End int
	Repl     []byte
}

// maxIPLen is the largest value of the IPv4 total length and IPv6 payload length fields.
const maxIPLen = 0xffff

// ipv4FlagDF is the Don't Fragment bit in the high byte of the IPv4 flags
// and fragment offset field (RFC 791).
const ipv4FlagDF = 0x40

// SeqMap is the sequence adjustment of one direction of a connection
// (stream.Half implements it): where the sender's original sequence numbers
// lie on the wire, and back.
type SeqMap interface {
	// MapSeq maps the original sequence number of a segment's first byte.
	MapSeq(seqnum.Value) seqnum.Value
	// UnmapAck maps an acknowledged wire sequence number back.
	UnmapAck(seqnum.Value) seqnum.Value
	// IsZero reports whether the map moves nothing.
	IsZero() bool
}

// Rewrite builds the rewritten packet for pkt (decoded into p) into dst and returns it
// (append-style: the result is dst[:0] extended; no allocation when cap(dst) is enough).
// dst must not overlap pkt. this maps pkt's own direction (its sender's stream), other the
// reverse direction; either may be nil (no adjustment).
//
// Rewrite applies splices (sorted by strictly increasing Off, non-overlapping, within the
// payload), maps the segment's seq with this.MapSeq and, if ACK is set, its ack with
// other.UnmapAck, maps every SACK block edge with other.UnmapAck, fixes the IPv4 total length
// and header checksum or the IPv6 payload length, and updates the TCP checksum. The length
// changes of the splices must already be known to this (the caller records them first): they
// lie at or after the segment's first byte and never shift it, but every later segment.
//
// The TCP checksum is carried over from pkt (RFC 1624 style): the pseudo-header sum is
// derived from the original checksum, so a correct input yields exactly the checksum a full
// recompute gives (also with IPv6 routing headers), and a corrupt input stays corrupt instead
// of being laundered into a valid packet.
//
// When nothing changes (no splice alters a byte and all offsets are zero) it returns dst[:0],
// false, nil and writes nothing, so the caller can accept pkt unmodified. On error dst holds
// no packet.
func Rewrite(dst, pkt []byte, p *Packet, splices []Splice, this, other SeqMap) (out []byte, changed bool, err error) {
	if p.Len > len(pkt) || p.PayloadOff > p.Len || p.TCPOff+tcpMinHeader > p.PayloadOff || p.TCPOff < ipv4MinHeader {
		return dst[:0], false, fmt.Errorf("rewrite: packet does not match its decoded offsets: %w", ErrBadHeader)
	}
	payload := pkt[p.PayloadOff:p.Len]

	growth, contentChanged, resized := 0, false, false
	prevOff, prevEnd := -1, 0
	for i, e := range splices {
		if e.Off <= prevOff || e.Off < prevEnd || e.End < e.Off || e.End > len(payload) {
			return dst[:0], false, fmt.Errorf("rewrite: splice %d [%d,%d) after [%d,%d) in %d payload bytes: %w",
				i, e.Off, e.End, max(prevOff, 0), prevEnd, len(payload), ErrSplice)
		}
		prevOff, prevEnd = e.Off, e.End
		if d := len(e.Repl) - (e.End - e.Off); d != 0 {
			growth += d
			resized = true
			contentChanged = true
		} else if !bytes.Equal(payload[e.Off:e.End], e.Repl) {
			contentChanged = true
		}
	}
	newLen := p.Len + growth
	if ipLen := newLen - p.ipLenBase(); ipLen > maxIPLen {
		return dst[:0], false, fmt.Errorf("rewrite: IP length %d: %w", ipLen, ErrTooBig)
	}

	if resized && this == nil {
		return dst[:0], false, fmt.Errorf("rewrite: %w", ErrNoSeqMap)
	}
	seq := p.Seq
	if this != nil {
		seq = this.MapSeq(p.Seq)
	}

	ack := p.Ack
	sackChanged := false
	if other != nil && !other.IsZero() {
		if p.Flags&FlagACK != 0 {
			ack = other.UnmapAck(p.Ack)
		}
		sackChanged = adjustSACK(pkt[p.TCPOff+tcpMinHeader:p.PayloadOff], other, false)
	}
	if !contentChanged && seq == p.Seq && ack == p.Ack && !sackChanged {
		return dst[:0], false, nil
	}

	if cap(dst) >= newLen {
		out = dst[:newLen]
	} else {
		out = make([]byte, newLen)
	}
	n := copy(out, pkt[:p.PayloadOff])
	last := 0
	for _, e := range splices {
		n += copy(out[n:], payload[last:e.Off])
		n += copy(out[n:], e.Repl)
		last = e.End
	}
	copy(out[n:], payload[last:])

	if p.V6 {
		binary.BigEndian.PutUint16(out[4:], uint16(newLen-ipv6Header))
	} else {
		binary.BigEndian.PutUint16(out[2:], uint16(newLen))
		if growth > 0 {
			// The sender sized the segment for its path MTU; the growth is
			// ours, and an ICMP "fragmentation needed" would name the MTU
			// the sender already uses: it would retransmit the same size
			// for ever. Let the path fragment the grown packet instead.
			out[6] &^= ipv4FlagDF
		}
		binary.BigEndian.PutUint16(out[10:], 0)
		binary.BigEndian.PutUint16(out[10:], IPv4HeaderChecksum(out[:p.TCPOff]))
	}
	t := p.TCPOff
	binary.BigEndian.PutUint32(out[t+4:], uint32(seq))
	binary.BigEndian.PutUint32(out[t+8:], uint32(ack))
	if sackChanged {
		adjustSACK(out[t+tcpMinHeader:p.PayloadOff], other, true)
	}

	// Pseudo-header sum implied by the original checksum, moved to the new TCP length.
	oldTCPLen, newTCPLen := p.Len-t, newLen-t
	pseudo := ^sum(0, pkt[t:p.Len])
	pseudo = add16(add16(pseudo, ^uint16(oldTCPLen)), uint16(newTCPLen))
	binary.BigEndian.PutUint16(out[t+16:], 0)
	binary.BigEndian.PutUint16(out[t+16:], ^add16(pseudo, sum(0, out[t:newLen])))

	return out, true, nil
}

// ipLenBase is what the packet length exceeds the IP length field by: 0 for IPv4 (total
// length), 40 for IPv6 (payload length).
func (p *Packet) ipLenBase() int {
	if p.V6 {
		return ipv6Header
	}
	return 0
}
