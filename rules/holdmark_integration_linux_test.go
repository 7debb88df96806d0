//go:build integration

package rules

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ftpct/ftpct/nfq"
	"github.com/google/go-cmp/cmp"
)

// TestHoldMark checks the kernel facts the first resize without a commit
// rests on. A reader gives the first data packet of a control connection
// back with nfq.Repeat (NF_REPEAT, hold mark set): the kernel runs the
// divert chain that queued it again from its first rule, the hold-mark
// rule adds the packet's own flow to @hold, and the hold rule queues it
// again, with the bit. The reader accepts it then keeping the bit
// (AcceptHold): at its last hook the reverse flow joins @hold and the bit
// is cleared, so no later hook sees it. From then on the server's bare
// ACKs are queued (the reverse flow is held). A second connection whose
// packets are never repeated gets nothing held: the rules add exactly
// that. Two paths: over loopback (divert_out, last hook postrouting) and
// from a peer namespace over a veth (divert_pre, last hook input); over
// loopback also in the ip6 table.
func TestHoldMark(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name     string
		peer     bool // the client is in a namespace of its own
		cli, srv netip.Addr
	}{
		{name: "local", cli: netip.MustParseAddr("127.0.0.1"), srv: netip.MustParseAddr("127.0.0.1")},
		{name: "from a peer", peer: true, cli: netip.MustParseAddr("10.78.0.1"), srv: netip.MustParseAddr("10.78.0.2")},
		{name: "local, IPv6", cli: netip.MustParseAddr("::1"), srv: netip.MustParseAddr("::1")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns, path := newNS(t)
			cliPath := path
			if tc.peer {
				cliNS, p := newNS(t)
				cliPath = p
				veth := fmt.Sprintf("fth%d", os.Getpid()%100000)
				const cliMAC, srvMAC = "02:00:00:78:00:01", "02:00:00:78:00:02"
				nsExec(t, cliNS, "ip", "link", "add", veth, "address", cliMAC, "type", "veth", "peer", "name", "eth0", "address", srvMAC, "netns", ns)
				nsExec(t, cliNS, "ip", "neigh", "replace", tc.srv.String(), "lladdr", srvMAC, "dev", veth, "nud", "permanent")
				nsExec(t, ns, "ip", "neigh", "replace", tc.cli.String(), "lladdr", cliMAC, "dev", "eth0", "nud", "permanent")
				nsExec(t, cliNS, "ip", "addr", "add", tc.cli.String()+"/24", "dev", veth)
				nsExec(t, ns, "ip", "addr", "add", tc.srv.String()+"/24", "dev", "eth0")
				nsExec(t, cliNS, "ip", "link", "set", veth, "up")
				nsExec(t, ns, "ip", "link", "set", "eth0", "up")
			}
			holdMark(t, ns, path, cliPath, tc.cli, tc.srv)
		})
	}
}

