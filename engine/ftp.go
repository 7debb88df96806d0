package engine

// The FTP layer: what the bytes of a control channel mean. It reads the new
// bytes of a direction line by line, decides which line beginnings to hold
// back because they may be announcements whose end has not arrived (within
// MaxLine), notices AUTH and the server's 234 (after which the channel is
// TLS and unreadable), parses announcements (ftpparse), asks the policy
// (admit) and, where the policy translated them, rewrites their argument.
// It tells the stream normaliser what to hold and which rewrites it made;
// it makes a rewrite's text again from the record's tag (ftpText).

import (
	"bytes"
	"errors"
	"net/netip"
	"time"

	"github.com/ftpct/ftpct/conntrack"
	"github.com/ftpct/ftpct/ftpparse"
	"github.com/ftpct/ftpct/rewrite"
	"github.com/ftpct/ftpct/seqnum"
	"github.com/ftpct/ftpct/stream"
)

// read parses the new bytes payload[off:] of a segment starting at seq
// (which the normaliser has taken as seen), filling w.splices with the
// rewrites of announcements. It returns trimAt >= 0 when the payload from
// trimAt on is now held by the normaliser and must not be sent.
//
// limit is the length of the payload the sender sent (or more, see Handle).
// When held bytes were put in front of it, the payload is longer, and the
// packet could exceed the path MTU the sender sized its segment for. So from
// the first line start after which the payload would run past limit, the
// bytes are carried to the next segment instead of sent: the packet grows
// past the sender's only when its first line alone does.
func (w *Worker) read(sess *conntrack.Session, dir conntrack.Dir, p *rewrite.Packet, payload []byte, off, limit int, cfg *Config, now time.Time) (trimAt int) {
	e := w.e
	h := &sess.Stream[dir]
	ln := &sess.Lines
	for off < len(payload) {
		eol := ftpparse.LineEnd(payload, off)
		if off > 0 && len(payload) > limit && (eol < 0 || eol > limit) && len(payload)-off <= cfg.MaxLine+limit {
			// Carry the rest (whole lines, unparsed) to the next segment.
			h.Hold(payload[off:], now)
			e.stats.HeldCarried.Add(1)
			return off
		}
		if eol < 0 {
			rest := payload[off:]
			if !ln.MidLine[dir] && !ln.TLS && p.Flags&(rewrite.FlagSYN|rewrite.FlagFIN|rewrite.FlagRST) == 0 &&
				ftpparse.MayAnnounce(rest, dir == conntrack.DirReply) {
				if len(rest) <= cfg.MaxLine {
					h.Hold(rest, now)
					e.stats.HeldLines.Add(1)
					return off
				}
				e.stats.LineOverflow.Add(1)
				if e.errLim.Allow(now) {
					e.log.Warn("line too long to hold, passed unparsed", "session", sess.ID, "from", dir.String(), "max_line", cfg.MaxLine)
				}
			} else if !ln.MidLine[dir] && !ln.TLS {
				e.stats.PartialLines.Add(1)
			}
			ln.MidLine[dir] = true
			break
		}
		if ln.MidLine[dir] {
			ln.MidLine[dir] = false
		} else {
			e.stats.Lines.Add(1)
			if !ln.TLS {
				w.line(sess, dir, payload[off:eol], off, p.Seq, cfg, now)
			}
		}
		off = eol
	}
	return -1
}

// giveUp decides on held bytes the sender resent from their start after the
// patience: when the segment payload completes no line from off (the held
// start), the line is passed unparsed (true); otherwise the stream is read
// again from the segment, nothing is given up.
func (w *Worker) giveUp(sess *conntrack.Session, dir conntrack.Dir, payload []byte, off int, now time.Time) bool {
	if ftpparse.LineEnd(payload, off) >= 0 {
		return false
	}
	e := w.e
	e.stats.HoldAbandoned.Add(1)
	if e.errLim.Allow(now) {
		e.log.Warn("split line not completed before the sender retransmitted it; passed unparsed",
			"session", sess.ID, "from", dir.String(), "held_for", now.Sub(sess.Stream[dir].HeldSince()).String())
	}
	sess.Lines.MidLine[dir] = true // pass the rest of this line unparsed
	return true
}

var (
	authPrefix = []byte("AUTH ")
	tlsReply   = []byte("234")
)

