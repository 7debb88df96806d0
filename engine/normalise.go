package engine

// The stream normaliser's packet side: it applies the decisions of package
// stream (which knows nothing of FTP) to packets. It prunes what the peer
// acknowledged, completes resends that cut a kept rewrite, puts held bytes
// in front of the segment that continues them (or holds them further),
// drops segments after a gap, and replays kept rewrites on retransmitted
// bytes. The text of a rewrite comes from the layer that made it, through
// stream.Text (w.text); nothing here reads the bytes' meaning. Only when
// the sender resends held bytes after the patience does it ask the FTP
// layer whether the line is given up (giveUp).

import (
	"time"

	"github.com/ftpct/ftpct/conntrack"
	"github.com/ftpct/ftpct/rewrite"
	"github.com/ftpct/ftpct/seqnum"
	"github.com/ftpct/ftpct/stream"
)

// segment is the packet the layers work on: the queued one, or one the
// normaliser built from it.
type segment struct {
	in      []byte
	p       rewrite.Packet
	payload []byte
	// forced: in is not the queued packet (held bytes were added or
	// removed), so it is sent even when Rewrite changes nothing more.
	forced bool
}

// set makes in (decoded into p) the segment, built by the normaliser.
func (s *segment) set(in []byte, p rewrite.Packet) {
	s.in, s.p, s.payload, s.forced = in, p, p.Payload(in), true
}

func (s *segment) rng() seqnum.Range { return seqnum.RangeOf(s.p.Seq, len(s.payload)) }

// action is what the normaliser leaves to do with a segment.
type action uint8

const (
	// actRead: read the new bytes from off (the normaliser took them as seen).
	actRead action = iota
	// actSend: send it as it is (with the replays found).
	actSend
	// actTrim: send only the head at seq; the normaliser holds the rest.
	actTrim
	// actDrop: drop it; its sender retransmits it.
	actDrop
)

func (a action) String() string {
	switch a {
	case actRead:
		return "read"
	case actSend:
		return "send"
	case actTrim:
		return "trim"
	case actDrop:
		return "drop"
	}
	return "unknown"
}

// outcome is the normaliser's decision on a segment.
type outcome struct {
	act  action
	why  string       // actDrop, actSend: why
	seq  seqnum.Value // actTrim: the sequence number to send at
	head []byte       // actTrim: the payload to send
	off  int          // actRead: the offset of the first new byte
}

// acknowledged prunes the records of the direction opposite to dir up to what
// the packet acknowledges: no retransmission carries those bytes again. It
// stores the session's state again where that moved the span a restart
// needs (persister.acked), before the packet leaves.
func (w *Worker) acknowledged(sess *conntrack.Session, dir conntrack.Dir, p *rewrite.Packet, now time.Time) {
	if p.Flags&rewrite.FlagACK != 0 {
		o := &sess.Stream[dir.Other()]
		w.e.persist.acked(sess, dir.Other(), o.Acknowledge(o.UnmapAck(p.Ack)), now)
	}
}

// normalise runs the segment s of sess's direction dir through the stream
// normaliser. limit is the most payload bytes to send in one segment (see
// Handle).
func (w *Worker) normalise(sess *conntrack.Session, dir conntrack.Dir, s *segment, limit int, cfg *Config, now time.Time) outcome {
	h := &sess.Stream[dir]
	if len(s.payload) == 0 {
		return outcome{act: actSend}
	}
	if h.Lumped() {
		// Restored with a span (persister.stateOf): offsets between its
		// start and the newest change are known again only as the sender
		// resends from the start.
		h.Settle()
		if from, to, ok := h.Unknown(); ok && !h.Started && s.p.Seq.After(from) {
			if !s.p.Seq.After(to) {
				// Sent out of order: the resend from the span's start
				// comes, and this one after it.
				w.e.stats.OutOfOrder.Add(1)
				return outcome{act: actDrop, why: "offset unknown after a restart"}
			}
			h.Unlump() // past the newest change: the peer holds the span
		}
	}
	if h.Started && s.p.Seq.Before(h.Next) {
		if j, q, ok := w.complete(h, s, limit); ok {
			s.set(j, q)
		}
	}
	if len(h.Held()) == 0 {
		return w.advance(h, s)
	}
	hs := h.HoldStart()
	join := h.Join(s.rng(), now, cfg.HoldPatience)
	if join == stream.JoinGiveUp && !w.giveUp(sess, dir, s.payload, int(hs.Diff(s.p.Seq)), now) {
		join = stream.JoinReplace
	}
	switch join {
	case stream.JoinBefore:
		// Resent bytes from before the held ones: replay, keep holding.
		if why := w.replay(h, s); why != "" {
			return outcome{act: actDrop, why: why}
		}
		return outcome{act: actSend}
	case stream.JoinDrop:
		if s.p.Seq.After(h.Next) {
			// A gap: the sender must fill it first.
			w.e.stats.OutOfOrder.Add(1)
			return outcome{act: actDrop, why: "gap before a held line"}
		}
		// Only bytes already held: send the segment on without them, as an
		// empty segment at the held start (nothing is lost, nothing new
		// is delivered).
		return outcome{act: actTrim, seq: hs}
	case stream.JoinTrim:
		// Resent bytes from before the held ones and some held ones: send
		// the former (replaying rewrites), keep holding the rest.
		if why := w.replay(h, s); why != "" {
			return outcome{act: actDrop, why: why}
		}
		return outcome{act: actTrim, seq: s.p.Seq, head: s.payload[:min(int(hs.Diff(s.p.Seq)), len(s.payload))]}
	case stream.JoinPrepend:
		var q rewrite.Packet
		j, err := rewrite.Resegment(w.join[:0], s.in, &s.p, hs, h.Held()[:s.p.Seq.Diff(hs)], s.payload, &q)
		if err != nil {
			w.e.stats.Errors.Add(1)
			return outcome{act: actDrop, why: err.Error()}
		}
		w.join = j[:0]
		s.set(j, q)
	}
	// JoinReplace, JoinPrepend, JoinGiveUp: the held bytes are new again;
	// the segment carries them from hs on.
	h.Release()
	return w.advance(h, s)
}

