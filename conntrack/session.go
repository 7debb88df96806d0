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
	// created is when the session was learned (Unix nanoseconds): 8 bytes
	// where a time.Time takes 24 (TestSessionSize).
	created int64

	mu sync.Mutex
	// Guarded by mu.
	// Stream is the normaliser's state of each direction (indexed by Dir).
	Stream [2]stream.Half
	// lastSeen is when the last packet was handled (Unix nanoseconds).
	lastSeen int64
	Lines    Lines
	// Closing: a FIN or RST was seen.
	Closing bool

	// slot is the session's index in its Table's list (guarded by the
	// Table's lock).
	slot uint32
}

// Created returns when the session was learned.
func (s *Session) Created() time.Time { return time.Unix(0, s.created) }

// LastSeen returns when the session's last packet was handled. Call with
// the session locked.
func (s *Session) LastSeen() time.Time { return time.Unix(0, s.lastSeen) }

// Touch records that a packet of the session was handled at now. Call with
// the session locked.
func (s *Session) Touch(now time.Time) { s.lastSeen = now.UnixNano() }

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

// ref is a packet key's entry in a Table: the index of its session in the
// list, shifted left by one, or'ed with the key's direction. Pointer-free,
// so the maps cost the collector nothing to scan.
type ref uint32

func refOf(slot uint32, d Dir) ref { return ref(slot<<1 | uint32(d)) }

func (r ref) slot() uint32 { return uint32(r >> 1) }
func (r ref) dir() Dir     { return Dir(r & 1) }

// maxSessions is the most sessions a Table can index (a ref's slot bits).
const maxSessions = 1 << 31

// Table holds the control connections, reachable by the packet tuple of either
// direction as it appears before NAT.
//
// Memory: a session costs its Session, one list entry (a pointer) and two
// map entries. Keys of IPv4 connections are packed into 12 bytes, in a map of
// their own; an IPv6 connection's take a FlowKey.
type Table struct {
	mu     sync.RWMutex
	v4     map[key4]ref
	v6     map[FlowKey]ref
	list   []*Session // by slot; a removed session's place is taken by the last
	max    int
	nextID uint64
}

// key4 is a FlowKey of an IPv4 flow, packed.
type key4 struct {
	src, dst     [4]byte
	sport, dport uint16
}

// v4Prefix is the start of an IPv4-mapped IPv6 address (RFC 4291 2.5.5.2).
var v4Prefix = [12]byte{10: 0xff, 11: 0xff}

// pack returns k as a key4, and false when k is not an IPv4 flow.
func (k *FlowKey) pack() (key4, bool) {
	if [12]byte(k.Src[:12]) != v4Prefix || [12]byte(k.Dst[:12]) != v4Prefix {
		return key4{}, false
	}
	return key4{src: [4]byte(k.Src[12:]), dst: [4]byte(k.Dst[12:]), sport: k.SrcPort, dport: k.DstPort}, true
}

// NewTable returns a table holding at most max sessions.
func NewTable(max int) *Table {
	return &Table{v4: make(map[key4]ref), v6: make(map[FlowKey]ref), max: min(max, maxSessions)}
}

// SetMax changes how many sessions the table holds. Lowering it below Len
// forgets none: new ones are refused until enough have gone.
func (t *Table) SetMax(max int) {
	t.mu.Lock()
	t.max = min(max, maxSessions)
	t.mu.Unlock()
}

// get finds key k's entry. Call with t.mu held.
func (t *Table) get(k FlowKey) (ref, bool) {
	if k4, ok := k.pack(); ok {
		r, ok := t.v4[k4]
		return r, ok
	}
	r, ok := t.v6[k]
	return r, ok
}

// put sets key k's entry. Call with t.mu held for writing.
func (t *Table) put(k FlowKey, r ref) {
	if k4, ok := k.pack(); ok {
		t.v4[k4] = r
		return
	}
	t.v6[k] = r
}

// del deletes key k's entry. Call with t.mu held for writing.
func (t *Table) del(k FlowKey) {
	if k4, ok := k.pack(); ok {
		delete(t.v4, k4)
		return
	}
	delete(t.v6, k)
}

// Lookup finds the session a packet with key k belongs to, and its direction.
func (t *Table) Lookup(k FlowKey) (*Session, Dir, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	r, ok := t.get(k)
	if !ok {
		return nil, 0, false
	}
	return t.list[r.slot()], r.dir(), true
}

// Add creates a session for binding b (or returns the existing one) and
// registers both directions' keys.
func (t *Table) Add(b Binding, now time.Time) (*Session, error) {
	s, created, err := t.AddLocked(b, now)
	if created {
		s.Unlock()
	}
	return s, err
}

// AddLocked is Add, but a session it creates (created true) is returned
// locked: its creator sets it up (restores stored state) before anyone who
// finds it in the table meanwhile can use it. With several queues the two
// directions of a connection are handled at once.
func (t *Table) AddLocked(b Binding, now time.Time) (s *Session, created bool, err error) {
	ko := b.Orig.Key()
	t.mu.Lock()
	defer t.mu.Unlock()
	if r, ok := t.get(ko); ok {
		return t.list[r.slot()], false, nil
	}
	if len(t.list) >= t.max {
		return nil, false, ErrTableFull
	}
	t.nextID++
	s = &Session{ID: t.nextID, Binding: b, created: now.UnixNano(), lastSeen: now.UnixNano(), slot: uint32(len(t.list))}
	s.Lock()
	t.list = append(t.list, s)
	t.index(s)
	return s, true, nil
}

// index registers both keys of s at its slot. Call with t.mu held for writing.
func (t *Table) index(s *Session) {
	t.put(s.Binding.Orig.Key(), refOf(s.slot, DirOrig))
	t.put(s.Binding.Reply.Key(), refOf(s.slot, DirReply))
}

// Remove deletes a session. It reports whether s was in the table (two
// callers removing one session at once: one removes it).
func (t *Table) Remove(s *Session) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := s.slot
	if int(i) >= len(t.list) || t.list[i] != s {
		return false
	}
	t.del(s.Binding.Orig.Key())
	t.del(s.Binding.Reply.Key())
	last := len(t.list) - 1
	if int(i) != last {
		moved := t.list[last]
		moved.slot = i
		t.list[i] = moved
		t.index(moved)
	}
	t.list[last] = nil
	t.list = t.list[:last]
	if cap(t.list) > 1024 && len(t.list) < cap(t.list)/4 {
		t.list = append([]*Session(nil), t.list...) // give back most of a list that shrank
	}
	return true
}

// Len returns the number of sessions.
func (t *Table) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.list)
}

// Sessions appends all sessions to dst.
func (t *Table) Sessions(dst []*Session) []*Session {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return append(dst, t.list...)
}

// Some appends to dst at most n sessions, the ones in the slots just below
// slot below (from the end of the list when below is 0 or past it), and
// returns the slot to go on below: 0 once slot 0 was appended, so that a
// walk over the table in steps starts again at its end. Walking down, a
// removal (the last session moves into the removed one's slot) can repeat
// a session but skips none that was there when the walk began.
func (t *Table) Some(dst []*Session, below, n int) ([]*Session, int) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if below <= 0 || below > len(t.list) {
		below = len(t.list)
	}
	from := max(below-max(n, 0), 0)
	return append(dst, t.list[from:below]...), from
}
