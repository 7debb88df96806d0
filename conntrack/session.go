package conntrack

import (
	"net/netip"
	"sync"
	"time"

	"github.com/ftpct/ftpct/ftpparse"
	"github.com/ftpct/ftpct/rewrite"
	"github.com/ftpct/ftpct/seqnum"
)

// Dir is a direction of a control connection.
type Dir uint8

const (
	// DirOrig is the direction of the conntrack original tuple: the FTP client
	// talking to the server (commands: PORT, EPRT).
	DirOrig Dir = 0
	// DirReply is the server talking to the client (replies: 227, 229).
	DirReply Dir = 1
)

// Other returns the opposite direction.
func (d Dir) Other() Dir { return d ^ 1 }

func (d Dir) String() string {
	if d == DirOrig {
		return "client"
	}
	return "server"
}

// MaxInFlight is how many rewrites of one direction may await the peer's
// acknowledgement. A retransmission of a segment may carry any of them and
// must be rewritten exactly as the first time, so they are all kept; past
// this many, further announcements are left unrewritten (and open no hole)
// until acknowledgements free room. A client pipelines a few commands at
// most; only a burst of announcements reaches the limit.
const MaxInFlight = rewrite.MaxRecords

// Edit is one rewrite already applied to a direction's stream: the original
// bytes [Pos, Pos+OrigLen) were replaced by the announcement of Kind with
// delimiter Delim, the receiver's view of the sender's address and Port. The
// text is made again on replay (AppendRepl), so an Edit is small and
// pointer-free. When Regen is set, the original bytes are what AppendOrig
// makes (the sender wrote its argument the usual way): a retransmission that
// carries only part of them can be completed.
type Edit struct {
	Pos      seqnum.Value
	OrigLen  uint16
	Port     uint16
	OrigPort uint16
	Kind     ftpparse.Kind
	Delim    byte
	Regen    bool
}

// End returns the original sequence number following the replaced bytes.
func (e *Edit) End() seqnum.Value { return e.Pos.Add(int32(e.OrigLen)) }

// AppendRepl appends the replacement text to dst; addr is the address the
// receiver sees the sender as (Session.SeenAs).
func (e *Edit) AppendRepl(dst []byte, addr netip.Addr) []byte { return e.appendArg(dst, addr, e.Port) }

// AppendOrig appends the argument text the sender would write for its own
// address own and OrigPort. It equals the original bytes when Regen is set.
func (e *Edit) AppendOrig(dst []byte, own netip.Addr) []byte {
	return e.appendArg(dst, own, e.OrigPort)
}

// appendArg appends the argument announcing addr and port in e's syntax.
func (e *Edit) appendArg(dst []byte, addr netip.Addr, port uint16) []byte {
	return ftpparse.AppendArg(dst, ftpparse.Match{Kind: e.Kind, Delim: e.Delim}, addr, port)
}

// DirState is the stream state of one direction of a control connection.
type DirState struct {
	// Adj maps this direction's sequence numbers to the rewritten stream.
	Adj rewrite.SeqAdj
	// Next is the original sequence number following the highest byte seen.
	Next seqnum.Value
	// Started reports whether Next is valid (a payload byte has been seen).
	Started bool
	// MidLine reports that the stream is inside a line whose start was not parsed.
	MidLine bool
	// Held is the beginning of a line that may be an announcement and whose
	// end has not arrived: its bytes, the last len(Held) before Next, were
	// taken out of the segments that carried them and are sent on together
	// with the rest of the line.
	Held []byte
	// HeldSince is when the held line began to be held.
	HeldSince time.Time
	// Acked is the highest original sequence number of this direction the
	// peer has acknowledged (valid once AckSeen).
	Acked   seqnum.Value
	AckSeen bool

	// edits are the rewrites not yet acknowledged, in stream order.
	edits  [MaxInFlight]Edit
	nEdits uint8
}

// HoldStart returns the sequence number of the first held byte.
func (d *DirState) HoldStart() seqnum.Value { return d.Next.Add(-int32(len(d.Held))) }

// Edits returns the kept rewrites, oldest first. The slice aliases d.
func (d *DirState) Edits() []Edit { return d.edits[:d.nEdits] }

// EditsFull reports whether MaxInFlight rewrites await acknowledgement, so
// that no further one can be kept.
func (d *DirState) EditsFull() bool { return d.nEdits == MaxInFlight }

// Remember keeps a rewrite for replay on retransmission. Rewrites come in
// stream order; remembering a kept position again changes nothing. It
// returns false, keeping nothing, when d is full or e lies before the
// newest kept rewrite without being kept.
func (d *DirState) Remember(e Edit) bool {
	if n := d.nEdits; n > 0 {
		last := &d.edits[n-1]
		if !last.Pos.Before(e.Pos) {
			for i := range d.edits[:n] {
				if d.edits[i].Pos == e.Pos {
					return true
				}
			}
			return false
		}
	}
	if d.EditsFull() {
		return false
	}
	d.edits[d.nEdits] = e
	d.nEdits++
	return true
}