// holdMark runs TestHoldMark's checks with the rules in namespace ns (at
// path) and the client in the namespace at cliPath.
func holdMark(t *testing.T, ns, path, cliPath string, cli, srv netip.Addr) {
	cfg := DefaultConfig()
	cfg.NetNS, cfg.Accept, cfg.IPv6 = path, false, cli.Is6()
	if err := newManager(t, cfg).Install(); err != nil {
		t.Fatalf("Install: %v", err)
	}
	fam := "ip"
	if cli.Is6() {
		fam = "ip6"
	}
	// Counts packets that still carry the hold bit after the guard chains.
	nsExec(t, ns, "nft", strings.ReplaceAll("add table FAM probe; "+
		"add chain FAM probe post { type filter hook postrouting priority 400; }; "+
		"add chain FAM probe in { type filter hook input priority 400; }; "+
		"add rule FAM probe post meta mark & 0x00200000 == 0x00200000 counter; "+
		"add rule FAM probe in meta mark & 0x00200000 == 0x00200000 counter", "FAM", fam))

	const repeatPort = 40031 // the client port whose first data packet is repeated
	type event struct {
		sport, dport uint16
		held         bool // queued with the hold bit
		payload      int
		flags        byte
	}
	var mu sync.Mutex
	var seen []event
	repeated := false
	handle := func(p nfq.Packet) (nfq.Verdict, []byte) {
		b := p.Data
		var tcp []byte
		var length int // the IP payload's
		switch {
		case len(b) >= 40 && b[0]>>4 == 6 && b[6] == 6: // no extension headers here
			tcp, length = b[40:], int(binary.BigEndian.Uint16(b[4:]))
		case len(b) >= 20 && b[0]>>4 == 4 && b[9] == 6:
			ihl := int(b[0]&0x0f) * 4
			tcp, length = b[ihl:], int(binary.BigEndian.Uint16(b[2:]))-ihl
		default:
			return nfq.Accept, nil
		}
		ev := event{sport: binary.BigEndian.Uint16(tcp[0:]), dport: binary.BigEndian.Uint16(tcp[2:]),
			held: p.Mark&cfg.HoldMark != 0, flags: tcp[13], payload: length - int(tcp[12]>>4)*4}
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, ev)
		switch {
		case ev.held:
			return nfq.AcceptHold, nil
		case ev.sport == repeatPort && ev.payload > 0 && !repeated:
			repeated = true
			return nfq.Repeat, nil
		}
		return nfq.Accept, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	var q *nfq.Queue
	if err := inNetNS(t, path, func() (err error) {
		qc := nfq.DefaultConfig()
		qc.Num, qc.Mark, qc.HoldMark = cfg.Queue, cfg.Mark, cfg.HoldMark
		q, err = nfq.Open(ctx, qc, handle)
		return err
	}); err != nil {
		cancel()
		t.Fatalf("open queue: %v", err)
	}
	t.Cleanup(func() { cancel(); q.Close() })

	server := netip.AddrPortFrom(srv, 21)
	helloServer(t, path, server)
	converse := func(src netip.AddrPort) { sayHello(t, cliPath, src, server) }
	plain, rep := netip.AddrPortFrom(cli, 40030), netip.AddrPortFrom(cli, repeatPort)
	converse(plain)
	converse(rep)

	held := nsExec(t, ns, "nft", "list", "set", fam, cfg.Table, holdSetName)
	for _, want := range []string{
		fmt.Sprintf("%s . %s . %d . 21", cli, srv, repeatPort),
		fmt.Sprintf("%s . %s . 21 . %d", srv, cli, repeatPort),
	} {
		if !strings.Contains(held, want) {
			t.Errorf("@hold lacks %s:\n%s", want, held)
		}
	}
	if strings.Contains(held, "40030") {
		t.Errorf("@hold holds the connection never repeated:\n%s", held)
	}
	for _, chain := range []string{"post", "in"} {
		if out := nsExec(t, ns, "nft", "list", "chain", fam, "probe", chain); !strings.Contains(out, "packets 0 ") {
			t.Errorf("packets with the hold bit after the guard chains (%s):\n%s", chain, out)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	// The repeated packet came back once, with the bit; nothing else had it.
	var got []event
	bare := map[uint16]int{} // bare ACKs from the server, by client port
	for _, ev := range seen {
		if ev.held || ev.sport == repeatPort && ev.payload > 0 {
			got = append(got, ev)
		}
		if ev.sport == server.Port() && ev.payload == 0 && ev.flags&0x07 == 0 {
			bare[ev.dport]++
		}
	}
	want := []event{
		{sport: repeatPort, dport: 21, held: false, payload: 5, flags: tcpFlagsPshAck},
		{sport: repeatPort, dport: 21, held: true, payload: 5, flags: tcpFlagsPshAck},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(event{})); diff != "" {
		t.Errorf("the repeated packet's passes (-want +got):\n%s", diff)
	}
	if bare[plain.Port()] != 0 {
		t.Errorf("%d bare ACKs of the server queued for the flow not held, want 0", bare[plain.Port()])
	}
	if bare[repeatPort] == 0 {
		t.Error("no bare ACK of the server queued for the held flow: its reverse flow is not held")
	}
	if n := q.Stats().Repeated.Load(); n != 1 {
		t.Errorf("Stats().Repeated = %d, want 1", n)
	}
}

// tcpFlagsPshAck is a data segment's flags byte (PSH|ACK).
const tcpFlagsPshAck = 0x18

// TestAdoptStaticHoldSet: a table left by a version before the hold mark
// has a hold set without the dynamic flag (which the hold-mark rules need,
// and which set flags cannot change). Adopting it makes the set again,
// dynamic, with its held flows, in the one adoption batch: the result is
// the table Script describes.
func TestAdoptStaticHoldSet(t *testing.T) {
	requireRoot(t)
	ns, path := newNS(t)
	cfg := DefaultConfig()
	cfg.NetNS, cfg.Accept, cfg.IPv6 = path, false, false
	if err := newManager(t, cfg).Install(); err != nil {
		t.Fatalf("first Install: %v", err)
	}
	// Make it the older version's table: no hold-mark rules, a static hold
	// set with two held flows, looked up by a divert rule.
	nsExec(t, ns, "nft", fmt.Sprintf("flush chain ip %[1]s divert_pre; flush chain ip %[1]s divert_out; "+
		"flush chain ip %[1]s guard_post; flush chain ip %[1]s guard_in; delete set ip %[1]s hold; "+
		"add set ip %[1]s hold { type ipv4_addr . ipv4_addr . inet_service . inet_service; "+
		"elements = { 10.0.0.1 . 10.0.0.2 . 40000 . 21, 10.0.0.2 . 10.0.0.1 . 21 . 40000 } }; "+
		"add rule ip %[1]s divert_pre ip saddr . ip daddr . tcp sport . tcp dport @hold counter", cfg.Table))
	if out := nsExec(t, ns, "nft", "list", "set", "ip", cfg.Table, holdSetName); strings.Contains(out, "dynamic") {
		t.Fatalf("the older table's hold set is dynamic:\n%s", out)
	}
	if err := newManager(t, cfg).Install(); err != nil {
		t.Fatalf("adopting Install: %v", err)
	}
	// Elements aside (the held flows are checked below), and in any order:
	// the set made again is listed after those kept.
	got := nftBlocks(nsExec(t, ns, "nft", "list", "table", "ip", cfg.Table))
	want := nftBlocks(cfg.tableText(familyIPv4))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("table after adoption (-script +adopted):\n%s", diff)
	}
	out := nsExec(t, ns, "nft", "list", "set", "ip", cfg.Table, holdSetName)
	for _, f := range []string{"10.0.0.1 . 10.0.0.2 . 40000 . 21", "10.0.0.2 . 10.0.0.1 . 21 . 40000"} {
		if !strings.Contains(out, f) {
			t.Errorf("held flow %s did not survive the adoption:\n%s", f, out)
		}
	}
}

// nftBlocks is a listed table's sets and chains (nftTable's lines, elements
// left out), each a block of lines, sorted.
func nftBlocks(text string) []string {
	text = regexp.MustCompile(`(?s)elements = \{[^}]*\}`).ReplaceAllString(text, "")
	var blocks []string
	var cur []string
	for _, line := range strings.Split(nftTable(text), "\n") {
		if line == "" {
			continue
		}
		cur = append(cur, line)
		if line == "}" {
			blocks = append(blocks, strings.Join(cur, "\n"))
			cur = nil
		}
	}
	blocks = append(blocks, strings.Join(cur, "\n"))
	slices.Sort(blocks)
	return blocks
}
