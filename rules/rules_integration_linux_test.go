//go:build integration

package rules

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ftpct/ftpct/internal/netnstest"
)

// Integration tests: go test -tags integration ./rules/
// They need root (CAP_NET_ADMIN + CAP_SYS_ADMIN for netns) and the nft,
// iptables and ip binaries. Each test runs in network namespaces of its own.

func requireRoot(t *testing.T) { netnstest.RequireRoot(t) }

// newNS creates a network namespace removed at cleanup and returns its name
// and path.
func newNS(t testing.TB) (string, string) {
	t.Helper()
	name, path := netnstest.New(t, "ftpct-rules")
	// iptables-nft creates its tables and base chains on first use and
	// leaves them (empty) when the last rule goes; create them up front so
	// that before/after snapshots compare what ftpct did, not that.
	for _, bin := range []string{"iptables", "ip6tables"} {
		for _, tc := range [][2]string{{"filter", "INPUT"}, {"filter", "FORWARD"}, {"raw", "PREROUTING"}, {"raw", "OUTPUT"}} {
			nsExec(t, name, bin, "-t", tc[0], "-A", tc[1], "-j", "ACCEPT")
			nsExec(t, name, bin, "-t", tc[0], "-D", tc[1], "-j", "ACCEPT")
		}
	}
	return name, path
}

func nsExec(t testing.TB, ns string, args ...string) string {
	t.Helper()
	return netnstest.Exec(t, ns, args...)
}

// snapshot is everything Install may touch, as text.
func snapshot(t *testing.T, ns string) string {
	t.Helper()
	return "nft:\n" + nsExec(t, ns, "nft", "list", "ruleset") +
		"iptables:\n" + nsExec(t, ns, "iptables", "-S") +
		"ip6tables:\n" + nsExec(t, ns, "ip6tables", "-S")
}

func newManager(t testing.TB, cfg Config) *Manager {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Shutdown(); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return m
}

// installed is a Manager with DefaultConfig, changed by edit (if not nil),
// in a network namespace of its own (newNS): its rules installed, and
// removed at cleanup. It returns the namespace's name and the Config.
func installed(t *testing.T, edit func(*Config)) (string, Config, *Manager) {
	t.Helper()
	requireRoot(t)
	ns, path := newNS(t)
	cfg := DefaultConfig()
	cfg.NetNS = path
	if edit != nil {
		edit(&cfg)
	}
	m := newManager(t, cfg)
	if err := m.Install(); err != nil {
		t.Fatalf("Install: %v", err)
	}
	t.Cleanup(func() { m.Remove() })
	return ns, cfg, m
}

// Edits for installed: no accept rules; and no IPv6 table either.
func noAccept(c *Config)    { c.Accept = false }
func ip4NoAccept(c *Config) { c.Accept, c.IPv6 = false, false }

const acceptLine = "-m connmark --mark 0x100000/0x100000 -m comment --comment ftpct -j ACCEPT"

