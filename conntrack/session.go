package conntrack

import (
	"net/netip"
	"sync"
	"time"

	"github.com/ftpct/ftpct/stream"
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

// Lines is what the FTP layer reads of a session's control channel.
type Lines struct {
	// MidLine: direction d's stream is inside a line whose start was not
	// read (it passes unparsed up to its end).
	MidLine [2]bool
	// AuthSent: the client asked for AUTH; TLS: the server agreed and the
	// control channel can no longer be read.
	AuthSent bool
	TLS      bool
}

// Session is one FTP control connection.
type Session struct {
	// Immutable after creation.
	ID      uint64
	Binding Binding
	Created time.Time

	mu sync.Mutex
	// Guarded by mu.
	// Stream is the normaliser's state of each direction (indexed by Dir).
	Stream   [2]stream.Half
	Lines    Lines
	LastSeen time.Time
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