// Acknowledge notes that the peer acknowledged this direction's stream up to
// original sequence number ack (the wire ack mapped back with Adj.UnmapAck)
// and forgets what no retransmission can need any more: rewrites that end at
// or before the acknowledged point, and, folded into Adj's base, the length
// changes before it. A rewrite the acknowledgement cuts stays with
// everything after its start. It returns how many rewrites it forgot.
func (d *DirState) Acknowledge(ack seqnum.Value) int {
	if !d.Started {
		return 0
	}
	if ack.After(d.Next) {
		ack = d.Next // acknowledges bytes never sent: believe what was sent
	}
	if d.AckSeen && !ack.After(d.Acked) {
		return 0
	}
	d.Acked, d.AckSeen = ack, true
	floor, k := ack, 0
	for ; k < int(d.nEdits); k++ {
		e := &d.edits[k]
		if e.End().After(ack) {
			if e.Pos.Before(floor) {
				floor = e.Pos
			}
			break
		}
	}
	d.Adj.Fold(floor)
	if k > 0 {
		copy(d.edits[:], d.edits[k:d.nEdits])
		d.nEdits -= uint8(k)
		clear(d.edits[d.nEdits:])
	}
	return k
}

// Session is one FTP control connection.
type Session struct {
	// Immutable after creation.
	ID      uint64
	Binding Binding
	Created time.Time

	mu sync.Mutex
	// Guarded by mu.
	Dir      [2]DirState
	LastSeen time.Time
	// AuthSent: the client asked for AUTH; TLS: the server agreed and the
	// control channel can no longer be read.
	AuthSent bool
	TLS      bool
	// Closing: a FIN or RST was seen.
	Closing bool
}

// Lock locks the session's mutable state.
func (s *Session) Lock() { s.mu.Lock() }

// Unlock unlocks it.
func (s *Session) Unlock() { s.mu.Unlock() }

// SeenAs returns the address the receiver of direction d sees its sender as
// (after NAT): what announcements of direction d must carry.
func (s *Session) SeenAs(d Dir) netip.Addr { return s.Tuple(d.Other()).Dst }

// Tuple returns the kernel tuple of direction d.
func (s *Session) Tuple(d Dir) Tuple {
	if d == DirOrig {
		return s.Binding.Orig
	}
	return s.Binding.Reply
}

type entry struct {
	s   *Session
	dir Dir
}

// Table holds the control connections, reachable by the packet tuple of either
// direction as it appears before NAT.
type Table struct {
	mu     sync.RWMutex
	byKey  map[FlowKey]entry
	byID   map[uint64]*Session
	max    int
	nextID uint64
}

// NewTable returns a table holding at most max sessions.
func NewTable(max int) *Table {
	return &Table{byKey: make(map[FlowKey]entry), byID: make(map[uint64]*Session), max: max}
}

// SetMax changes how many sessions the table holds. Lowering it below Len
// forgets none: new ones are refused until enough have gone.
func (t *Table) SetMax(max int) {
	t.mu.Lock()
	t.max = max
	t.mu.Unlock()
}

// Lookup finds the session a packet with key k belongs to, and its direction.
func (t *Table) Lookup(k FlowKey) (*Session, Dir, bool) {
	t.mu.RLock()
	e, ok := t.byKey[k]
	t.mu.RUnlock()
	return e.s, e.dir, ok
}

// Add creates a session for binding b (or returns the existing one) and
// registers both directions' keys.
func (t *Table) Add(b Binding, now time.Time) (*Session, error) {
	ko, kr := b.Orig.Key(), b.Reply.Key()
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.byKey[ko]; ok {
		return e.s, nil
	}
	if len(t.byID) >= t.max {
		return nil, ErrTableFull
	}
	t.nextID++
	s := &Session{ID: t.nextID, Binding: b, Created: now, LastSeen: now}
	t.byKey[ko] = entry{s, DirOrig}
	t.byKey[kr] = entry{s, DirReply}
	t.byID[s.ID] = s
	return s, nil
}

// Remove deletes a session.
func (t *Table) Remove(s *Session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byID[s.ID] != s {
		return
	}
	delete(t.byID, s.ID)
	delete(t.byKey, s.Binding.Orig.Key())
	delete(t.byKey, s.Binding.Reply.Key())
}

// Len returns the number of sessions.
func (t *Table) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.byID)
}

// Sessions appends all sessions to dst.
func (t *Table) Sessions(dst []*Session) []*Session {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, s := range t.byID {
		dst = append(dst, s)
	}
	return dst
}