func TestInstallRemove(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name       string
		ipv6       bool
		accept     bool
		queues     uint16
		wantNFT    []string
		notWantNFT []string
		want4      []string
		want6      []string
	}{
		{
			name: "defaults", ipv6: true, accept: true, queues: 1,
			wantNFT: []string{"table ip ftpct", "table ip6 ftpct", "chain divert_pre", "chain divert_out",
				"chain pinhole_pre", "chain pinhole_out", "chain xlate_pre", "set ports", "elements = { 21 }",
				"set expect", "type ipv4_addr . ipv4_addr . inet_service", "type ipv6_addr . ipv6_addr . inet_service",
				"map xlate", "flags dynamic,timeout", "priority raw", "priority mangle", "priority dstnat - 1",
				`iifname "lo" return`,
				"ip saddr . ip daddr . tcp dport @expect delete @expect { ip saddr . ip daddr . tcp dport } ct mark set ct mark | 0x00100000",
				"ct mark & 0x00100000 == 0x00100000 dnat ip to ip saddr . ip daddr . tcp dport map @xlate",
				"ct mark & 0x00100000 == 0x00100000 dnat ip6 to ip6 saddr . ip6 daddr . tcp dport map @xlate",
				// nft prints the xt NFQUEUE target translated to its queue statement.
				"tcp dport @ports queue num 21 bypass", "tcp sport @ports queue num 21 bypass",
				// Held flows are queued without bypass; a rule that sets ct
				// labels gives new entries room for ftpct's state.
				"set hold", "type ipv4_addr . ipv4_addr . inet_service . inet_service",
				"ip saddr . ip daddr . tcp sport . tcp dport @hold queue num 21\n",
				"ip6 saddr . ip6 daddr . tcp sport . tcp dport @hold queue num 21\n",
				"chain keep_labels {\n\t\tct label set 127\n",
				// Bare ACKs of flows not held are not queued.
				"tcp dport @ports tcp flags ! fin,syn,rst jump bare_ack",
				"tcp sport @ports tcp flags ! fin,syn,rst jump bare_ack",
				"chain bare_ack {\n\t\ttcp doff 5 @th,160,8 & 0x0 == 0x0 return\n",
				"tcp doff 15 @th,480,8 & 0x0 == 0x0 return\n\t\taccept\n\t}",
				// The guard: SYNs from peers just sent an announcement.
				"set guard", "tcp flags syn / fin,syn,rst,ack ip saddr @guard queue num 21 bypass",
				"tcp flags syn / fin,syn,rst,ack ip6 saddr @guard queue num 21 bypass",
				"type filter hook postrouting priority 300", "type filter hook input priority 300",
				"meta mark & 0x00100000 == 0x00100000 update @guard { ip daddr timeout 5s } meta mark set meta mark & 0xffefffff"},
			want4: []string{"-A INPUT " + acceptLine, "-A FORWARD " + acceptLine},
			want6: []string{"-A INPUT " + acceptLine, "-A FORWARD " + acceptLine},
		},
		{
			name: "ipv4 only, no accept rules, 4 queues", ipv6: false, accept: false, queues: 4,
			wantNFT:    []string{"table ip ftpct", "chain divert_pre", "map xlate", "tcp dport @ports queue num 21-24 bypass", "@hold queue num 21-24\n"},
			notWantNFT: []string{"table ip6 ftpct"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns, path := newNS(t)
			before := snapshot(t, ns)
			cfg := DefaultConfig()
			cfg.NetNS, cfg.IPv6, cfg.Accept, cfg.Queues = path, tc.ipv6, tc.accept, tc.queues
			m := newManager(t, cfg)
			if err := m.Install(); err != nil {
				t.Fatalf("Install: %v", err)
			}
			ruleset := nsExec(t, ns, "nft", "list", "ruleset") // fails the test if nft cannot print it
			for _, s := range tc.wantNFT {
				if !strings.Contains(ruleset, s) {
					t.Errorf("nft list ruleset lacks %q:\n%s", s, ruleset)
				}
			}
			for _, s := range tc.notWantNFT {
				if strings.Contains(ruleset, s) {
					t.Errorf("nft list ruleset has %q:\n%s", s, ruleset)
				}
			}
			// The divert rules really use the xt NFQUEUE target (the nft
			// queue expression is missing from some kernels).
			for _, chain := range []string{"divert_pre", "divert_out"} {
				dbg := nsExec(t, ns, "nft", "--debug=netlink", "list", "chain", "ip", "ftpct", chain)
				if n := strings.Count(dbg, "[ target name NFQUEUE rev 3 ]"); n != 4 {
					t.Errorf("%s: %d xt NFQUEUE targets, want 4:\n%s", chain, n, dbg)
				}
			}
			got4 := nsExec(t, ns, "iptables", "-S")
			got6 := nsExec(t, ns, "ip6tables", "-S")
			for _, s := range tc.want4 {
				if strings.Count(got4, s) != 1 {
					t.Errorf("iptables -S: want %q once:\n%s", s, got4)
				}
			}
			for _, s := range tc.want6 {
				if strings.Count(got6, s) != 1 {
					t.Errorf("ip6tables -S: want %q once:\n%s", s, got6)
				}
			}
			if !tc.accept && (strings.Contains(got4, "ftpct") || strings.Contains(got6, "ftpct")) {
				t.Errorf("accept rules installed with Accept=false:\n%s%s", got4, got6)
			}
			// A second Install adopts the table, it does not duplicate.
			if err := m.Install(); err != nil {
				t.Fatalf("second Install: %v", err)
			}
			if got := nsExec(t, ns, "iptables", "-S"); got != got4 {
				t.Errorf("second Install changed iptables (-first +second):\n%s", cmp.Diff(got4, got))
			}
			if got := nsExec(t, ns, "nft", "list", "ruleset"); got != ruleset {
				t.Errorf("second Install changed the ruleset (-first +second):\n%s", cmp.Diff(ruleset, got))
			}
			for i := range 2 { // idempotent
				if err := m.Remove(); err != nil {
					t.Fatalf("Remove #%d: %v", i+1, err)
				}
				if diff := cmp.Diff(before, snapshot(t, ns)); diff != "" {
					t.Errorf("after Remove #%d, state differs from before Install (-want +got):\n%s", i+1, diff)
				}
			}
		})
	}
}

