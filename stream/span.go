package stream

import "github.com/ftpct/ftpct/seqnum"

// Restoring a direction whose peer had not acknowledged several rewrites.
//
// After a restart only a Summary of each direction survives (the newest
// change, package ctstate), and for one direction also its span: where the
// oldest change not acknowledged starts (from) and the summed length change
// of the changes from there up to the newest (lump). Their text, positions
// and individual lengths are lost, yet the sender may resend any of them:
// it resends from the oldest byte the peer has not acknowledged to it, and
// the span was stored so that this byte is never after from (package
// engine stores the span again whenever acknowledgements move it).
//
// RestoreSpan therefore keeps a lump: a record at from standing for all the
// changes of [from, Pos), with their summed Delta, and the restored newest
// change after it. What is known exactly:
//
//   - up to from, the offset is the base (bytes before the last change
//     acknowledged are the peer's already: wherever a resend places them,
//     below what the peer acknowledged, it discards them);
//   - after the newest change, the offset is the one stored (After).
//
// In between the offset is unknown until the bytes are seen again. A resend
// that starts at or before from is placed exactly, and the rewrites it
// carries are made again by the layer above (Add inserts them before the
// lump, whose Delta and position move past them): the lump shrinks from the
// front until the newest change is made again, when it must have no length
// change left and goes. Meanwhile:
//
//   - a segment that starts inside the unknown part cannot be placed; the
//     layer above drops it (Unknown), and the sender resends it once the
//     earlier bytes are through;
//   - an acknowledgement of the peer that lands inside the unknown part is
//     mapped back to the lump's position (UnmapAck): never beyond what the
//     peer holds, so the sender resends the rest, which is then placed.

// RestoreSpan is Restore of s for a direction whose unacknowledged changes
// start at from, before s.Pos, and changed the length by lump bytes in all
// before s.Pos. With from == s.Pos it is Restore.
func (h *Half) RestoreSpan(s Summary, from seqnum.Value, lump int32) {
	h.Restore(s)
	if from == s.Pos || s.Delta == 0 || !from.Before(s.Pos) {
		return
	}
	h.base = s.Before - lump
	h.spill = blocks.Get().(*block)
	clear(h.inline[:])
	h.spill[0] = Record{Pos: from, Delta: int16(lump)}
	h.spill[1] = Record{Pos: s.Pos, Delta: s.Delta}
	h.n = 2
	h.lumped = true
}

// Lumped reports whether h keeps a lump (RestoreSpan): part of its offsets
// is unknown until the sender resends it.
func (h *Half) Lumped() bool { return h != nil && h.lumped }

// Unknown returns the range of original positions whose offset is unknown:
// after the lump's position (from) up to and including the restored newest
// change (to). ok is false when h keeps no lump.
func (h *Half) Unknown() (from, to seqnum.Value, ok bool) {
	if !h.Lumped() {
		return 0, 0, false
	}
	recs := h.recs()
	return recs[h.n-2].Pos, recs[h.n-1].Pos, true
}

// Settle moves the lump's position to the first byte not yet read (the
// start of held bytes, or Next): every rewrite before it was made again.
// When that passes the newest change without having made it again (the
// layer above did not rewrite it this time), the lump is given up
// (Unlump). Call it before a segment of h's direction is normalised.
func (h *Half) Settle() {
	if !h.Lumped() || !h.Started {
		return
	}
	front := h.Next
	if len(h.Held()) > 0 {
		front = h.HoldStart()
	}
	recs := h.recs()
	lump, newest := &recs[h.n-2], &recs[h.n-1]
	switch {
	case newest.Pos.Before(front):
		h.Unlump()
	case lump.Pos.Before(front):
		lump.Pos = front
	}
}

// Unlump gives the lump up: it stays as a restored record, so bytes of the
// unknown part are shifted by the offset before the newest change (as
// after Restore), and a rewrite found there again is not recorded (Add:
// ErrOutOfOrder).
func (h *Half) Unlump() { h.lumped = false }

