package conntrack

import (
	"sync"
	"time"

	"github.com/ftpct/ftpct/rewrite"
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

// MaxEditLen is the longest argument text a rewrite can store for replay.
// The longest announcement argument is an EPRT with a full IPv6 address:
// "|2|" + 39 + "|65535|" = 49 bytes.
const MaxEditLen = 56

// RecentEdits is how many rewrites per direction are remembered so that a
// retransmission of a rewritten segment is rewritten identically.
const RecentEdits = 8

// Edit is one rewrite already applied to a direction's stream: the original
// bytes [Pos, Pos+OrigLen) were replaced by Repl[:ReplLen].
type Edit struct {
	Pos     rewrite.Seq
	OrigLen uint16
	ReplLen uint8
	Repl    [MaxEditLen]byte
}

// Replacement returns the replacement text.
func (e *Edit) Replacement() []byte { return e.Repl[:e.ReplLen] }

// DirState is the stream state of one direction of a control connection.
type DirState struct {
	// Adj maps this direction's sequence numbers to the rewritten stream.
	Adj rewrite.SeqAdj
	// Next is the original sequence number following the highest byte seen.
	Next rewrite.Seq
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
	// Recent holds the latest rewrites (a ring; zero OrigLen = unused).
	Recent     [RecentEdits]Edit
	recentNext uint8
}

// HoldStart returns the sequence number of the first held byte.
func (d *DirState) HoldStart() rewrite.Seq { return d.Next.Add(-int32(len(d.Held))) }

// Remember stores a rewrite for replay on retransmission.
func (d *DirState) Remember(pos rewrite.Seq, origLen int, repl []byte) {
	for i := range d.Recent {
		if d.Recent[i].OrigLen != 0 && d.Recent[i].Pos == pos {
			return
		}
	}
	e := &d.Recent[d.recentNext%RecentEdits]
	d.recentNext++
	e.Pos = pos
	e.OrigLen = uint16(origLen)
	e.ReplLen = uint8(copy(e.Repl[:], repl))
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