func TestInstallOverStaleState(t *testing.T) {
	requireRoot(t)
	ns, path := newNS(t)
	before := snapshot(t, ns)
	// A crashed run left the accept rule and a table with foreign content;
	// an unrelated table must survive.
	nsExec(t, ns, "iptables", "-I", "INPUT", "1", "-m", "connmark", "--mark", "0x00100000/0x00100000", "-m", "comment", "--comment", "ftpct", "-j", "ACCEPT")
	nsExec(t, ns, "nft", "add table ip ftpct; add chain ip ftpct junk; add table ip other; add chain ip other keep")
	cfg := DefaultConfig()
	cfg.NetNS = path
	m := newManager(t, cfg)
	if err := m.Install(); err != nil {
		t.Fatalf("Install: %v", err)
	}
	ruleset := nsExec(t, ns, "nft", "list", "ruleset")
	if strings.Contains(ruleset, "junk") {
		t.Errorf("stale chain survived the table reset:\n%s", ruleset)
	}
	if !strings.Contains(ruleset, "chain keep") {
		t.Errorf("unrelated table touched:\n%s", ruleset)
	}
	if n := strings.Count(nsExec(t, ns, "iptables", "-S", "INPUT"), acceptLine); n != 1 {
		t.Errorf("accept rule in INPUT %d times, want 1", n)
	}
	if err := m.Remove(); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	nsExec(t, ns, "nft", "delete table ip other")
	if diff := cmp.Diff(before, snapshot(t, ns)); diff != "" {
		t.Errorf("after Remove (-want +got):\n%s", diff)
	}
}

// failingTool wraps the real iptables runner and fails one Insert.
type failingTool struct {
	acceptTool
	failChain string
}

func (f failingTool) Insert(table, chain string, pos int, rulespec ...string) error {
	if chain == f.failChain {
		return errors.New("injected failure")
	}
	return f.acceptTool.Insert(table, chain, pos, rulespec...)
}

