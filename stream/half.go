package stream

import (
	"time"

	"github.com/ftpct/ftpct/seqnum"
)

// MaxRecords is how many rewrites of one direction may await the peer's
// acknowledgement. A retransmission may carry any of them and must be
// rewritten exactly as the first time, so they are all kept; past this many
// the layer above leaves further rewrites undone until acknowledgements free
// room (Full). Folding an unacknowledged record instead would map the
// segments that still carry it to the wrong place.
const MaxRecords = 64

// Record is one rewrite of a direction's stream: the OrigLen original bytes
// from Pos were replaced by OrigLen+Delta bytes. Tag is the rewriting
// layer's own small description, from which it makes the replacement and
// the original text again (Text). A Record with OrigLen 0 was restored
// (Restore): only its length change is known until the rewrite is made again.
type Record struct {
	Pos     seqnum.Value
	OrigLen uint16
	Delta   int16
	Tag     uint64
}

// Range returns the original bytes the record replaced.
func (r *Record) Range() seqnum.Range { return seqnum.RangeOf(r.Pos, int(r.OrigLen)) }

// Text makes a rewrite's text again from its Tag; the layer that made the
// rewrite implements it.
type Text interface {
	// AppendRepl appends the replacement text of the rewrite tagged tag.
	AppendRepl(dst []byte, tag uint64) []byte
	// AppendOrig appends the original text, and false when it cannot be
	// made again exactly (the sender wrote it in an unusual way).
	AppendOrig(dst []byte, tag uint64) ([]byte, bool)
}

// Half is the state of one direction of a connection. The zero value is a
// direction that has sent nothing and whose stream is not adjusted.
type Half struct {
	// Next is the original sequence number following the highest byte seen.
	Next seqnum.Value
	// Started reports whether Next is valid (a payload byte was seen).
	Started bool
	// Held is the beginning of a unit the layer above waits to see whole:
	// the last len(Held) bytes before Next, taken out of the segments that
	// carried them, to be sent on with the rest.
	Held []byte
	// HeldSince is when the held bytes began to be held.
	HeldSince time.Time
	// Acked is the highest original sequence number the peer acknowledged
	// (valid once AckSeen).
	Acked   seqnum.Value
	AckSeen bool

	// base is the summed length change of the records folded out.
	base int32
	// recs[:n] are the rewrites not yet acknowledged, in stream order.
	n    uint8
	recs [MaxRecords]Record
}

// Records returns the kept rewrites, oldest first. The slice aliases h.
func (h *Half) Records() []Record {
	if h == nil {
		return nil
	}
	return h.recs[:h.n]
}

// Base returns the summed length change of the rewrites folded out.
func (h *Half) Base() int32 {
	if h == nil {
		return 0
	}
	return h.base
}

// Full reports whether MaxRecords rewrites are kept, so that Add of a new
// one fails.
func (h *Half) Full() bool { return h.n == MaxRecords }

// Add keeps the record of a rewrite for replay and sequence mapping.
// Rewrites come in stream order. Adding a kept position again with the same
// Delta (a retransmission) changes nothing, except that a restored record
// gets its length and tag; with another Delta it returns ErrConflict. A
// position before the newest that is not kept returns ErrOutOfOrder, a new
// one when MaxRecords are kept ErrFull. On error h is unchanged.
func (h *Half) Add(r Record) error {
	for i := int(h.n) - 1; i >= 0; i-- {
		k := &h.recs[i]
		if k.Pos == r.Pos {
			if k.Delta != r.Delta {
				return ErrConflict
			}
			if k.OrigLen == 0 {
				k.OrigLen, k.Tag = r.OrigLen, r.Tag
			}
			return nil
		}
		if k.Pos.Before(r.Pos) {
			break
		}
	}
	if h.n > 0 && !h.recs[h.n-1].Pos.Before(r.Pos) {
		return ErrOutOfOrder
	}
	if h.Full() {
		return ErrFull
	}
	h.recs[h.n] = r
	h.n++
	return nil
}

// Truncate forgets the records added after the first n (a packet whose
// rewrites could not be sent).
func (h *Half) Truncate(n int) {
	if n < int(h.n) {
		clear(h.recs[n:h.n])
		h.n = uint8(n)
	}
}

// Overlapping returns the kept records that share a byte with seg, oldest
// first (they follow each other: records never overlap). The slice aliases h.
func (h *Half) Overlapping(seg seqnum.Range) []Record {
	first, end := 0, 0
	for i := range h.recs[:h.n] {
		r := &h.recs[i]
		if !r.Pos.Before(seg.End) {
			break
		}
		if !r.Range().Overlaps(seg) {
			first = i + 1
		}
		end = i + 1
	}
	if first >= end {
		return nil
	}
	return h.recs[first:end]
}

// Acknowledge notes that the peer acknowledged this direction up to original
// sequence number ack (UnmapAck of the wire ack) and forgets what no
// retransmission can need any more: the rewrites ending at or before it,
// whose length changes fold into the base offset. A rewrite the
// acknowledgement cuts stays, with everything after its start. It returns
// how many records it forgot.
func (h *Half) Acknowledge(ack seqnum.Value) int {
	if !h.Started {
		return 0
	}
	if ack.After(h.Next) {
		ack = h.Next // acknowledges bytes never sent: believe what was sent
	}
	if h.AckSeen && !ack.After(h.Acked) {
		return 0
	}
	h.Acked, h.AckSeen = ack, true
	k := 0
	for ; k < int(h.n); k++ {
		r := &h.recs[k]
		end := r.Range().End
		if r.OrigLen == 0 {
			end = r.Pos.Add(1) // restored: its length is unknown
		}
		if end.After(ack) {
			break
		}
		h.base += int32(r.Delta)
	}
	if k > 0 {
		copy(h.recs[:], h.recs[k:h.n])
		h.n -= uint8(k)
		clear(h.recs[h.n:])
	}
	return k
}
