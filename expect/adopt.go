package expect

import "time"

// Adopt inserts an expectation taken over from an earlier run of the
// daemon (its hole is still open in the kernel) with the expiry the hole
// has left. The port is r.Port: no other is chosen. Limits apply as in Add,
// but nothing is evicted.
func (t *Table) Adopt(r Request, now, expires time.Time) (Expectation, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := MakeKey(r.Peer, r.Addr, r.Port)
	if _, ok := t.byKey[k]; ok {
		return Expectation{}, ErrConflict
	}
	if len(t.byKey) >= t.lim.Total || len(t.bySession[r.Session]) >= t.lim.PerSession {
		return Expectation{}, ErrFull
	}
	t.nextID++
	e := Expectation{ID: t.nextID, Request: r, Created: now, Expires: expires}
	t.byKey[k] = e
	t.bySession[r.Session] = append(t.bySession[r.Session], k)
	t.peak = max(t.peak, len(t.byKey))
	return e, nil
}