func TestInstallFailureLeavesNothing(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name    string
		prepare func(t *testing.T, ns string, m *Manager)
		wantErr string
	}{
		{
			name: "ip6tables INPUT insert fails after the rest is in",
			prepare: func(t *testing.T, ns string, m *Manager) {
				m.newTool = func(f family) (acceptTool, error) {
					tool, err := newIptables(f)
					if err != nil || f != familyIPv6 {
						return tool, err
					}
					return failingTool{acceptTool: tool, failChain: "INPUT"}, nil
				}
			},
			wantErr: "injected failure",
		},
		{
			name: "iptables binary missing",
			prepare: func(t *testing.T, ns string, m *Manager) {
				m.newTool = func(f family) (acceptTool, error) {
					return nil, fmt.Errorf("%s: %w", f.iptables, ErrNoIptables)
				}
			},
			wantErr: "--no-install-rules",
		},
		{
			name: "kernel refuses the NFQUEUE range (Validate bypassed)",
			prepare: func(t *testing.T, ns string, m *Manager) {
				// xt_NFQUEUE checkentry: queuenum + queues_total - 1 > 0xffff is ERANGE.
				m.cfg.Queue, m.cfg.Queues = 65535, 2
			},
			wantErr: "install nft table ip",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns, path := newNS(t)
			before := snapshot(t, ns)
			cfg := DefaultConfig()
			cfg.NetNS = path
			m := newManager(t, cfg)
			tc.prepare(t, ns, m)
			err := m.Install()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Install error = %v, want one containing %q", err, tc.wantErr)
			}
			if diff := cmp.Diff(before, snapshot(t, ns)); diff != "" {
				t.Errorf("failed Install left state behind (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOpenClose(t *testing.T) {
	ns, _, m := installed(t, nil)
	tests := []struct {
		name    string
		hole    Hole
		fam     string
		wantSet string
		wantMap string // "" = no map element expected
		wantTo  string // the map element's value
	}{
		{
			name:    "ipv4 no dnat",
			hole:    Hole{Peer: netip.MustParseAddr("10.0.0.1"), Addr: netip.MustParseAddr("10.0.0.2"), Port: 2000, Timeout: time.Minute},
			fam:     "ip",
			wantSet: "10.0.0.1 . 10.0.0.2 . 2000 timeout 1m expires",
		},
		{
			name: "ipv4 dnat",
			hole: Hole{Peer: netip.MustParseAddr("192.0.2.7"), Addr: netip.MustParseAddr("198.51.100.1"), Port: 40000,
				To: netip.MustParseAddrPort("10.1.2.3:50000"), Timeout: 90 * time.Second},
			fam:     "ip",
			wantSet: "192.0.2.7 . 198.51.100.1 . 40000 timeout 1m30s expires",
			wantMap: "192.0.2.7 . 198.51.100.1 . 40000 timeout 1m30s expires",
			wantTo:  ": 10.1.2.3 . 50000",
		},
		{
			name: "ipv4-mapped ipv6 goes to the ip table",
			hole: Hole{Peer: netip.MustParseAddr("::ffff:10.9.0.1"), Addr: netip.MustParseAddr("::ffff:10.9.0.2"), Port: 21000,
				Timeout: 30 * time.Second},
			fam:     "ip",
			wantSet: "10.9.0.1 . 10.9.0.2 . 21000 timeout 30s expires",
		},
		{
			name: "ipv6 dnat",
			hole: Hole{Peer: netip.MustParseAddr("2001:db8::1"), Addr: netip.MustParseAddr("2001:db8::2"), Port: 2121,
				To: netip.MustParseAddrPort("[fd00::5]:3000"), Timeout: time.Minute},
			fam:     "ip6",
			wantSet: "2001:db8::1 . 2001:db8::2 . 2121 timeout 1m expires",
			wantMap: "2001:db8::1 . 2001:db8::2 . 2121 timeout 1m expires",
			wantTo:  ": fd00::5 . 3000",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := m.Open(tc.hole); err != nil {
				t.Fatalf("Open: %v", err)
			}
			set := nsExec(t, ns, "nft", "list", "set", tc.fam, "ftpct", "expect")
			if !strings.Contains(set, tc.wantSet) {
				t.Errorf("set expect lacks %q:\n%s", tc.wantSet, set)
			}
			xlate := nsExec(t, ns, "nft", "list", "map", tc.fam, "ftpct", "xlate")
			if tc.wantMap != "" {
				if !strings.Contains(xlate, tc.wantMap) || !strings.Contains(xlate, tc.wantTo) {
					t.Errorf("map xlate lacks %q %q:\n%s", tc.wantMap, tc.wantTo, xlate)
				}
			} else if strings.Contains(xlate, "expires") {
				t.Errorf("map xlate has an element for a hole without DNAT:\n%s", xlate)
			}
			for i := range 2 { // the second Close finds nothing: still nil
				if err := m.Close(tc.hole); err != nil {
					t.Fatalf("Close #%d: %v", i+1, err)
				}
			}
			for _, list := range [][]string{{"set", tc.fam, "ftpct", "expect"}, {"map", tc.fam, "ftpct", "xlate"}} {
				if out := nsExec(t, ns, append([]string{"nft", "list"}, list...)...); strings.Contains(out, "expires") {
					t.Errorf("after Close, %s still has elements:\n%s", list[0], out)
				}
			}
		})
	}

	// A used hole's element was consumed by the kernel: Close then deletes
	// only the mapping (shown here by the element it leaves alone).
	t.Run("used hole closes only its mapping", func(t *testing.T) {
		h := Hole{Peer: netip.MustParseAddr("192.0.2.9"), Addr: netip.MustParseAddr("198.51.100.1"), Port: 40009,
			To: netip.MustParseAddrPort("10.1.2.9:50009"), Timeout: time.Minute}
		if err := m.Open(h); err != nil {
			t.Fatalf("Open: %v", err)
		}
		used := h
		used.Used = true
		if err := m.Close(used); err != nil {
			t.Fatalf("Close(used): %v", err)
		}
		if out := nsExec(t, ns, "nft", "list", "map", "ip", "ftpct", "xlate"); strings.Contains(out, "40009") {
			t.Errorf("mapping left after Close(used):\n%s", out)
		}
		if out := nsExec(t, ns, "nft", "list", "set", "ip", "ftpct", "expect"); !strings.Contains(out, "40009") {
			t.Errorf("Close(used) deleted the set element too:\n%s", out)
		}
		if err := m.Close(h); err != nil {
			t.Fatalf("Close: %v", err)
		}
	})

	t.Run("invalid holes", func(t *testing.T) {
		v4, v6 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("2001:db8::1")
		for _, h := range []Hole{
			{Peer: v4, Addr: v6, Port: 1, Timeout: time.Second},
			{Peer: v4, Addr: v4, Port: 0, Timeout: time.Second},
			{Peer: v4, Addr: v4, Port: 1},
			{Peer: v4, Addr: v4, Port: 1, Timeout: time.Second, To: netip.MustParseAddrPort("[::1]:1")},
		} {
			if err := m.Open(h); !errors.Is(err, ErrInvalidHole) {
				t.Errorf("Open(%v) = %v, want ErrInvalidHole", h, err)
			}
		}
	})
}

func TestHoleExpires(t *testing.T) {
	ns, _, m := installed(t, noAccept)
	h := Hole{Peer: netip.MustParseAddr("10.0.0.1"), Addr: netip.MustParseAddr("10.0.0.2"), Port: 2000,
		To: netip.MustParseAddrPort("10.0.0.3:2001"), Timeout: 2 * time.Second}
	if err := m.Open(h); err != nil {
		t.Fatalf("Open: %v", err)
	}
	if out := nsExec(t, ns, "nft", "list", "set", "ip", "ftpct", "expect"); !strings.Contains(out, "10.0.0.1 . 10.0.0.2 . 2000") {
		t.Fatalf("element missing right after Open:\n%s", out)
	}
	deadline := time.Now().Add(6 * time.Second)
	for {
		set := nsExec(t, ns, "nft", "list", "set", "ip", "ftpct", "expect")
		xlate := nsExec(t, ns, "nft", "list", "map", "ip", "ftpct", "xlate")
		if !strings.Contains(set, "10.0.0.1") && !strings.Contains(xlate, "10.0.0.1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("elements still present 6s after a 2s timeout:\n%s%s", set, xlate)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := m.Close(h); err != nil {
		t.Errorf("Close of an expired hole: %v", err)
	}
}

// inNetNS runs f on a thread switched into the namespace at path; sockets
// f creates stay in that namespace. The thread is discarded afterwards.
func inNetNS(t *testing.T, path string, f func() error) error {
	t.Helper()
	return netnstest.In(t, path, f)
}

// listenIn listens on addr inside the namespace at nsPath until the test
// ends and runs handle on its own goroutine for each connection.
func listenIn(t *testing.T, nsPath string, addr netip.AddrPort, handle func(net.Conn)) {
	t.Helper()
	var ln net.Listener
	if err := inNetNS(t, nsPath, func() (err error) {
		ln, err = net.Listen("tcp", addr.String())
		return err
	}); err != nil {
		t.Fatalf("listen %v: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
}

// serve listens on addr inside the namespace and answers every connection
// with its own port number.
func serve(t *testing.T, nsPath string, addr netip.AddrPort) {
	t.Helper()
	listenIn(t, nsPath, addr, func(c net.Conn) {
		fmt.Fprintf(c, "%d", addr.Port())
		c.Close()
	})
}

// dial connects from the namespace and returns what the server said, or
// "" when the SYN went unanswered for a second (dropped). Any other failure
// (refused, unreachable) fails the test.
func dial(t *testing.T, nsPath string, addr netip.AddrPort) string {
	t.Helper()
	var c net.Conn
	if err := inNetNS(t, nsPath, func() (err error) {
		c, err = (&net.Dialer{Timeout: time.Second}).Dial("tcp", addr.String())
		return err
	}); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return ""
		}
		t.Fatalf("dial %v: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read from %v: %v", addr, err)
	}
	return string(b)
}

// TestPinholeEndToEnd: a server namespace whose INPUT drops new connections
// lets exactly one through per hole, DNATed when asked, and nothing else.
func TestPinholeEndToEnd(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name             string
		cli, srv, stray  netip.Addr
		prefix           string
		iptables, icmpv6 string
	}{
		{name: "ipv4", cli: netip.MustParseAddr("10.77.0.1"), srv: netip.MustParseAddr("10.77.0.2"),
			stray: netip.MustParseAddr("10.77.0.99"), prefix: "/24", iptables: "iptables"},
		{name: "ipv6", cli: netip.MustParseAddr("fd77::1"), srv: netip.MustParseAddr("fd77::2"),
			stray: netip.MustParseAddr("fd77::99"), prefix: "/64", iptables: "ip6tables", icmpv6: "ipv6-icmp"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cliNS, cliPath := newNS(t)
			srvNS, srvPath := newNS(t)
			veth := fmt.Sprintf("ftr%d", os.Getpid()%100000)
			const cliMAC, srvMAC = "02:00:00:77:00:01", "02:00:00:77:00:02"
			nsExec(t, cliNS, "ip", "link", "add", veth, "address", cliMAC, "type", "veth", "peer", "name", "eth0", "address", srvMAC, "netns", srvNS)
			// Static neighbours: a SYN-ACK that waits on neighbour discovery
			// can miss the 1s dial timeout the test uses to detect a drop.
			nsExec(t, cliNS, "ip", "neigh", "replace", tc.srv.String(), "lladdr", srvMAC, "dev", veth, "nud", "permanent")
			nsExec(t, srvNS, "ip", "neigh", "replace", tc.cli.String(), "lladdr", cliMAC, "dev", "eth0", "nud", "permanent")
			nsExec(t, cliNS, "ip", "addr", "add", tc.cli.String()+tc.prefix, "dev", veth, "nodad")
			nsExec(t, srvNS, "ip", "addr", "add", tc.srv.String()+tc.prefix, "dev", "eth0", "nodad")
			nsExec(t, cliNS, "ip", "link", "set", veth, "up")
			nsExec(t, srvNS, "ip", "link", "set", "eth0", "up")
			nsExec(t, srvNS, tc.iptables, "-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
			if tc.icmpv6 != "" {
				nsExec(t, srvNS, tc.iptables, "-A", "INPUT", "-p", tc.icmpv6, "-j", "ACCEPT")
			}
			nsExec(t, srvNS, tc.iptables, "-P", "INPUT", "DROP")

			cfg := DefaultConfig()
			cfg.NetNS = srvPath
			m := newManager(t, cfg)
			if err := m.Install(); err != nil {
				t.Fatalf("Install: %v", err)
			}
			t.Cleanup(func() { m.Remove() })
			serve(t, srvPath, netip.AddrPortFrom(tc.srv, 5000))
			serve(t, srvPath, netip.AddrPortFrom(tc.srv, 5001))
			at := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(tc.srv, port) }

			type step struct {
				name string
				open *Hole
				dial uint16
				want string // "" = dropped
			}
			steps := []step{
				{name: "no hole: dropped", dial: 5000, want: ""},
				{name: "hole: once", open: &Hole{Peer: tc.cli, Addr: tc.srv, Port: 5000, Timeout: time.Minute}, dial: 5000, want: "5000"},
				{name: "hole used: dropped again", dial: 5000, want: ""},
				{name: "hole for another peer: dropped", open: &Hole{Peer: tc.stray, Addr: tc.srv, Port: 5000, Timeout: time.Minute}, dial: 5000, want: ""},
				{name: "hole with DNAT", open: &Hole{Peer: tc.cli, Addr: tc.srv, Port: 6000, To: at(5001), Timeout: time.Minute}, dial: 6000, want: "5001"},
				{name: "DNAT hole used: dropped", dial: 6000, want: ""},
			}
			for _, s := range steps {
				if s.open != nil {
					if err := m.Open(*s.open); err != nil {
						t.Fatalf("%s: Open: %v", s.name, err)
					}
				}
				if diff := cmp.Diff(s.want, dial(t, cliPath, at(s.dial))); diff != "" {
					t.Errorf("%s: reply (-want +got):\n%s\nserver state:\n%s%s", s.name, diff,
						nsExec(t, srvNS, "nft", "list", "table", cfg.families()[len(cfg.families())-1].nft, cfg.Table),
						nsExec(t, srvNS, "conntrack", "-L", "-f", "ipv6")+nsExec(t, srvNS, "ip6tables", "-vnL", "INPUT")+nsExec(t, srvNS, "ip", "-6", "neigh"))
				}
			}
			// A closed hole lets nothing through.
			h := Hole{Peer: tc.cli, Addr: tc.srv, Port: 5000, Timeout: time.Minute}
			if err := m.Open(h); err != nil {
				t.Fatal(err)
			}
			if err := m.Close(h); err != nil {
				t.Fatal(err)
			}
			if got := dial(t, cliPath, at(5000)); got != "" {
				t.Errorf("closed hole let a connection through: %q", got)
			}
		})
	}
}
