package rules

import (
	"sync"
	"time"
)

// ledger is what the Manager knows of the holes in its sets: which ones
// may be in the kernel (added by this Manager and neither deleted nor
// expired since). The Committer reads it to drop an element added and
// deleted again within one pass when the element was not in the kernel
// before (ledger.absent): a storm's evicted holes then never reach
// nftables. Only the expect set and the xlate map are kept (one entry per
// hole key holding both); held flows are not, and never count as absent.
//
// A family's record is complete only when every element of its sets was
// added by this Manager: its table was created by Install, or adopted and
// then Reconcile recorded what it kept. Until then no element of the
// family counts as absent. Elements the kernel removes on its own (a hole
// used by its data connection, an expired one) stay in the record until
// their timeout, which only costs a netting that could have been done.
type ledger struct {
	mu       sync.Mutex
	complete [2]bool // per family: 0 IPv4, 1 IPv6
	// Per key: the sets it may be in (ledgerSet, low 2 bits) and, above
	// them, the Unix millisecond after which the kernel has dropped what
	// was added (ledgerEntry). IPv4 keys are 12 bytes, IPv6 keys 36:
	// without pointers, for the collector, and small (a pending hole
	// costs one entry of 20 or 44 bytes, about 40 or 90 with the map's
	// slack).
	v4     map[[12]byte]uint64
	v6     map[[36]byte]uint64
	peak   int       // entries at their most since the maps were made
	pruned time.Time // when expired entries were last dropped
}

// ledgerSet is one of the sets the ledger keeps.
type ledgerSet uint8

const (
	ledgerExpect ledgerSet = 1 << iota
	ledgerXlate
)

// ledgerEntry packs the sets and the expiry of a key.
type ledgerEntry uint64

func makeEntry(sets ledgerSet, untilMs int64) ledgerEntry {
	return ledgerEntry(uint64(untilMs)<<2 | uint64(sets&3))
}

func (e ledgerEntry) sets() ledgerSet { return ledgerSet(e & 3) }
func (e ledgerEntry) until() int64    { return int64(e >> 2) }

// pruneEvery is how often expired entries are dropped (checked per pass).
const pruneEvery = 10 * time.Second

// lookup calls f with the entry under key (ok false when there is none)
// and stores what f returns (deleting the key when it returns 0); f is nil
// for a read. The ledger is locked.
func (l *ledger) lookup(key []byte, f func(e ledgerEntry, ok bool) ledgerEntry) (ledgerEntry, bool, bool) {
	switch len(key) {
	case 12:
		if l.v4 == nil {
			l.v4 = map[[12]byte]uint64{}
		}
		return use(l, l.v4, [12]byte(key), f)
	case 36:
		if l.v6 == nil {
			l.v6 = map[[36]byte]uint64{}
		}
		return use(l, l.v6, [36]byte(key), f)
	}
	return 0, false, false
}

func use[K comparable](l *ledger, m map[K]uint64, k K, f func(ledgerEntry, bool) ledgerEntry) (ledgerEntry, bool, bool) {
	v, ok := m[k]
	e := ledgerEntry(v)
	if f == nil {
		return e, ok, true
	}
	switch n := f(e, ok); {
	case n == 0 && ok:
		delete(m, k)
	case n != 0:
		m[k] = uint64(n)
		l.peak = max(l.peak, len(l.v4)+len(l.v6))
	}
	return e, ok, true
}

// reset makes fam's record complete and empty: its table was just made.
func (l *ledger) reset(fam uint8) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if fam == 0 {
		l.v4 = nil
	} else {
		l.v6 = nil
	}
	l.complete[fam&1] = true
}

// unknown makes fam's record incomplete: its table was adopted with
// whatever elements an earlier run left.
func (l *ledger) unknown(fam uint8) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.complete[fam&1] = false
}

// known makes fam's record complete: every element left in its sets was
// recorded (Reconcile).
func (l *ledger) known(fam uint8) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.complete[fam&1] = true
}

// absent reports whether the element of set s under key (of family fam)
// is surely not in the kernel at now.
func (l *ledger) absent(fam uint8, s ledgerSet, key []byte, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if fam > 1 || !l.complete[fam] {
		return false
	}
	e, ok, valid := l.lookup(key, nil)
	return valid && (!ok || e.sets()&s == 0 || now.UnixMilli() > e.until())
}

// added records that the element of set s under key was committed at or
// before now, with timeout t.
func (l *ledger) added(fam uint8, s ledgerSet, key []byte, now time.Time, t time.Duration) {
	nowMs := now.UnixMilli()
	// Rounded up: the kernel counts in milliseconds from the commit,
	// which came before now.
	until := nowMs + int64((t+time.Millisecond-1)/time.Millisecond)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lookup(key, func(e ledgerEntry, ok bool) ledgerEntry {
		if !ok || nowMs > e.until() {
			e = 0
		}
		// A re-add may or may not renew the kernel's timeout: keep the later.
		return makeEntry(e.sets()|s, max(e.until(), until))
	})
}

// deleted records that the element of set s under key is gone: its delete
// was committed, or failed because it was gone already.
func (l *ledger) deleted(fam uint8, s ledgerSet, key []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lookup(key, func(e ledgerEntry, ok bool) ledgerEntry {
		if !ok || e.sets()&^s == 0 {
			return 0
		}
		return makeEntry(e.sets()&^s, e.until())
	})
}

// prune drops the entries whose elements expired, at most every
// pruneEvery, and makes the maps again once a quarter of their peak is
// left (a Go map does not shrink).
func (l *ledger) prune(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.pruned) < pruneEvery {
		return
	}
	l.pruned = now
	ms := now.UnixMilli()
	l.v4 = pruneMap(l.v4, ms, l.peak)
	l.v6 = pruneMap(l.v6, ms, l.peak)
	if n := len(l.v4) + len(l.v6); l.peak >= 1024 && n < l.peak/4 {
		l.peak = n
	}
}

func pruneMap[K comparable](m map[K]uint64, ms int64, peak int) map[K]uint64 {
	for k, v := range m {
		if ms > ledgerEntry(v).until() {
			delete(m, k)
		}
	}
	if peak < 1024 || len(m) >= peak/4 {
		return m
	}
	fresh := make(map[K]uint64, len(m))
	for k, v := range m {
		fresh[k] = v
	}
	return fresh
}

// size is the number of keys recorded.
func (l *ledger) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.v4) + len(l.v6)
}
