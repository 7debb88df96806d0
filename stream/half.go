package stream

import (
	"sync"

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

// inlineRecords is how many records a Half keeps in itself. An idle
// control connection keeps none and an ordinary one one at a time (an
// announcement until the peer acknowledges it, which its reply does); two
// or more unacknowledged (pipelined announcements) spill to a block of
// MaxRecords taken from a pool and given back once acknowledgements bring
// the records down to inlineRecords. One in line keeps a Session within the
// allocator's 320-byte class.
const inlineRecords = 1

// block is the storage of a Half's records during a burst.
type block [MaxRecords]Record

// blocks are the spill blocks not in use. Get allocates one only when the
// pool is empty (the first bursts, or after a collection emptied it).
var blocks = sync.Pool{New: func() any { return new(block) }}

// Half is the state of one direction of a connection. The zero value is a
// direction that has sent nothing and whose stream is not adjusted.
//
// A Half may own pooled storage (its records during a burst, held bytes):
// it must not be copied once used, except to compare or inspect the copy.
// Dropping a Half without Reset is safe: its storage is then collected
// instead of reused.
type Half struct {
	// Next is the original sequence number following the highest byte seen.
	Next seqnum.Value
	// Acked is the highest original sequence number the peer acknowledged
	// (valid once AckSeen).
	Acked seqnum.Value
	// base is the summed length change of the records folded out.
	base int32
	// Started reports whether Next is valid (a payload byte was seen).
	Started bool
	AckSeen bool
	// lumped: the records end with a lump and the restored newest change
	// (span.go).
	lumped bool
	// n is how many records are kept: in inline, or in spill when it is
	// set (exactly when n > inlineRecords). Records past n are zero.
	n      uint8
	held   *held
	spill  *block
	inline [inlineRecords]Record
}

// recs returns the storage of the records (the kept ones are recs()[:h.n]).
func (h *Half) recs() []Record {
	if h.spill != nil {
		return h.spill[:]
	}
	return h.inline[:]
}

// Records returns the kept rewrites, oldest first. The slice aliases h
// until its next Add, Acknowledge, Truncate or Restore.
func (h *Half) Records() []Record {
	if h == nil {
		return nil
	}
	return h.recs()[:h.n]
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
//
// The record past inlineRecords moves the records to a pooled block: the
// one allocation a burst may cost, when the pool is empty.
func (h *Half) Add(r Record) error {
	if h.lumped {
		if done, err := h.addLumped(r); done {
			return err
		}
	}
	recs := h.recs()
	for i := int(h.n) - 1; i >= 0; i-- {
		k := &recs[i]
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
	if h.n > 0 && !recs[h.n-1].Pos.Before(r.Pos) {
		return ErrOutOfOrder
	}
	if h.Full() {
		return ErrFull
	}
	if h.spill == nil && int(h.n) == inlineRecords {
		h.spill = blocks.Get().(*block)
		copy(h.spill[:], h.inline[:])
		clear(h.inline[:])
		recs = h.spill[:]
	}
	recs[h.n] = r
	h.n++
	return nil
}

// shrink gives the spill block back once the records fit inline again.
func (h *Half) shrink() {
	if h.spill == nil || int(h.n) > inlineRecords {
		return
	}
	b := h.spill
	copy(h.inline[:], b[:h.n])
	clear(b[:h.n])
	h.spill = nil
	blocks.Put(b)
}

// Truncate forgets the records added after the first n (a packet whose
// rewrites could not be sent).
func (h *Half) Truncate(n int) {
	if h.lumped {
		if n >= 2 {
			h.truncateLumped(n)
			return
		}
		h.lumped = false
	}
	if n < int(h.n) {
		clear(h.recs()[n:h.n])
		h.n = uint8(n)
		h.shrink()
	}
}

// Overlapping returns the kept records that share a byte with seg, oldest
// first (they follow each other: records never overlap). The slice aliases h
// as Records does.
func (h *Half) Overlapping(seg seqnum.Range) []Record {
	recs := h.Records()
	first, end := 0, 0
	for i := range recs {
		r := &recs[i]
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
	return recs[first:end]
}

// Acknowledge notes that the peer acknowledged this direction up to original
// sequence number ack (UnmapAck of the wire ack) and forgets what no
// retransmission can need any more: the rewrites ending at or before it,
// whose length changes fold into the base offset. A rewrite the
// acknowledgement cuts stays, with everything after its start. It returns
// how many records it forgot.
//
// Acked keeps the highest acknowledgement even past Next, or before any
// byte was seen: bytes the peer holds that this Half never saw got through
// without it (before a restart, past a full queue with bypass), and the
// sender will not send them again (Resumes). Only bytes seen carry records,
// so the records are forgotten up to Next at most.
func (h *Half) Acknowledge(ack seqnum.Value) int {
	if !h.AckSeen || ack.After(h.Acked) {
		if h.Started && ack.Diff(h.Next) > maxUnseen {
			ack = h.Next.Add(maxUnseen) // more than any sender has in flight
		}
		h.Acked, h.AckSeen = ack, true
	}
	if !h.Started {
		return 0
	}
	ack = h.Acked
	if ack.After(h.Next) {
		ack = h.Next // no byte after Next was seen: none carries a record
	}
	recs := h.recs()
	k := 0
	for ; k < int(h.n); k++ {
		r := &recs[k]
		end := r.Range().End
		if r.OrigLen == 0 {
			end = r.Pos.Add(1) // restored: its length is unknown
		}
		if end.After(ack) {
			break
		}
		h.base += int32(r.Delta)
	}
	if h.lumped && k > int(h.n)-2 {
		h.lumped = false // the peer holds the whole span
	}
	if k > 0 {
		copy(recs, recs[k:h.n])
		h.n -= uint8(k)
		clear(recs[h.n : int(h.n)+k])
		h.shrink()
	}
	return k
}

// maxUnseen bounds how far past Next an acknowledgement is believed (16 MiB).
const maxUnseen = 1 << 24

// Resumes reports whether a segment starting at seq, after Next, follows
// bytes the peer acknowledged already (see Acknowledge): they are not
// missing, and reading may resume at seq (Resume). A segment after bytes
// the peer does not hold follows a gap and must wait for them.
func (h *Half) Resumes(seq seqnum.Value) bool {
	return h.Started && h.AckSeen && seq.After(h.Next) && !seq.After(h.Acked) && len(h.Held()) == 0
}

// Resume makes seq the next byte to read, past bytes this Half never saw
// (Resumes). A lump is given up: the peer holds the whole span (an
// acknowledgement inside it maps back to its start, UnmapAck).
func (h *Half) Resume(seq seqnum.Value) {
	h.Next = seq
	h.lumped = false
}

// Reset gives h's pooled storage back and makes it the zero value. Call it
// only when nothing else can reach h any more.
func (h *Half) Reset() {
	h.Truncate(0)
	h.dropHeld()
	*h = Half{}
}
