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
	complete [2]bool // per ledgerFamily
	holes    map[ledgerKey]ledgerEntry
	peak     int       // len(holes) at its largest since the map was made
	pruned   time.Time // when expired entries were last dropped
}

// ledgerSet is one of the sets the ledger keeps.
type ledgerSet uint8

const (
	ledgerExpect ledgerSet = 1 << iota
	ledgerXlate
)

// ledgerKey is a hole's key (Hole.expectKey) in one family: 0 for IPv4, 1
// for IPv6. Without pointers, for the collector.
type ledgerKey struct {
	fam uint8
	n   uint8
	key [2*16 + regSize]byte
}

// ledgerEntry is what may be in the kernel under a key, until when.
type ledgerEntry struct {
	until int64 // UnixNano after which the kernel has dropped every element added
	sets  ledgerSet
}

// pruneEvery is how often expired entries are dropped (checked per pass).
const pruneEvery = 10 * time.Second

func makeLedgerKey(fam uint8, key []byte) (ledgerKey, bool) {
	k := ledgerKey{fam: fam, n: uint8(len(key))}
	if len(key) > len(k.key) || fam > 1 {
		return k, false
	}
	copy(k.key[:], key)
	return k, true
}

// reset makes fam's record complete and empty: its table was just made.
func (l *ledger) reset(fam uint8) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.holes {
		if k.fam == fam {
			delete(l.holes, k)
		}
	}
	l.complete[fam] = true
}

// unknown makes fam's record incomplete: its table was adopted with
// whatever elements an earlier run left.
func (l *ledger) unknown(fam uint8) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.complete[fam] = false
}

// known makes fam's record complete: every element left in its sets was
// recorded (Reconcile).
func (l *ledger) known(fam uint8) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.complete[fam] = true
}

// absent reports whether the element of set s under key is surely not in
// the kernel at now.
func (l *ledger) absent(fam uint8, s ledgerSet, key []byte, now time.Time) bool {
	k, ok := makeLedgerKey(fam, key)
	if !ok {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.complete[fam] {
		return false
	}
	e, ok := l.holes[k]
	return !ok || e.sets&s == 0 || now.UnixNano() > e.until
}

// added records that the element of set s under key was committed at or
// before now, with timeout t.
func (l *ledger) added(fam uint8, s ledgerSet, key []byte, now time.Time, t time.Duration) {
	k, ok := makeLedgerKey(fam, key)
	if !ok {
		return
	}
	until := now.Add(t).UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.holes == nil {
		l.holes = map[ledgerKey]ledgerEntry{}
	}
	e := l.holes[k]
	if e.sets == 0 || now.UnixNano() > e.until {
		e = ledgerEntry{}
	}
	// A re-add may or may not renew the kernel's timeout: keep the later.
	e.sets |= s
	e.until = max(e.until, until)
	l.holes[k] = e
	l.peak = max(l.peak, len(l.holes))
}

// deleted records that the element of set s under key is gone: its delete
// was committed, or failed because it was gone already.
func (l *ledger) deleted(fam uint8, s ledgerSet, key []byte) {
	k, ok := makeLedgerKey(fam, key)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.holes[k]
	if !ok {
		return
	}
	if e.sets &^= s; e.sets == 0 {
		delete(l.holes, k)
		return
	}
	l.holes[k] = e
}

// prune drops the entries whose elements expired, at most every
// pruneEvery, and makes the map again once a quarter of its peak is left
// (a Go map does not shrink).
func (l *ledger) prune(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.pruned) < pruneEvery {
		return
	}
	l.pruned = now
	ns := now.UnixNano()
	for k, e := range l.holes {
		if ns > e.until {
			delete(l.holes, k)
		}
	}
	if l.peak >= 1024 && len(l.holes) < l.peak/4 {
		m := make(map[ledgerKey]ledgerEntry, len(l.holes))
		for k, e := range l.holes {
			m[k] = e
		}
		l.holes, l.peak = m, len(m)
	}
}

// size is the number of keys recorded.
func (l *ledger) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.holes)
}