// advance takes the segment's bytes as seen: it replays the kept rewrites on
// bytes sent before, and has the new ones read (actRead), or the segment
// sent when it carries none, or dropped (its sender retransmits it).
func (w *Worker) advance(h *stream.Half, s *segment) outcome {
	r := s.rng()
	if !h.Started {
		h.Started = true
		h.Next = r.Start
	}
	if h.Resumes(r.Start) {
		// Not a gap: the receiver acknowledged the bytes before this
		// segment, which got through without this run (a restart: the
		// dead daemon let them through; or a full queue's bypass). Its
		// sender will not send them again, so waiting for them would
		// stall the stream for good. Read on from here, taking it as a
		// line start, as for the first segment of a session learned
		// mid-stream.
		w.e.stats.Resumed.Add(1)
		h.Resume(r.Start)
	}
	if r.Start.After(h.Next) {
		// A gap: an earlier segment was lost. Unit boundaries after it are
		// unknown, so let the sender retransmit this one in order.
		w.e.stats.OutOfOrder.Add(1)
		return outcome{act: actDrop, why: "gap"}
	}
	if why := w.replay(h, s); why != "" {
		return outcome{act: actDrop, why: why}
	}
	if !r.End.After(h.Next) {
		return outcome{act: actSend, why: "retransmission"}
	}
	off := int(h.Next.Diff(r.Start))
	h.Next = r.End
	return outcome{act: actRead, off: off}
}

// replay adds to w.splices the kept rewrites the segment's bytes before
// h.Next carry, which the peer has not acknowledged (bytes it has are
// discarded by it). A segment that cuts a kept rewrite complete could not
// make whole cannot be rewritten consistently: why says so.
func (w *Worker) replay(h *stream.Half, s *segment) (why string) {
	r := s.rng()
	if !r.Start.Before(h.Next) {
		return ""
	}
	for _, rec := range h.Overlapping(r) {
		if !r.Covers(rec.Range()) {
			return "cuts a rewritten argument"
		}
		off := int(rec.Pos.Diff(r.Start))
		n := len(w.repl)
		w.repl = w.text.AppendRepl(w.repl, rec.Tag)
		w.splice(rewrite.Splice{Off: off, End: off + int(rec.OrigLen), Repl: w.repl[n:]})
		w.e.stats.Replays.Add(1)
	}
	return ""
}

// complete makes whole a resent segment that begins or ends inside a kept
// rewrite. That happens when a rewrite was made in a segment ftpct joined (a
// split line) and the joined packet was lost after the gateway: the sender
// resends its own, smaller pieces, and no piece can be rewritten alone. The
// missing original bytes are made again (stream.Text's AppendOrig) and put
// around the segment's, so the rewrite replays whole; bytes the receiver
// gets twice it discards. The result stays within limit bytes of payload:
// when it would not, the segment is cut short before a rewrite (the sender
// resends the rest).
//
// ok is false when the segment cuts no rewrite, or one whose original text
// cannot be made again; replay then drops it.
func (w *Worker) complete(h *stream.Half, s *segment, limit int) (out []byte, q rewrite.Packet, ok bool) {
	seg := s.rng()
	recs := h.Overlapping(seg)
	if len(recs) == 0 {
		return nil, q, false
	}
	first, last := &recs[0], &recs[len(recs)-1]
	whole := seqnum.Range{Start: seg.Start, End: seg.End}
	if first.Pos.Before(seg.Start) {
		whole.Start = first.Pos
	}
	if e := last.Range().End; e.After(seg.End) {
		whole.End = e
	}
	if whole == seg {
		return nil, q, false
	}
	if int(whole.Len()) > limit {
		whole.End = whole.Start.Add(int32(limit))
		for i := range recs {
			if r := recs[i].Range(); r.Contains(whole.End) && r.Start != whole.End {
				whole.End = r.Start
			}
		}
	}
	// The bytes added on either side are the original text of the rewrite
	// cut there, made again.
	w.cut = w.cut[:0]
	if whole.Start.Before(seg.Start) {
		o, regen := w.text.AppendOrig(w.orig[:0], first.Tag)
		if !regen {
			return nil, q, false
		}
		w.orig = o
		w.cut = append(w.cut, o[:seg.Start.Diff(first.Pos)]...)
	}
	w.cut = append(w.cut, s.payload[:max(0, min(int(whole.End.Diff(seg.Start)), len(s.payload)))]...)
	if whole.End.After(seg.End) {
		o, regen := w.text.AppendOrig(w.orig[:0], last.Tag)
		if !regen {
			return nil, q, false
		}
		w.orig = o
		w.cut = append(w.cut, o[seg.End.Diff(last.Pos):]...)
	}
	j, err := rewrite.Resegment(w.whole[:0], s.in, &s.p, whole.Start, w.cut, nil, &q)
	if err != nil {
		return nil, q, false
	}
	w.whole = j[:0]
	w.e.stats.ResendsCompleted.Add(1)
	return j, q, true
}
