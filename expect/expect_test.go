package expect

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ftpct/ftpct/ftpparse"
)

var (
	srv  = netip.MustParseAddr("203.0.113.2")
	pub  = netip.MustParseAddr("203.0.113.1")
	cli1 = netip.MustParseAddr("10.0.1.2")
	cli2 = netip.MustParseAddr("10.0.1.3")
	t0   = time.Unix(1_700_000_000, 0)
)

func natReq(session uint64, client netip.Addr, port uint16) Request {
	return Request{Session: session, Kind: ftpparse.KindPORT, Peer: srv, Addr: pub, Port: port, To: netip.AddrPortFrom(client, port)}
}

func TestExpectAdd(t *testing.T) {
	type add struct {
		req         Request
		wantPort    uint16
		wantCreated bool
		wantEvicted []uint16 // ports
		wantErr     error
	}
	tests := []struct {
		name string
		lim  Limits
		adds []add
	}{
		{
			name: "same port kept",
			adds: []add{{req: natReq(1, cli1, 40000), wantPort: 40000, wantCreated: true}},
		},
		{
			name: "repeat refreshes",
			adds: []add{
				{req: natReq(1, cli1, 40000), wantPort: 40000, wantCreated: true},
				{req: natReq(1, cli1, 40000), wantPort: 40000},
			},
		},
		{
			name: "taken port moves for another client",
			lim:  Limits{PerSession: 4},
			adds: []add{
				{req: natReq(1, cli1, 40000), wantPort: 40000, wantCreated: true},
				{req: natReq(2, cli2, 40000), wantPort: 40001, wantCreated: true},
				{req: natReq(3, cli2, 40000), wantPort: 40002, wantCreated: true},
			},
		},
		{
			name: "wraps past 65535 to MinPort",
			adds: []add{
				{req: natReq(1, cli1, 65535), wantPort: 65535, wantCreated: true},
				{req: natReq(2, cli2, 65535), wantPort: 1024, wantCreated: true},
			},
		},
		{
			name: "untranslated conflict refused",
			adds: []add{
				{req: Request{Session: 1, Peer: srv, Addr: cli1, Port: 40000}, wantPort: 40000, wantCreated: true},
				{req: Request{Session: 2, Peer: srv, Addr: cli1, Port: 40000}, wantErr: ErrConflict},
			},
		},
		{
			name: "new announcement evicts the oldest",
			adds: []add{
				{req: natReq(1, cli1, 40000), wantPort: 40000, wantCreated: true},
				{req: natReq(1, cli1, 40001), wantPort: 40001, wantCreated: true, wantEvicted: []uint16{40000}},
			},
		},
		{
			name: "total limit refuses",
			lim:  Limits{PerSession: 1, Total: 2},
			adds: []add{
				{req: natReq(1, cli1, 40000), wantPort: 40000, wantCreated: true},
				{req: natReq(2, cli2, 41000), wantPort: 41000, wantCreated: true},
				{req: natReq(3, cli2, 42000), wantErr: ErrFull},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := tt.lim
			if lim.Total == 0 {
				lim.Total = 100
			}
			lim.Timeout = time.Minute
			tab := NewTable(lim)
			for i, a := range tt.adds {
				e, created, evicted, err := tab.Add(a.req, t0, nil)
				if !errors.Is(err, a.wantErr) {
					t.Fatalf("add %d: err %v, want %v", i, err, a.wantErr)
				}
				if err != nil {
					continue
				}
				var ports []uint16
				for _, x := range evicted {
					ports = append(ports, x.Port)
				}
				if diff := cmp.Diff(a.wantEvicted, ports); diff != "" {
					t.Errorf("add %d evicted (-want +got):\n%s", i, diff)
				}
				if e.Port != a.wantPort || created != a.wantCreated {
					t.Errorf("add %d: port %d created %v, want %d %v", i, e.Port, created, a.wantPort, a.wantCreated)
				}
			}
		})
	}
}

