// Package expect is ftpct's table of expected data connections: what an
// announcement on a control connection allowed in, until it is used, expires,
// is evicted by a newer one of the same session, or its session goes. It
// chooses the port of a translated expectation (as nf_nat_ftp does) and
// enforces the per-session and total limits.
//
// Concurrency: a Table is safe for concurrent use. Expectations are plain
// values; the table returns copies.
package expect

import (
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/ftpct/ftpct/ftpparse"
)

// Expectation is one expected data connection: a connection from Peer (any
// source port) to Addr:Port, as it arrives at this host. Where To is valid the
// connection is translated to To (the endpoint that was really announced).
// Port is the port chosen, which may differ from the one requested.
type Expectation struct {
	ID uint64
	Request
	Created time.Time
	Expires time.Time
}

// Key returns the expectation's table key.
func (e *Expectation) Key() Key { return MakeKey(e.Peer, e.Addr, e.Port) }

func (e *Expectation) String() string {
	s := fmt.Sprintf("%s %s -> %s", e.Kind, e.Peer, netip.AddrPortFrom(e.Addr, e.Port))
	if e.To.IsValid() {
		s += " => " + e.To.String()
	}
	return s
}

// Key is the packed key of an expectation: what the data connection's
// first packet carries.
type Key struct {
	Peer, Addr [16]byte
	Port       uint16
}

// MakeKey builds a Key without allocating.
func MakeKey(peer, addr netip.Addr, port uint16) Key {
	return Key{Peer: peer.As16(), Addr: addr.As16(), Port: port}
}

// Request asks for an expectation. Port is the preferred port; when To is
// valid (the data connection is translated) another free port may be chosen,
// as the kernel's nf_nat_ftp does.
type Request struct {
	Session uint64
	Kind    ftpparse.Kind
	Peer    netip.Addr
	Addr    netip.Addr
	Port    uint16
	To      netip.AddrPort
}

// Limits bound the expectation table.
type Limits struct {
	// PerSession is the most pending expectations one control connection may
	// have; a new one evicts the oldest (the kernel keeps 1).
	PerSession int
	// Total is the most pending expectations altogether; past it new ones are refused.
	Total int
	// Timeout is how long an expectation waits for its connection.
	Timeout time.Duration
	// MinPort is the lowest port a translated expectation may be moved to.
	MinPort uint16
}

// Table holds pending expectations.
type Table struct {
	mu        sync.Mutex
	lim       Limits
	byKey     map[Key]Expectation
	bySession map[uint64][]Key // oldest first
	nextID    uint64
	// peak is the most expectations pending since the maps were made: Go
	// maps keep their room when emptied, so after a burst they are made
	// again (shrinkLocked).
	peak int
	// closing are the keys of expectations that left the table and whose
	// holes the caller closes but has not handed to the rule manager yet
	// (Closed). Until then no other expectation gets the key: its open
	// could reach the kernel before that close, and then clash with the
	// old element (a DNAT mapping to another target: EEXIST, the whole
	// transaction refused) or be deleted by it (a hole silently gone).
	// Closes and opens handed over in that order are committed in it.
	closing map[Key]closer
}

// closer counts the closes of one key not handed over yet.
type closer struct {
	n int
	// session may reuse the key meanwhile: its own evictions, whose
	// closes it hands over in order with its opens (it is locked while it
	// does). 0 when another kind of removal is pending too.
	session uint64
}

// NewTable returns an empty table with the given limits.
func NewTable(lim Limits) *Table {
	lim = lim.withDefaults()
	return &Table{lim: lim, byKey: make(map[Key]Expectation), bySession: make(map[uint64][]Key), closing: make(map[Key]closer)}
}

// Limits returns the table's limits.
func (t *Table) Limits() Limits {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lim
}

// SetLimits replaces the limits, as NewTable takes them. Pending
// expectations stay: with a lower Total new ones are refused until enough
// have gone; with a lower PerSession a session's next one evicts down to
// it; a new Timeout applies to expectations created or refreshed after.
func (t *Table) SetLimits(lim Limits) {
	lim = lim.withDefaults()
	t.mu.Lock()
	t.lim = lim
	t.mu.Unlock()
}

