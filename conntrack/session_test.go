package conntrack

import (
	"errors"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestTableBothDirections(t *testing.T) {
	cli1, cli2 := netip.MustParseAddr("10.0.1.2"), netip.MustParseAddr("10.0.1.3")
	srv, pub := netip.MustParseAddr("203.0.113.2"), netip.MustParseAddr("203.0.113.1")
	t0 := time.Unix(1_700_000_000, 0)
	b := Binding{
		Orig:  Tuple{Src: cli1, Dst: srv, SrcPort: 40000, DstPort: 21},
		Reply: Tuple{Src: srv, Dst: pub, SrcPort: 21, DstPort: 40000},
	}
	if !b.Translated() {
		t.Error("masqueraded binding not reported as translated")
	}
	tab := NewTable(1)
	s, err := tab.Add(b, t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		t    Tuple
		dir  Dir
	}{{"orig", b.Orig, DirOrig}, {"reply", b.Reply, DirReply}} {
		got, dir, ok := tab.Lookup(tc.t.Key())
		if !ok || got != s || dir != tc.dir {
			t.Errorf("%s: Lookup = %v %v %v", tc.name, got, dir, ok)
		}
	}
	if _, err := tab.Add(Binding{Orig: Tuple{Src: cli2, Dst: srv, SrcPort: 1, DstPort: 21}, Reply: Tuple{Src: srv, Dst: pub, SrcPort: 21, DstPort: 1}}, t0); !errors.Is(err, ErrTableFull) {
		t.Errorf("second session: err %v, want ErrTableFull", err)
	}
	tab.Remove(s)
	if _, _, ok := tab.Lookup(b.Reply.Key()); ok || tab.Len() != 0 {
		t.Error("session still present after Remove")
	}
}

// A tracked control connection costs its Session: it must not grow unseen.
// On 64-bit it was 3424 bytes before the stream normaliser kept one record
// per rewrite, 3440 with the binding's ct labels, 2408 with 64 records in
// line per direction; 312 with one in line (a burst spills to a pooled
// block); 280 with its two times as Unix nanoseconds instead of time.Time
// (24 bytes each), in the allocator's 288-byte size class. Change want
// deliberately, with the reason in this comment.
func TestSessionSize(t *testing.T) {
	const want = 280
	if n := unsafe.Sizeof(Session{}); n != want {
		t.Errorf("Session is %d bytes, want %d", n, want)
	}
}

// The times a Session keeps in 8 bytes each read back as they were given,
// to the nanosecond (in the process's location, as time.Unix gives them).
func TestSessionTimes(t *testing.T) {
	for _, tc := range []struct {
		name          string
		created, seen time.Time
	}{
		{name: "whole seconds", created: time.Unix(1_700_000_000, 0), seen: time.Unix(1_700_000_060, 0)},
		{name: "nanoseconds", created: time.Unix(1_700_000_000, 123_456_789), seen: time.Unix(1_700_000_000, 999_999_999)},
		{name: "monotonic reading dropped", created: time.Now(), seen: time.Now().Add(90 * time.Second)},
		{name: "far future", created: time.Date(2200, 1, 2, 3, 4, 5, 6, time.UTC), seen: time.Date(2261, 12, 31, 0, 0, 0, 1, time.UTC)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab := NewTable(1)
			s, err := tab.Add(binding(1, false), tc.created)
			if err != nil {
				t.Fatal(err)
			}
			s.Lock()
			if !s.LastSeen().Equal(tc.created) {
				t.Errorf("LastSeen before a packet = %v, want the creation time %v", s.LastSeen(), tc.created)
			}
			s.Touch(tc.seen)
			got := [2]time.Time{s.Created(), s.LastSeen()}
			s.Unlock()
			want := [2]time.Time{tc.created, tc.seen}
			for i := range got {
				if !got[i].Equal(want[i]) {
					t.Errorf("time %d = %v, want %v", i, got[i], want[i])
				}
			}
		})
	}
}