func TestExpectLifecycle(t *testing.T) {
	tab := NewTable(Limits{PerSession: 2, Total: 10, Timeout: time.Minute})
	a, _, _, _ := tab.Add(natReq(1, cli1, 40000), t0, nil)
	b, _, _, _ := tab.Add(natReq(1, cli1, 40001), t0.Add(30*time.Second), nil)
	c, _, _, _ := tab.Add(natReq(2, cli2, 50000), t0, nil)

	if got, ok := tab.Take(MakeKey(srv, pub, 40000)); !ok || got.ID != a.ID {
		t.Fatalf("Take = %v %v, want %v", got, ok, a)
	}
	if _, ok := tab.Take(MakeKey(srv, pub, 40000)); ok {
		t.Fatal("one-shot expectation taken twice")
	}
	expired := tab.Expire(t0.Add(time.Minute), nil)
	if len(expired) != 1 || expired[0].ID != c.ID {
		t.Fatalf("Expire = %v, want only %v", expired, c)
	}
	for _, p := range []struct {
		name string
		x    Expectation
		want bool
	}{{name: "taken", x: a, want: false}, {name: "pending", x: b, want: true}, {name: "expired", x: c, want: false}} {
		if got := tab.Pending(p.x); got != p.want {
			t.Errorf("Pending(%s) = %v, want %v", p.name, got, p.want)
		}
	}
	gone := tab.RemoveSession(1, nil)
	if len(gone) != 1 || gone[0].ID != b.ID {
		t.Fatalf("RemoveSession = %v, want %v", gone, b)
	}
	if tab.Pending(b) {
		t.Error("Pending after RemoveSession")
	}
	if tab.Len() != 0 || len(tab.List()) != 0 {
		t.Errorf("table not empty: %v", tab.List())
	}
	// A stale Remove of a replaced expectation removes nothing.
	d, _, _, _ := tab.Add(natReq(3, cli1, 40000), t0, nil)
	if tab.Pending(a) || !tab.Pending(d) {
		t.Errorf("Pending of the old and the new expectation with one key = %v, %v; want false, true", tab.Pending(a), tab.Pending(d))
	}
	if tab.Remove(a) {
		t.Error("Remove of an old expectation with the same key removed the new one")
	}
	if !tab.Remove(d) {
		t.Error("Remove of the current expectation failed")
	}
}