// withDefaults fills in the smallest sensible values.
func (lim Limits) withDefaults() Limits {
	if lim.PerSession < 1 {
		lim.PerSession = 1
	}
	if lim.MinPort == 0 {
		lim.MinPort = 1024
	}
	return lim
}

// Add inserts an expectation for r, refreshing it if the same session already
// expects the same tuple with the same target (a retransmitted or repeated
// announcement). Expectations evicted to stay within the per-session limit are
// appended to evicted; the caller closes their holes and calls Closed for
// each once the close is handed over. The returned bool is false when an
// existing expectation was refreshed rather than created.
func (t *Table) Add(r Request, now time.Time, evicted []Expectation) (Expectation, bool, []Expectation, error) {
	t.mu.Lock()
	defer t.mu.Unlock()

	port, refresh, err := t.choosePort(r)
	if err != nil {
		return Expectation{}, false, evicted, err
	}
	k := MakeKey(r.Peer, r.Addr, port)
	if refresh {
		e := t.byKey[k]
		e.Expires = now.Add(t.lim.Timeout)
		e.Kind = r.Kind
		t.byKey[k] = e
		return e, false, evicted, nil
	}
	if len(t.byKey) >= t.lim.Total {
		return Expectation{}, false, evicted, ErrFull
	}
	keys := t.bySession[r.Session]
	for len(keys) >= t.lim.PerSession {
		evicted = append(evicted, t.byKey[keys[0]])
		t.markLocked(keys[0], r.Session)
		delete(t.byKey, keys[0])
		keys = append(keys[:0], keys[1:]...)
	}
	t.nextID++
	r.Port = port
	e := Expectation{ID: t.nextID, Request: r, Created: now, Expires: now.Add(t.lim.Timeout)}
	t.byKey[k] = e
	t.bySession[r.Session] = append(keys, k)
	t.peak = max(t.peak, len(t.byKey))
	return e, true, evicted, nil
}

// Full reports whether session id has as many pending expectations as it
// may: its next new one evicts the oldest.
func (t *Table) Full(id uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.bySession[id]) >= t.lim.PerSession
}

// choosePort returns the port to expect, and whether the tuple is already
// expected by the same session for the same target.
func (t *Table) choosePort(r Request) (uint16, bool, error) {
	free := func(p uint16) (ok, same bool) {
		k := MakeKey(r.Peer, r.Addr, p)
		if c, closing := t.closing[k]; closing && (c.session == 0 || c.session != r.Session) {
			return false, false
		}
		e, exists := t.byKey[k]
		if !exists {
			return true, false
		}
		if e.Session == r.Session && e.To == r.To {
			return true, true
		}
		return false, false
	}
	if ok, same := free(r.Port); ok {
		return r.Port, same, nil
	}
	if !r.To.IsValid() {
		// Untranslated: the announced port is the port; nothing to choose.
		return 0, false, ErrConflict
	}
	// Like nf_nat_ftp: try the following ports, wrapping within [MinPort, 65535].
	p := r.Port
	for i := 0; i < 128; i++ {
		p++
		if p < t.lim.MinPort {
			p = t.lim.MinPort
		}
		if ok, same := free(p); ok {
			return p, same, nil
		}
	}
	return 0, false, ErrNoPort
}

// removeLocked deletes the expectation with key k.
func (t *Table) removeLocked(k Key) (Expectation, bool) {
	e, ok := t.byKey[k]
	if !ok {
		return e, false
	}
	delete(t.byKey, k)
	keys := t.bySession[e.Session]
	for i := range keys {
		if keys[i] == k {
			keys = append(keys[:i], keys[i+1:]...)
			break
		}
	}
	if len(keys) == 0 {
		delete(t.bySession, e.Session)
	} else {
		t.bySession[e.Session] = keys
	}
	return e, true
}

// shrinkMin is the fewest expectations a table's maps are made again from:
// below it, what they keep is not worth the copy.
const shrinkMin = 1024

