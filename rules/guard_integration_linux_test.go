//go:build integration

package rules

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ftpct/ftpct/nfq"
	"github.com/ftpct/ftpct/rewrite"
	"github.com/google/go-cmp/cmp"
)

// TestGuard: a control packet the queue accepts with the mark (AcceptMark)
// puts its destination, as its last hook sees it, into @guard and leaves
// with the bit cleared; from then on that address's first SYNs, to any
// port, go to the queue, and nothing else does. Without the mark, no
// element and no SYN queued: what the guard rules add is exactly that.
// Everything runs over loopback inside one namespace: a control connection
// to 127.0.0.1:21 and a "data" connection from 127.0.0.2 to 127.0.0.1:5000.
func TestGuard(t *testing.T) {
	ns, cfg, _ := installed(t, ip4NoAccept)
	path := cfg.NetNS
	nsExec(t, ns, "ip", "addr", "add", "127.0.0.2/8", "dev", "lo")
	// Counts packets that still carry the bit where they are delivered.
	nsExec(t, ns, "nft", "add table ip probe; add chain ip probe in { type filter hook input priority 400; }; "+
		"add rule ip probe in meta mark & 0x00100000 == 0x00100000 counter")

	var mu sync.Mutex
	var syns []uint16 // destination ports of queued SYNs
	mark := false
	handle := func(p nfq.Packet) (nfq.Verdict, []byte) {
		var d rewrite.Packet
		if err := rewrite.Decode(p.Data, &d); err != nil {
			return nfq.Accept, nil
		}
		mu.Lock()
		defer mu.Unlock()
		if d.Flags&(rewrite.FlagSYN|rewrite.FlagACK) == rewrite.FlagSYN && d.DstPort != 21 {
			syns = append(syns, d.DstPort)
		}
		if mark && len(d.Payload(p.Data)) > 0 && d.DstPort == 21 {
			return nfq.AcceptMark, nil
		}
		return nfq.Accept, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	var q *nfq.Queue
	if err := inNetNS(t, path, func() (err error) {
		qc := nfq.DefaultConfig()
		qc.Num, qc.Mark = cfg.Queue, cfg.Mark
		q, err = nfq.Open(ctx, qc, handle)
		return err
	}); err != nil {
		cancel()
		t.Fatalf("open queue: %v", err)
	}
	t.Cleanup(func() { cancel(); q.Close() })

	serve(t, path, netip.MustParseAddrPort("127.0.0.1:5000"))
	listenIn(t, path, netip.MustParseAddrPort("127.0.0.1:21"), func(c net.Conn) {
		defer c.Close()
		c.Read(make([]byte, 100))
	})
	// announce sends one control line from 127.0.0.2 to 127.0.0.1:21.
	announce := func() {
		t.Helper()
		if err := inNetNS(t, path, func() error {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: time.Second}
			c, err := d.Dial("tcp", "127.0.0.1:21")
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte("PORT 127,0,0,1,19,136\r\n"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// data connects from 127.0.0.1 to 127.0.0.1:5000: its SYN leaves from
	// the address the announcement was sent to.
	data := func() {
		t.Helper()
		if got := dial(t, path, netip.MustParseAddrPort("127.0.0.1:5000")); got != "5000" {
			t.Fatalf("data connection: got %q, want 5000", got)
		}
	}
	guard := func() string { return nsExec(t, ns, "nft", "list", "set", "ip", cfg.Table, guardSetName) }
	elem := regexp.MustCompile(`elements = \{ ([0-9.]+) timeout 5s`)

	announce()
	data()
	if m := elem.FindStringSubmatch(guard()); m != nil {
		t.Errorf("unmarked announcement made a guard element: %s", m[0])
	}
	mu.Lock()
	if len(syns) != 0 {
		t.Errorf("SYNs queued without a guard element: %v", syns)
	}
	mark = true
	mu.Unlock()

	announce()
	m := elem.FindStringSubmatch(guard())
	if m == nil || m[1] != "127.0.0.1" {
		t.Fatalf("marked announcement: guard set is\n%s\nwant the element 127.0.0.1", guard())
	}
	data()
	mu.Lock()
	if diff := cmp.Diff([]uint16{5000}, syns); diff != "" {
		t.Errorf("SYNs queued (-want +got):\n%s", diff)
	}
	mu.Unlock()
	if out := nsExec(t, ns, "nft", "list", "chain", "ip", "probe", "in"); !strings.Contains(out, "packets 0 ") {
		t.Errorf("packets delivered with the bit still set:\n%s", out)
	}
	if n := q.Stats().Marked.Load(); n == 0 {
		t.Error("no AcceptMark verdict counted")
	}
}

// TestAdoptOlderTable: a table left by a version without the guard (no set
// guard, no guard chains, no guard rule in the divert chains) is adopted:
// the result is the table Script describes, and the holes and held flows
// in it stay.
func TestAdoptOlderTable(t *testing.T) {
	requireRoot(t)
	ns, path := newNS(t)
	cfg := DefaultConfig()
	cfg.NetNS, cfg.Accept = path, false
	old := newManager(t, cfg)
	if err := old.Install(); err != nil {
		t.Fatalf("first Install: %v", err)
	}
	hole := Hole{Peer: netip.MustParseAddr("10.0.0.1"), Addr: netip.MustParseAddr("10.0.0.2"), Port: 2000, Timeout: time.Minute}
	if err := old.Open(hole); err != nil {
		t.Fatalf("Open: %v", err)
	}
	flow := Flow{Src: netip.MustParseAddrPort("10.0.0.1:40000"), Dst: netip.MustParseAddrPort("10.0.0.2:21")}
	if err := old.Hold(flow); err != nil {
		t.Fatalf("Hold: %v", err)
	}
	// Make it the older version's table.
	handle := regexp.MustCompile(`@guard .* # handle (\d+)`)
	for _, fam := range cfg.families() {
		for _, chain := range []string{"divert_pre", "divert_out"} {
			out := nsExec(t, ns, "nft", "-a", "list", "chain", fam.nft, cfg.Table, chain)
			m := handle.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no guard rule in %s:\n%s", chain, out)
			}
			nsExec(t, ns, "nft", "delete", "rule", fam.nft, cfg.Table, chain, "handle", m[1])
		}
		nsExec(t, ns, "nft", fmt.Sprintf("delete chain %[1]s %[2]s guard_post; delete chain %[1]s %[2]s guard_in; delete set %[1]s %[2]s guard", fam.nft, cfg.Table))
	}
	if err := newManager(t, cfg).Install(); err != nil {
		t.Fatalf("adopting Install: %v", err)
	}
	for _, fam := range cfg.families() {
		// Elements aside: the kept ones are checked below.
		elems := regexp.MustCompile(`(?m)^elements = .*\n`)
		got := elems.ReplaceAllString(nftTable(nsExec(t, ns, "nft", "list", "table", fam.nft, cfg.Table)), "")
		want := elems.ReplaceAllString(nftTable(cfg.tableText(fam)), "")
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("table %s after adoption (-script +adopted):\n%s", fam.nft, diff)
		}
	}
	if out := nsExec(t, ns, "nft", "list", "set", "ip", cfg.Table, expectSetName); !strings.Contains(out, "10.0.0.1 . 10.0.0.2 . 2000") {
		t.Errorf("the hole did not survive the adoption:\n%s", out)
	}
	if out := nsExec(t, ns, "nft", "list", "set", "ip", cfg.Table, holdSetName); !strings.Contains(out, "10.0.0.1 . 10.0.0.2 . 40000 . 21") {
		t.Errorf("the held flow did not survive the adoption:\n%s", out)
	}
}