// addLumped is Add while h keeps a lump: a rewrite at or after the lump's
// position, before the newest change, is one of those the lump stands for,
// made again: it goes before the lump, which loses its length change and
// starts after it. The newest change made again takes its text and ends
// the lump. done is false when r is for Add's usual path.
func (h *Half) addLumped(r Record) (done bool, err error) {
	recs := h.recs()
	li := int(h.n) - 2
	lump, newest := &recs[li], &recs[li+1]
	switch {
	case r.Pos.Before(lump.Pos):
		return false, nil // a rewrite made again before, or out of order
	case r.Pos.Before(newest.Pos):
		if r.Range().End.After(newest.Pos) {
			return true, ErrConflict // overlaps the newest change
		}
		if h.Full() {
			// The lump takes a place of its own, so with MaxRecords kept
			// before the restart the last rewrite of the span meets a
			// full h. Being the last, it leaves the lump no length change:
			// it takes the lump's place, and nothing is unknown any more.
			if lump.Delta != r.Delta {
				return true, ErrFull
			}
			recs[li] = r
			h.lumped = false
			return true, nil
		}
		copy(recs[li+1:h.n+1], recs[li:h.n])
		recs[li] = r
		h.n++
		lump = &recs[li+1]
		lump.Delta -= r.Delta
		lump.Pos = r.Range().End
		return true, nil
	case r.Pos == newest.Pos:
		if newest.Delta != r.Delta {
			return true, ErrConflict
		}
		newest.OrigLen, newest.Tag = r.OrigLen, r.Tag
		h.lumped = false
		if lump.Delta == 0 {
			// Every change of the span was made again: the lump goes.
			copy(recs[li:], recs[li+1:h.n])
			h.n--
			recs[h.n] = Record{}
			h.shrink()
		}
		// Otherwise some change of the span was not made again this
		// time: the lump stays, as the offset of the bytes before the
		// newest change.
		return true, nil
	}
	h.lumped = false // past the newest change: the span was not resent
	return false, nil
}

// truncateLumped is Truncate while h keeps a lump: the rewrites added by
// the packet were inserted before the lump, which takes them back.
func (h *Half) truncateLumped(n int) {
	added := int(h.n) - n
	if added <= 0 {
		return
	}
	recs := h.recs()
	li := int(h.n) - 2
	first := li - added // n >= 2: first >= 0
	lump := &recs[li]
	for i := first; i < li; i++ {
		lump.Delta += recs[i].Delta
	}
	lump.Pos = recs[first].Pos
	copy(recs[first:], recs[li:h.n])
	h.n -= uint8(added)
	clear(recs[h.n : int(h.n)+added])
}

// unmapLumped is UnmapAck's answer for w when it lands in the unknown part
// (ok): the lump's position, which the peer holds at least.
func (h *Half) unmapLumped(w seqnum.Value, before int32, i int) (seqnum.Value, bool) {
	if !h.lumped || i != int(h.n)-2 {
		return 0, false
	}
	recs := h.recs()
	lump, newest := &recs[i], &recs[i+1]
	if !lump.Pos.Add(before).Before(w) || newest.Pos.Add(before+int32(lump.Delta)).Before(w) {
		return 0, false
	}
	return lump.Pos, true
}

// Span returns what a restart needs besides Snapshot to place a resend of
// any rewrite the peer has not acknowledged: the position of the oldest
// kept rewrite (from) and the summed length change of the kept rewrites
// before the newest change (lump). ok is false when none is kept before the
// newest change: Snapshot says all.
func (h *Half) Span() (from seqnum.Value, lump int32, ok bool) {
	recs := h.Records()
	newest := -1
	for i := range recs {
		if recs[i].Delta != 0 {
			newest = i
		}
	}
	if newest <= 0 {
		return 0, 0, false
	}
	for i := range newest {
		lump += int32(recs[i].Delta)
	}
	return recs[0].Pos, lump, true
}