// shrinkLocked makes the maps again when at most a quarter of their peak is
// left, giving back the room a burst of expectations took (Go maps never
// shrink). Each expectation is copied at most once per three removed.
func (t *Table) shrinkLocked() {
	if t.peak < shrinkMin || len(t.byKey) > t.peak/4 {
		return
	}
	byKey := make(map[Key]Expectation, len(t.byKey))
	for k, e := range t.byKey {
		byKey[k] = e
	}
	bySession := make(map[uint64][]Key, len(t.bySession))
	for id, keys := range t.bySession {
		bySession[id] = keys
	}
	t.byKey, t.bySession, t.peak = byKey, bySession, len(byKey)
}

// Take removes and returns the expectation a new data connection with key k
// fulfilled. The kernel deleted its hole's element (one-shot); one with a
// DNAT mapping (To set) the caller deletes, and calls Closed once that
// close is handed over.
func (t *Table) Take(k Key) (Expectation, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.shrinkLocked()
	e, ok := t.removeLocked(k)
	if ok && e.To.IsValid() {
		t.markLocked(k, 0)
	}
	return e, ok
}

// Delete removes the expectation e if it is still the one in the table,
// for the caller to close its hole: it calls Closed once the close is
// handed over.
func (t *Table) Delete(e Expectation) bool { return t.remove(e, true) }

// Closed tells that the close of key k's hole, for an expectation Add
// evicted, Take, Delete or RemoveSession removed, was handed over to the
// rule manager (or will never be): the key can be given again.
func (t *Table) Closed(k Key) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.closing[k]
	if !ok {
		return
	}
	if c.n--; c.n == 0 {
		delete(t.closing, k)
		return
	}
	t.closing[k] = c
}

// markLocked records a close of key k to be handed over; session is the
// session that may reuse k meanwhile (its own eviction), or 0.
func (t *Table) markLocked(k Key, session uint64) {
	c, ok := t.closing[k]
	switch {
	case !ok:
		c.session = session
	case c.session != session:
		c.session = 0
	}
	c.n++
	t.closing[k] = c
}

// Remove deletes the expectation e if it is still the one in the table: one
// whose hole was never opened (its commit failed).
func (t *Table) Remove(e Expectation) bool { return t.remove(e, false) }

// remove removes the expectation e if it is still the one in the table;
// closing: the caller closes its hole (Delete).
func (t *Table) remove(e Expectation, closing bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := e.Key()
	if cur, ok := t.byKey[k]; !ok || cur.ID != e.ID {
		return false
	}
	t.removeLocked(k)
	if closing {
		t.markLocked(k, 0)
	}
	t.shrinkLocked()
	return true
}

// Expire removes the expectations whose time is up and appends them to dst.
func (t *Table) Expire(now time.Time, dst []Expectation) []Expectation {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, e := range t.byKey {
		if !now.Before(e.Expires) {
			t.removeLocked(k)
			dst = append(dst, e)
		}
	}
	t.shrinkLocked()
	return dst
}

// RemoveSession removes all expectations of a session and appends them to
// dst, for the caller to close their holes: it calls Closed for each once
// its close is handed over.
func (t *Table) RemoveSession(id uint64, dst []Expectation) []Expectation {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range append([]Key(nil), t.bySession[id]...) {
		if e, ok := t.removeLocked(k); ok {
			t.markLocked(k, 0)
			dst = append(dst, e)
		}
	}
	t.shrinkLocked()
	return dst
}

// List returns the pending expectations ordered by ID.
func (t *Table) List() []Expectation {
	t.mu.Lock()
	out := make([]Expectation, 0, len(t.byKey))
	for _, e := range t.byKey {
		out = append(out, e)
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Pending reports whether e is still in the table: not evicted, taken,
// expired or removed since Add returned it.
func (t *Table) Pending(e Expectation) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur, ok := t.byKey[e.Key()]
	return ok && cur.ID == e.ID
}

// Closing returns how many keys wait for their closes to be handed over.
func (t *Table) Closing() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.closing)
}

// Len returns the number of pending expectations.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byKey)
}