// After a burst, the maps are made again once a quarter of the peak is
// left; what is left stays reachable by key and by session.
func TestShrinkAfterBurst(t *testing.T) {
	const burst = 4 * shrinkMin
	peer, addr := natReq(0, cli1, 0).Peer, natReq(0, cli1, 0).Addr
	tests := []struct {
		name     string
		remove   func(tab *Table, n int) // removes all but the last n
		keep     int
		wantPeak int
	}{
		{name: "expired", keep: burst / 8, wantPeak: burst / 8, remove: func(tab *Table, n int) {
			tab.Expire(t0.Add(time.Minute), nil)
		}},
		// One at a time: made again when a quarter was left, not since.
		{name: "sessions gone", keep: burst / 8, wantPeak: burst / 4, remove: func(tab *Table, n int) {
			for s := range burst - n {
				tab.RemoveSession(uint64(s+1), nil)
			}
		}},
		{name: "taken, half left: kept", keep: burst / 2, wantPeak: burst, remove: func(tab *Table, n int) {
			for s := range burst - n {
				tab.Take(MakeKey(peer, addr, uint16(2000+s)))
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := NewTable(Limits{PerSession: 1, Total: burst, Timeout: time.Minute})
			for s := range burst {
				now := t0 // the last keep ones later: they expire later
				if s >= burst-tt.keep {
					now = t0.Add(time.Hour)
				}
				if _, _, _, err := tab.Add(natReq(uint64(s+1), cli1, uint16(2000+s)), now, nil); err != nil {
					t.Fatal(err)
				}
			}
			tt.remove(tab, tt.keep)
			if tab.Len() != tt.keep || tab.peak != tt.wantPeak {
				t.Errorf("%d left with peak %d, want %d and %d", tab.Len(), tab.peak, tt.keep, tt.wantPeak)
			}
			for s := burst - tt.keep; s < burst; s++ {
				got := tab.RemoveSession(uint64(s+1), nil)
				if len(got) != 1 || got[0].Port != uint16(2000+s) {
					t.Fatalf("session %d: removed %+v, want its expectation of port %d", s+1, got, 2000+s)
				}
			}
		})
	}
}

// A key whose expectation left the table is not given to another
// expectation until the caller handed its hole's close over (Closed):
// an open of the key must reach the kernel after that close, or it clashes
// with the old element (another DNAT target) or is deleted by it.
func TestClosingKeys(t *testing.T) {
	untranslated := func(session uint64, port uint16) Request {
		return Request{Session: session, Kind: ftpparse.KindPORT, Peer: srv, Addr: cli1, Port: port}
	}
	k := MakeKey(srv, pub, 40000)
	type step struct {
		do       string // "add", "take", "delete", "removesession", "remove", "closed"
		req      Request
		wantPort uint16
		wantErr  error
		closing  int // tab.Closing() after the step
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "evicted key moves another session's announcement until closed", steps: []step{
			{do: "add", req: natReq(1, cli1, 40000), wantPort: 40000},
			{do: "add", req: natReq(1, cli1, 40001), wantPort: 40001, closing: 1}, // evicts 40000
			{do: "add", req: natReq(2, cli2, 40000), wantPort: 40002, closing: 1},
			{do: "closed", closing: 0},
			{do: "add", req: natReq(3, cli2, 40000), wantPort: 40000},
		}},
		{name: "evicting session may reuse its key at once", steps: []step{
			{do: "add", req: natReq(1, cli1, 40000), wantPort: 40000},
			{do: "add", req: natReq(1, cli1, 40001), wantPort: 40001, closing: 1},
			{do: "add", req: natReq(1, cli1, 40000), wantPort: 40000, closing: 2}, // evicts 40001
		}},
		{name: "untranslated: conflict while closing, then free", steps: []step{
			{do: "add", req: untranslated(1, 40000), wantPort: 40000},
			{do: "add", req: untranslated(1, 40001), wantPort: 40001, closing: 1},
			{do: "add", req: untranslated(2, 40000), wantErr: ErrConflict, closing: 1},
			{do: "add", req: untranslated(1, 40000), wantPort: 40000, closing: 2}, // its own: ordered
		}},
		{name: "taken with a DNAT mapping: kept from everyone", steps: []step{
			{do: "add", req: natReq(1, cli1, 40000), wantPort: 40000},
			{do: "take", closing: 1},
			{do: "add", req: natReq(1, cli1, 40000), wantPort: 40001, closing: 1},
			{do: "closed", closing: 0},
		}},
		{name: "taken without a mapping: nothing to close", steps: []step{
			{do: "add", req: untranslated(1, 40000), wantPort: 40000},
			{do: "take", req: untranslated(1, 40000)},
			{do: "add", req: untranslated(2, 40000), wantPort: 40000},
		}},
		{name: "session forgotten", steps: []step{
			{do: "add", req: natReq(1, cli1, 40000), wantPort: 40000},
			{do: "removesession", closing: 1},
			{do: "add", req: natReq(2, cli2, 40000), wantPort: 40001, closing: 1},
			{do: "closed", closing: 0},
		}},
		{name: "deleted by hand", steps: []step{
			{do: "add", req: natReq(1, cli1, 40000), wantPort: 40000},
			{do: "delete", closing: 1},
			{do: "closed", closing: 0},
		}},
		{name: "removed after a failed open: nothing to close", steps: []step{
			{do: "add", req: natReq(1, cli1, 40000), wantPort: 40000},
			{do: "remove", closing: 0},
			{do: "add", req: natReq(2, cli2, 40000), wantPort: 40000},
		}},
		{name: "two closes pending: both must be handed over", steps: []step{
			{do: "add", req: natReq(1, cli1, 40000), wantPort: 40000},
			{do: "add", req: natReq(1, cli1, 40001), wantPort: 40001, closing: 1},
			{do: "add", req: natReq(1, cli1, 40000), wantPort: 40000, closing: 2},
			{do: "removesession", closing: 2}, // 40000 closing twice now
			{do: "closed", closing: 2},
			{do: "add", req: natReq(2, cli2, 40000), wantPort: 40002, closing: 2}, // 40001 closing too
			{do: "closed", closing: 1},
			{do: "add", req: natReq(3, cli2, 40000), wantPort: 40000, closing: 1},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := NewTable(Limits{PerSession: 1, Total: 100, Timeout: time.Minute})
			var last Expectation
			for i, s := range tt.steps {
				switch s.do {
				case "add":
					e, _, _, err := tab.Add(s.req, t0, nil)
					if !errors.Is(err, s.wantErr) {
						t.Fatalf("step %d: err %v, want %v", i, err, s.wantErr)
					}
					if err == nil {
						if e.Port != s.wantPort {
							t.Errorf("step %d: port %d, want %d", i, e.Port, s.wantPort)
						}
						last = e
					}
				case "take":
					if _, ok := tab.Take(last.Key()); !ok {
						t.Fatalf("step %d: Take found nothing", i)
					}
				case "delete":
					if !tab.Delete(last) {
						t.Fatalf("step %d: Delete found nothing", i)
					}
				case "remove":
					if !tab.Remove(last) {
						t.Fatalf("step %d: Remove found nothing", i)
					}
				case "removesession":
					tab.RemoveSession(last.Session, nil)
				case "closed":
					tab.Closed(k)
				}
				if got := tab.Closing(); got != s.closing {
					t.Errorf("step %d (%s): %d keys closing, want %d", i, s.do, got, s.closing)
				}
			}
		})
	}
}
