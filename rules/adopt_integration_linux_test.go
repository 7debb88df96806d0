//go:build integration

package rules

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestAdoptAndReconcile: a second daemon's Install adopts the table the
// first left (its holes, DNAT mappings and held flows stay), and Reconcile
// keeps exactly what a live control connection owns.
func TestAdoptAndReconcile(t *testing.T) {
	requireRoot(t)
	ns, path := newNS(t)
	cfg := DefaultConfig()
	cfg.NetNS, cfg.Accept = path, false
	first := newManager(t, cfg)
	if err := first.Install(); err != nil {
		t.Fatalf("Install: %v", err)
	}
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	ap := func(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
	live := Flow{Src: ap("10.0.1.2:40000"), Dst: ap("198.51.100.2:21")}
	dead := Flow{Src: ap("10.0.1.3:40001"), Dst: ap("198.51.100.2:21")}
	liveV6 := Flow{Src: ap("[2001:db8::2]:40002"), Dst: ap("[2001:db8:1::2]:21")}
	owned := Hole{Peer: a("198.51.100.2"), Addr: a("203.0.113.1"), Port: 50000, To: ap("10.0.1.2:50000"), Timeout: time.Minute, Owner: live}
	owned6 := Hole{Peer: a("2001:db8:1::2"), Addr: a("2001:db8::2"), Port: 50001, Timeout: time.Minute, Owner: liveV6}
	orphan := Hole{Peer: a("198.51.100.2"), Addr: a("203.0.113.1"), Port: 50002, To: ap("10.0.1.3:50002"), Timeout: time.Minute, Owner: dead}
	ownerless := Hole{Peer: a("198.51.100.2"), Addr: a("203.0.113.1"), Port: 50003, Timeout: time.Minute}
	for _, h := range []Hole{owned, owned6, orphan, ownerless} {
		if err := first.Open(h); err != nil {
			t.Fatalf("Open(%v): %v", h, err)
		}
	}
	// A used hole: its set element is gone, its DNAT mapping stays.
	used := Hole{Peer: a("198.51.100.2"), Addr: a("203.0.113.1"), Port: 50004, To: ap("10.0.1.2:50004"), Timeout: time.Minute, Owner: live}
	if err := first.Open(used); err != nil {
		t.Fatal(err)
	}
	nsExec(t, ns, "nft", "delete element ip ftpct expect { 198.51.100.2 . 203.0.113.1 . 50004 }")
	reply := Flow{Src: live.Dst, Dst: ap("203.0.113.1:40000")}
	if err := first.Hold(live, reply, dead, liveV6); err != nil {
		t.Fatalf("Hold: %v", err)
	}
	if err := first.Hold(live); err != nil {
		t.Fatalf("Hold again: %v", err)
	}
	if err := first.Shutdown(); err != nil { // the daemon exits, leaving its tables
		t.Fatal(err)
	}

	second := newManager(t, cfg)
	if err := second.Install(); err != nil {
		t.Fatalf("Install over the left table: %v", err)
	}
	ruleset := nsExec(t, ns, "nft", "list", "ruleset") // fails the test if nft cannot print it
	for _, want := range []string{"comment \"10.0.1.2:40000 198.51.100.2:21\"", "10.0.1.2 . 198.51.100.2 . 40000 . 21", "ct label set 127"} {
		if !strings.Contains(ruleset, want) {
			t.Errorf("after adoption the ruleset lacks %q:\n%s", want, ruleset)
		}
	}
	holes, err := second.Holes()
	if err != nil {
		t.Fatalf("Holes: %v", err)
	}
	opts := []cmp.Option{cmpopts.IgnoreFields(Hole{}, "Timeout"), cmpopts.SortSlices(func(x, y Hole) bool { return x.Port < y.Port }), cmpopts.EquateComparable(netip.Addr{}, netip.AddrPort{})}
	if diff := cmp.Diff([]Hole{owned, owned6, orphan, ownerless}, holes, opts...); diff != "" {
		t.Errorf("holes after adoption (-want +got):\n%s", diff)
	}
	for _, h := range holes {
		if h.Timeout <= 0 || h.Timeout > time.Minute {
			t.Errorf("hole %v: remaining %v, want in (0, 1m]", h, h.Timeout)
		}
	}

	alive := map[Flow]bool{live: true, reply: true, liveV6: true}
	left, err := second.Reconcile(func(f Flow) bool { return alive[f] })
	if err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	if diff := cmp.Diff([]Hole{owned, owned6}, left.Holes, opts...); diff != "" {
		t.Errorf("kept holes (-want +got):\n%s", diff)
	}
	flowOpts := []cmp.Option{cmpopts.EquateComparable(netip.AddrPort{}), cmpopts.SortSlices(func(x, y Flow) bool { return x.String() < y.String() })}
	if diff := cmp.Diff([]Flow{live, reply, liveV6}, left.Held, flowOpts...); diff != "" {
		t.Errorf("kept held flows (-want +got):\n%s", diff)
	}
	removed := left.Removed
	// orphan (set + map), ownerless, the used hole's mapping, the dead held flow.
	if removed != 5 {
		t.Errorf("Reconcile removed %d elements, want 5", removed)
	}
	ruleset = nsExec(t, ns, "nft", "list", "ruleset")
	for _, gone := range []string{"50002", "50003", "50004", "10.0.1.3"} {
		if strings.Contains(ruleset, gone) {
			t.Errorf("after Reconcile the ruleset still has %q:\n%s", gone, ruleset)
		}
	}
	for _, want := range []string{"50000", "50001", "10.0.1.2 . 198.51.100.2 . 40000 . 21", "198.51.100.2 . 203.0.113.1 . 21 . 40000"} {
		if !strings.Contains(ruleset, want) {
			t.Errorf("after Reconcile the ruleset lacks %q:\n%s", want, ruleset)
		}
	}
	if err := second.Release(live, reply, liveV6, live); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if r := nsExec(t, ns, "nft", "list", "set", "ip", "ftpct", "hold"); strings.Contains(r, "elements") {
		t.Errorf("held flows left after Release:\n%s", r)
	}
	if err := second.Remove(); err != nil {
		t.Fatal(err)
	}
}

// TestHeldFlowsWaitForTheDaemon: with no daemon reading the queue, a held
// flow's packets are dropped while other control traffic passes (bypass).
func TestHeldFlowsWaitForTheDaemon(t *testing.T) {
	requireRoot(t)
	_, path := newNS(t)
	cfg := DefaultConfig()
	cfg.NetNS, cfg.Accept, cfg.IPv6 = path, false, false
	m := newManager(t, cfg)
	if err := m.Install(); err != nil {
		t.Fatalf("Install: %v", err)
	}
	server := netip.MustParseAddrPort("127.0.0.1:21")
	serve(t, path, server)
	held := netip.MustParseAddrPort("127.0.0.1:40001")
	if err := m.Hold(Flow{Src: held, Dst: server}); err != nil {
		t.Fatal(err)
	}
	dialFrom := func(src netip.AddrPort) string {
		var c net.Conn
		if err := inNetNS(t, path, func() (err error) {
			d := net.Dialer{Timeout: time.Second, LocalAddr: net.TCPAddrFromAddrPort(src)}
			c, err = d.Dial("tcp", server.String())
			return err
		}); err != nil {
			return ""
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		b := make([]byte, 8)
		n, _ := c.Read(b)
		return string(b[:n])
	}
	if got := dialFrom(netip.MustParseAddrPort("127.0.0.1:40002")); got != "21" {
		t.Errorf("control connection not held: got %q, want it to pass (bypass)", got)
	}
	if got := dialFrom(held); got != "" {
		t.Errorf("held flow: got %q, want its packets dropped while no daemon reads the queue", got)
	}
	if err := m.Remove(); err != nil {
		t.Fatal(err)
	}
}

// TestRemoveByAnotherProcess: the iptables-nft filter table and chains the
// accept rules created are recorded in ftpct's own table, so that a Remove
// by another Manager (`ftpct uninstall` after the daemon exited, maybe
// after several restarts) deletes them too and the ruleset reads as before.
func TestRemoveByAnotherProcess(t *testing.T) {
	requireRoot(t)
	name := fmt.Sprintf("ftpct-rules-%d-%d", os.Getpid(), nsCounter.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	path := "/run/netns/" + name
	before := nsExec(t, name, "nft", "list", "ruleset")
	cfg := DefaultConfig()
	cfg.NetNS = path
	for i := range 2 { // a run, then a restart that adopts its table
		m, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Install(); err != nil {
			t.Fatalf("Install #%d: %v", i+1, err)
		}
		m.Shutdown()
	}
	if r := nsExec(t, name, "nft", "list", "ruleset"); !strings.Contains(r, `comment "ftpct created filter: table,FORWARD,INPUT"`) {
		t.Errorf("no record of the created filter objects:\n%s", r)
	}
	m := newManager(t, cfg)
	if err := m.Remove(); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if diff := cmp.Diff(before, nsExec(t, name, "nft", "list", "ruleset")); diff != "" {
		t.Errorf("after Remove by another Manager (-before +after):\n%s", diff)
	}
}