// line handles one complete line starting at payload offset off of a
// segment starting at segStart.
func (w *Worker) line(sess *conntrack.Session, dir conntrack.Dir, line []byte, off int, segStart seqnum.Value, cfg *Config, now time.Time) {
	m, ok := w.meaning(sess, dir, line, now)
	if !ok {
		return
	}
	h := &sess.Stream[dir]
	g, ok := w.admit(sess, dir, m, !h.Full(), cfg, now)
	if !ok || (g.seenAs == sess.Tuple(dir).Src && g.x.Port == m.Port) {
		return // refused, or nothing translated: the announcement stands
	}
	n := len(w.repl)
	w.repl = ftpparse.AppendArg(w.repl, m, g.seenAs, g.x.Port)
	repl := w.repl[n:]
	orig := line[m.Start:m.End]
	if bytes.Equal(repl, orig) {
		return
	}
	at := off + m.Start
	tag := ftpTag{kind: m.Kind, delim: m.Delim, port: g.x.Port, origPort: m.Port, regen: true}
	if m.Start <= maxLead {
		tag.lead = uint16(m.Start)
	}
	o, _ := w.txt.AppendOrig(w.orig[:0], tag.pack())
	tag.regen = bytes.Equal(o, orig)
	r := stream.Record{Pos: segStart.Add(int32(at)), OrigLen: uint16(len(orig)), Delta: int16(len(repl) - len(orig)), Tag: tag.pack()}
	if err := h.Add(r); errors.Is(err, stream.ErrOutOfOrder) {
		// A resend of bytes older than the rewrites this run knows of:
		// after a restart, those before the span restored (the peer
		// acknowledged them), or, when no span could be stored, before
		// the newest change (README "Restarts"). They cannot be
		// replayed; the line passes as sent.
		w.e.stats.RewritesStale.Add(1)
		return
	} else if err != nil {
		// Not reached: room was checked above.
		w.e.stats.Errors.Add(1)
		if w.e.errLim.Allow(now) {
			w.e.log.Error("rewrite not recorded", "session", sess.ID, "from", dir.String(), "pos", uint32(r.Pos), "err", err)
		}
		return
	}
	w.splice(rewrite.Splice{Off: at, End: off + m.End, Repl: repl})
	w.e.stats.Rewrites.Add(1)
}

// meaning parses a line of direction dir and follows the AUTH TLS exchange.
// ok is true for a well-formed announcement.
func (w *Worker) meaning(sess *conntrack.Session, dir conntrack.Dir, line []byte, now time.Time) (m ftpparse.Match, ok bool) {
	e := w.e
	var err error
	if dir == conntrack.DirOrig {
		m, err = ftpparse.ParseClient(line)
		if err == nil && m.Kind == ftpparse.KindNone && len(line) >= len(authPrefix) && bytes.EqualFold(line[:len(authPrefix)], authPrefix) {
			sess.Lines.AuthSent = true
		}
	} else {
		m, err = ftpparse.ParseServer(line)
		if err == nil && m.Kind == ftpparse.KindNone && sess.Lines.AuthSent && bytes.HasPrefix(line, tlsReply) {
			sess.Lines.TLS = true
			e.stats.TLSSessions.Add(1)
			e.log.Warn("control connection switched to TLS: its data connections cannot be opened by ftpct",
				"session", sess.ID, "client", sess.Binding.Orig.Src.String(), "server", sess.Binding.Orig.Dst.String())
		}
	}
	if err != nil {
		e.stats.Malformed.Add(1)
		if e.errLim.Allow(now) {
			e.log.Warn("malformed announcement passed untouched", "session", sess.ID, "from", dir.String(), "err", err)
		}
		return m, false
	}
	if m.Kind == ftpparse.KindNone {
		return m, false
	}
	e.stats.Commands.Add(1)
	return m, true
}

// ftpTag is what the FTP layer keeps of a rewrite in its stream.Record's Tag:
// the announcement's syntax (Kind, Delim), the port announced instead
// (port) and the sender's (origPort), and whether the sender's argument is
// what AppendArg makes of its own address and origPort (regen), so that a
// resend carrying part of it can be completed; and how far into its line the
// argument starts (lead; 0 when past maxLead), so that the line's start is
// known (lineStart).
type ftpTag struct {
	kind     ftpparse.Kind
	delim    byte
	port     uint16
	origPort uint16
	regen    bool
	lead     uint16
}

// maxLead is the largest lead a tag holds (15 bits).
const maxLead = 1<<15 - 1

func (t ftpTag) pack() uint64 {
	v := uint64(t.kind) | uint64(t.delim)<<8 | uint64(t.port)<<16 | uint64(t.origPort)<<32 | uint64(t.lead&maxLead)<<49
	if t.regen {
		v |= 1 << 48
	}
	return v
}

func unpackTag(v uint64) ftpTag {
	return ftpTag{kind: ftpparse.Kind(v), delim: byte(v >> 8), port: uint16(v >> 16), origPort: uint16(v >> 32), regen: v&(1<<48) != 0,
		lead: uint16(v>>49) & maxLead}
}

// lineStart is where the line of the rewrite r starts (r's position when its
// tag does not say: a restored record).
func lineStart(r *stream.Record) seqnum.Value { return r.Pos.Add(-int32(unpackTag(r.Tag).lead)) }

// ftpText makes the text of a direction's rewrites again (stream.Text).
type ftpText struct {
	// own is the sender's own address; seenAs how the receiver sees it.
	own, seenAs netip.Addr
}

// AppendRepl appends the argument announcing seenAs and the tag's port.
func (x *ftpText) AppendRepl(dst []byte, tag uint64) []byte {
	t := unpackTag(tag)
	return ftpparse.AppendArg(dst, ftpparse.Match{Kind: t.kind, Delim: t.delim}, x.seenAs, t.port)
}

// AppendOrig appends the argument the sender wrote for its own address and
// port, and whether it is exactly what the sender wrote.
func (x *ftpText) AppendOrig(dst []byte, tag uint64) ([]byte, bool) {
	t := unpackTag(tag)
	return ftpparse.AppendArg(dst, ftpparse.Match{Kind: t.kind, Delim: t.delim}, x.own, t.origPort), t.regen
}
