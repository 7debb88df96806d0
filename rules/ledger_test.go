package rules

import (
	"testing"
	"time"
)

func TestLedger(t *testing.T) {
	// IPv4 hole keys (12 bytes) and an IPv6 one (36).
	k1, k2 := []byte{1, 2, 3, 4, 5, 6, 7, 8, 0, 21, 0, 0}, []byte{5, 6, 7, 8, 1, 2, 3, 4, 0, 22, 0, 0}
	k6 := make([]byte, 36)
	t0 := time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC)
	var l ledger
	tests := []struct {
		name  string
		do    func()
		at    time.Time
		fam   uint8
		set   ledgerSet
		key   []byte
		want  bool // absent
		wantN int  // keys recorded
	}{
		{name: "incomplete: nothing is absent", do: func() {}, at: t0, set: ledgerExpect, key: k1, want: false},
		{name: "complete and empty: absent", do: func() { l.reset(0) }, at: t0, set: ledgerExpect, key: k1, want: true},
		{name: "the other family stays incomplete", do: func() {}, at: t0, fam: 1, set: ledgerExpect, key: k1, want: false},
		{name: "added: may be there", do: func() { l.added(0, ledgerExpect, k1, t0, time.Minute) }, at: t0, set: ledgerExpect, key: k1, want: false, wantN: 1},
		{name: "the other set of the key is absent", do: func() {}, at: t0, set: ledgerXlate, key: k1, want: true, wantN: 1},
		{name: "another key is absent", do: func() {}, at: t0, set: ledgerExpect, key: k2, want: true, wantN: 1},
		{name: "expired: absent", do: func() {}, at: t0.Add(time.Minute + time.Millisecond), set: ledgerExpect, key: k1, want: true, wantN: 1},
		{name: "a shorter re-add keeps the longer timeout", do: func() { l.added(0, ledgerExpect, k1, t0, time.Second) }, at: t0.Add(30 * time.Second), set: ledgerExpect, key: k1, want: false, wantN: 1},
		{name: "deleted: absent", do: func() { l.deleted(0, ledgerExpect, k1) }, at: t0, set: ledgerExpect, key: k1, want: true, wantN: 0},
		{name: "unknown again: not absent", do: func() { l.unknown(0) }, at: t0, set: ledgerExpect, key: k1, want: false},
		{name: "known: absent", do: func() { l.known(0) }, at: t0, set: ledgerExpect, key: k1, want: true},
		{name: "a key of no known length is never absent", do: func() {}, at: t0, set: ledgerExpect, key: make([]byte, 64), want: false},
		{name: "IPv6: complete and empty", do: func() { l.reset(1) }, at: t0, fam: 1, set: ledgerXlate, key: k6, want: true},
		{name: "IPv6: added", do: func() { l.added(1, ledgerXlate, k6, t0, time.Minute) }, at: t0, fam: 1, set: ledgerXlate, key: k6, want: false, wantN: 1},
		{name: "IPv6: deleted", do: func() { l.deleted(1, ledgerXlate, k6) }, at: t0, fam: 1, set: ledgerXlate, key: k6, want: true, wantN: 0},
		{
			name: "pruned once expired",
			do: func() {
				l.added(0, ledgerExpect, k1, t0, time.Minute)
				l.added(0, ledgerXlate, k2, t0, time.Hour)
				l.prune(t0.Add(2 * time.Minute))
			},
			at: t0, set: ledgerXlate, key: k2, want: false, wantN: 1,
		},
		{name: "reset drops the family's keys", do: func() { l.reset(0) }, at: t0, set: ledgerXlate, key: k2, want: true},
	}
	for _, tc := range tests {
		tc.do()
		if got := l.absent(tc.fam, tc.set, tc.key, tc.at); got != tc.want {
			t.Errorf("%s: absent %v, want %v", tc.name, got, tc.want)
		}
		if n := l.size(); n != tc.wantN {
			t.Errorf("%s: %d keys, want %d", tc.name, n, tc.wantN)
		}
	}
}

// TestLedgerShrinks: once a quarter of its peak is left, the map is made
// again (a Go map keeps its buckets).
func TestLedgerShrinks(t *testing.T) {
	var l ledger
	l.reset(0)
	t0 := time.Now()
	for i := range 4096 {
		l.added(0, ledgerExpect, []byte{10, 0, byte(i >> 8), byte(i), 10, 0, 0, 1, 0, 21, 0, 0}, t0, time.Second)
	}
	l.added(0, ledgerExpect, []byte{10, 1, 0, 0, 10, 0, 0, 1, 0, 21, 0, 0}, t0, time.Hour)
	l.prune(t0.Add(time.Minute))
	if n := l.size(); n != 1 {
		t.Fatalf("%d keys after prune, want 1", n)
	}
	if l.peak != 1 {
		t.Errorf("peak %d after prune, want 1 (map made again)", l.peak)
	}
}