// binding returns the masqueraded (IPv4) or routed (IPv6) control connection
// number i.
func binding(i int, v6 bool) Binding {
	port := uint16(20000 + i)
	if v6 {
		cli := netip.AddrFrom16([16]byte{0: 0x20, 1: 0x01, 2: 0x0d, 3: 0xb8, 15: byte(i)})
		srv := netip.MustParseAddr("2001:db8:2::2")
		return Binding{Orig: Tuple{Src: cli, Dst: srv, SrcPort: port, DstPort: 21}, Reply: Tuple{Src: srv, Dst: cli, SrcPort: 21, DstPort: port}}
	}
	cli := netip.AddrFrom4([4]byte{10, 0, 1, byte(i)})
	srv, pub := netip.MustParseAddr("203.0.113.2"), netip.MustParseAddr("203.0.113.1")
	return Binding{Orig: Tuple{Src: cli, Dst: srv, SrcPort: port, DstPort: 21}, Reply: Tuple{Src: srv, Dst: pub, SrcPort: 21, DstPort: port}}
}

// Removing a session moves the last one into its place: every other session
// stays reachable by both keys, in either family.
func TestTableRemove(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name   string
		n      int
		remove []int // session numbers, in order
	}{
		{name: "the last", n: 6, remove: []int{5}},
		{name: "the first", n: 6, remove: []int{0}},
		{name: "all, first to last", n: 6, remove: []int{0, 1, 2, 3, 4, 5}},
		{name: "all, last to first", n: 6, remove: []int{5, 4, 3, 2, 1, 0}},
		{name: "some twice", n: 6, remove: []int{2, 2, 4, 0, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := NewTable(tt.n)
			ss := make([]*Session, tt.n)
			for i := range ss {
				s, err := tab.Add(binding(i, i%2 == 1), t0)
				if err != nil {
					t.Fatal(err)
				}
				ss[i] = s
			}
			gone := map[int]bool{}
			for _, r := range tt.remove {
				tab.Remove(ss[r])
				gone[r] = true
			}
			for i, s := range ss {
				b := binding(i, i%2 == 1)
				for _, d := range []Dir{DirOrig, DirReply} {
					got, dir, ok := tab.Lookup(s.Tuple(d).Key())
					if gone[i] {
						if ok {
							t.Errorf("session %d: removed, but found by its %s key", i, d)
						}
						continue
					}
					if !ok || got != s || dir != d || got.Binding.Orig != b.Orig {
						t.Errorf("session %d, %s key: Lookup = %v %v %v", i, d, got, dir, ok)
					}
				}
			}
			if want := tt.n - len(gone); tab.Len() != want || len(tab.Sessions(nil)) != want {
				t.Errorf("Len %d, Sessions %d; want %d", tab.Len(), len(tab.Sessions(nil)), want)
			}
			// Room again for as many as were removed.
			for i := range len(gone) {
				if _, err := tab.Add(binding(100+i, false), t0); err != nil {
					t.Errorf("Add after Remove: %v", err)
				}
			}
		})
	}
}

// Some walks the table down in steps: a round sees every session that was
// there when it began, also when sessions are removed meanwhile.
func TestSome(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name   string
		n      int // sessions
		step   int
		remove func(got *Session) bool // remove this one once seen
	}{
		{name: "empty", n: 0, step: 3},
		{name: "one step", n: 5, step: 10},
		{name: "steps", n: 10, step: 3},
		{name: "zero step takes none", n: 4, step: 0},
		{name: "removing what was seen", n: 10, step: 3, remove: func(*Session) bool { return true }},
		{name: "removing every other", n: 11, step: 2, remove: func(s *Session) bool { return s.ID%2 == 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := NewTable(100)
			want := map[uint64]bool{}
			for i := range tt.n {
				s, err := tab.Add(binding(i, i%3 == 0), t0)
				if err != nil {
					t.Fatal(err)
				}
				want[s.ID] = true
			}
			seen := map[uint64]bool{}
			below, steps := 0, 0
			for {
				var got []*Session
				got, below = tab.Some(nil, below, tt.step)
				steps++
				if len(got) > tt.step {
					t.Fatalf("step %d: %d sessions, want at most %d", steps, len(got), tt.step)
				}
				for _, s := range got {
					seen[s.ID] = true
					if tt.remove != nil && tt.remove(s) {
						tab.Remove(s)
					}
				}
				if below == 0 || steps > tt.n+1 {
					break
				}
			}
			if tt.step == 0 {
				want = map[uint64]bool{}
			}
			if diff := cmp.Diff(want, seen, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("sessions seen in a round (-want +got):\n%s", diff)
			}
		})
	}
}
