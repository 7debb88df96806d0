package stream

import (
	"time"

	"github.com/ftpct/ftpct/seqnum"
)

// HoldStart returns the sequence number of the first held byte.
func (h *Half) HoldStart() seqnum.Value { return h.Next.Add(-int32(len(h.Held))) }

// Hold keeps b, the last len(b) bytes before Next, back from the receiver
// until the rest of their unit arrives (or, for whole units carried to the
// next segment so that a joined segment stays within the sender's size,
// until that segment). Their age starts now.
func (h *Half) Hold(b []byte, now time.Time) {
	h.HeldSince = now
	h.Held = append(h.Held[:0], b...)
}

// Release makes the held bytes new again: the segment being handled carries
// them from HoldStart on.
func (h *Half) Release() {
	h.Next = h.HoldStart()
	h.Held = h.Held[:0]
}

// Join says how a segment meets held bytes.
type Join uint8

const (
	// JoinDrop: the segment only repeats held bytes, or follows a gap.
	JoinDrop Join = iota
	// JoinBefore: the segment resends only bytes from before the held ones
	// (an ordinary retransmission); the held bytes stay held.
	JoinBefore
	// JoinTrim: the segment resends bytes from before the held ones and some
	// held ones, nothing new: send the former, keep holding.
	JoinTrim
	// JoinReplace: the segment itself carries all held bytes (a
	// retransmission from before or at the held start).
	JoinReplace
	// JoinPrepend: the segment continues the held bytes; send them in front.
	JoinPrepend
	// JoinGiveUp: stop holding; send the segment with the bytes unread.
	JoinGiveUp
)

func (j Join) String() string {
	switch j {
	case JoinDrop:
		return "drop"
	case JoinBefore:
		return "before"
	case JoinTrim:
		return "trim"
	case JoinReplace:
		return "replace"
	case JoinPrepend:
		return "prepend"
	case JoinGiveUp:
		return "give-up"
	}
	return "unknown"
}

// Join decides what to do with segment seg while h holds bytes. When the
// sender resends from the held start after the bytes were held patience or
// longer (its retransmission timer fired: it sends nothing new until they are
// acknowledged), it is JoinGiveUp instead of a drop or trim.
func (h *Half) Join(seg seqnum.Range, now time.Time, patience time.Duration) Join {
	hs := h.HoldStart()
	var j Join
	switch s, e := seg.Start, seg.End; {
	case s.After(h.Next):
		return JoinDrop // a gap: wait for the sender to fill it
	case !e.After(hs):
		return JoinBefore
	case !e.After(h.Next) && s.Before(hs):
		j = JoinTrim
	case !e.After(h.Next):
		j = JoinDrop // nothing new
	case !s.After(hs):
		return JoinReplace
	default:
		return JoinPrepend
	}
	if !seg.Start.After(hs) && now.Sub(h.HeldSince) >= patience {
		return JoinGiveUp
	}
	return j
}
