package stream

import (
	"sync"
	"time"

	"github.com/ftpct/ftpct/seqnum"
)

// held is the held bytes of a direction and when they began to be held.
type held struct {
	since time.Time
	b     []byte
}

// helds are the held-bytes buffers not in use. A direction takes one when
// it holds bytes and gives it back when it releases them: an idle
// connection owns none.
var helds = sync.Pool{New: func() any { return &held{b: make([]byte, 0, 256)} }}

// Held returns the beginning of a unit the layer above waits to see whole:
// the last len(Held()) bytes before Next, taken out of the segments that
// carried them, to be sent on with the rest. The slice aliases h until the
// next Hold, Release or Restore.
func (h *Half) Held() []byte {
	if h.held == nil {
		return nil
	}
	return h.held.b
}

// HeldSince returns when the held bytes began to be held (the zero time
// when none are).
func (h *Half) HeldSince() time.Time {
	if h.held == nil {
		return time.Time{}
	}
	return h.held.since
}

// HoldStart returns the sequence number of the first held byte.
func (h *Half) HoldStart() seqnum.Value { return h.Next.Add(-int32(len(h.Held()))) }

// Hold keeps b, the last len(b) bytes before Next, back from the receiver
// until the rest of their unit arrives (or, for whole units carried to the
// next segment so that a joined segment stays within the sender's size,
// until that segment). Their age starts now. Holding nothing releases
// nothing: it is Hold of no bytes. The buffer comes from a pool and
// returns to it on Release.
func (h *Half) Hold(b []byte, now time.Time) {
	if len(b) == 0 {
		h.dropHeld()
		return
	}
	if h.held == nil {
		h.held = helds.Get().(*held)
	}
	h.held.since = now
	h.held.b = append(h.held.b[:0], b...)
}

// Release makes the held bytes new again: the segment being handled carries
// them from HoldStart on.
func (h *Half) Release() {
	h.Next = h.HoldStart()
	h.dropHeld()
}

// dropHeld gives the held-bytes buffer back to the pool.
func (h *Half) dropHeld() {
	if h.held == nil {
		return
	}
	hb := h.held
	h.held = nil
	hb.b, hb.since = hb.b[:0], time.Time{}
	helds.Put(hb)
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
	if !seg.Start.After(hs) && now.Sub(h.HeldSince()) >= patience {
		return JoinGiveUp
	}
	return j
}
