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
	gone := tab.RemoveSession(1, nil)
	if len(gone) != 1 || gone[0].ID != b.ID {
		t.Fatalf("RemoveSession = %v, want %v", gone, b)
	}
	if tab.Len() != 0 || len(tab.List()) != 0 {
		t.Errorf("table not empty: %v", tab.List())
	}
	// A stale Remove of a replaced expectation removes nothing.
	d, _, _, _ := tab.Add(natReq(3, cli1, 40000), t0, nil)
	if tab.Remove(a) {
		t.Error("Remove of an old expectation with the same key removed the new one")
	}
	if !tab.Remove(d) {
		t.Error("Remove of the current expectation failed")
	}
}
