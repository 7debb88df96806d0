package stream

import "github.com/ftpct/ftpct/seqnum"

// IsZero reports whether h adjusts no sequence number (nil counts as zero).
func (h *Half) IsZero() bool {
	if h == nil {
		return true
	}
	if h.base != 0 {
		return false
	}
	for _, r := range h.Records() {
		if r.Delta != 0 {
			return false
		}
	}
	return true
}

// Offset returns the length change that applies to a segment whose first
// byte has original sequence number s: the base plus the changes of the
// records strictly before s. A segment starting at or before a record's Pos
// carries that range itself, so only the earlier records shift it.
func (h *Half) Offset(s seqnum.Value) int32 {
	if h == nil {
		return 0
	}
	off := h.base
	recs := h.Records()
	for i := range recs {
		r := &recs[i]
		if !r.Pos.Before(s) {
			break
		}
		off += int32(r.Delta)
	}
	return off
}

// MapSeq maps an original sequence number of this direction to the wire.
func (h *Half) MapSeq(s seqnum.Value) seqnum.Value { return s.Add(h.Offset(s)) }

// UnmapAck maps a sequence number the peer acknowledged (an ack or SACK edge,
// in this direction's wire space) back to the original space: it finds the
// newest record whose wire position is strictly before w and subtracts the
// length changes up to and including it. Folded records always count.
func (h *Half) UnmapAck(w seqnum.Value) seqnum.Value {
	if h == nil {
		return w
	}
	before := h.base // length change before record i
	cum := h.base    // length change up to the newest record that applies
	recs := h.Records()
	for i := range recs {
		r := &recs[i]
		if !r.Pos.Add(before).Before(w) {
			break
		}
		if v, ok := h.unmapLumped(w, before, i); ok {
			return v
		}
		before += int32(r.Delta)
		cum = before
	}
	return w.Add(-cum)
}

// Summary is a direction's sequence adjustment in brief: Before is the
// cumulative length change before original position Pos, and Delta the
// length change of the newest rewrite, at Pos (Delta 0: none kept).
type Summary struct {
	Pos    seqnum.Value
	Before int32
	Delta  int16
}

// Snapshot returns h's Summary. It is cheap and comparable: a Summary that
// differs after a packet means the newest length change changed.
func (h *Half) Snapshot() Summary {
	s := Summary{Before: h.base}
	recs := h.Records()
	for i := range recs {
		r := &recs[i]
		if r.Delta == 0 {
			continue
		}
		s.Before += int32(s.Delta)
		s.Pos, s.Delta = r.Pos, r.Delta
	}
	return s
}

// Restore replaces h's sequence adjustment with s: every earlier change folds
// into one base, and the newest is kept as a record whose text is unknown
// until the rewrite is made again (Add fills it in). Stream position, held
// bytes and acknowledgements start afresh, as for a connection first seen.
func (h *Half) Restore(s Summary) {
	h.Reset()
	h.base = s.Before
	if s.Delta != 0 {
		h.inline[0] = Record{Pos: s.Pos, Delta: s.Delta}
		h.n = 1
	}
}
