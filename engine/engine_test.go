package engine

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/ftpct/ftpct/conntrack"
	"github.com/ftpct/ftpct/rewrite"
	"github.com/ftpct/ftpct/rules"
	"github.com/ftpct/ftpct/stream"
)

// fakeKernel answers lookups for a fixed set of connections, by either tuple.
type fakeKernel struct{ bindings []conntrack.Binding }

func (k *fakeKernel) Lookup(t conntrack.Tuple) (conntrack.Binding, error) {
	for _, b := range k.bindings {
		if b.Orig == t || b.Reply == t {
			return b, nil
		}
	}
	return conntrack.Binding{}, conntrack.ErrNoEntry
}

// fakeHoles records the holes opened and closed.
type fakeHoles struct {
	open   map[string]rules.Hole
	closed []string
	used   int // closes that said the kernel consumed the element
	fail   bool
}

// ownerOf is the owner a hole announced on control connection b carries.
func ownerOf(b conntrack.Binding) rules.Flow {
	return rules.Flow{Src: netip.AddrPortFrom(b.Orig.Src, b.Orig.SrcPort), Dst: netip.AddrPortFrom(b.Orig.Dst, b.Orig.DstPort)}
}

func holeKey(h rules.Hole) string {
	return netip.AddrPortFrom(h.Addr, h.Port).String() + "<" + h.Peer.String()
}

// errNoTimeout is what rules.Manager answers (ErrInvalidHole) for a hole
// without a positive timeout.
var errNoTimeout = errors.New("timeout must be positive")

func (f *fakeHoles) Open(h rules.Hole) error {
	if f.fail {
		return errors.New("injected failure")
	}
	if h.Timeout <= 0 {
		return errNoTimeout
	}
	if f.open == nil {
		f.open = map[string]rules.Hole{}
	}
	f.open[holeKey(h)] = h
	return nil
}

func (f *fakeHoles) Close(h rules.Hole) error {
	if h.Timeout <= 0 {
		return errNoTimeout
	}
	delete(f.open, holeKey(h))
	f.closed = append(f.closed, holeKey(h))
	if h.Used {
		f.used++
	}
	return nil
}

var (
	client            = netip.MustParseAddr("10.0.1.2")
	gwPublic          = netip.MustParseAddr("203.0.113.1")
	server            = netip.MustParseAddr("203.0.113.2")
	outsider          = netip.MustParseAddr("198.51.100.7")
	privSrv           = netip.MustParseAddr("10.0.2.2")
	client6           = netip.MustParseAddr("2001:db8:1::2")
	server6           = netip.MustParseAddr("2001:db8:2::2")
	masqueradeBinding = conntrack.Binding{
		Orig:  conntrack.Tuple{Src: client, Dst: server, SrcPort: 40000, DstPort: 21},
		Reply: conntrack.Tuple{Src: server, Dst: gwPublic, SrcPort: 21, DstPort: 40000},
	}
	dnatBinding = conntrack.Binding{
		Orig:  conntrack.Tuple{Src: outsider, Dst: gwPublic, SrcPort: 5000, DstPort: 21},
		Reply: conntrack.Tuple{Src: privSrv, Dst: outsider, SrcPort: 21, DstPort: 5000},
	}
	routed6Binding = conntrack.Binding{
		Orig:  conntrack.Tuple{Src: client6, Dst: server6, SrcPort: 40001, DstPort: 21},
		Reply: conntrack.Tuple{Src: server6, Dst: client6, SrcPort: 21, DstPort: 40001},
	}
)

// seg is one TCP segment as a test writes it.
type seg struct {
	src, dst     netip.Addr
	sport, dport uint16
	seq, ack     uint32
	payload      string
	sack         [][2]uint32
	flags        string // "A" ack (default), "F" fin, "S" a client's SYN (no ACK)
}

// masqC2S is a client segment of masqueradeBinding's connection (as it
// arrives, before NAT); masqS2C is a server segment of it (to the gateway).
func masqC2S(seq, ack uint32, payload string) seg {
	return seg{src: client, dst: server, sport: 40000, dport: 21, seq: seq, ack: ack, payload: payload}
}

func masqS2C(seq, ack uint32, payload string, sack ...[2]uint32) seg {
	return seg{src: server, dst: gwPublic, sport: 21, dport: 40000, seq: seq, ack: ack, payload: payload, sack: sack}
}

// masqClientSeg is masqC2S acknowledging the server's first byte.
func masqClientSeg(seq uint32, payload string) seg { return masqC2S(seq, 1, payload) }

// masqServerAck is the server's bare ACK on that connection.
func masqServerAck(ack uint32) seg { return masqS2C(1, ack, "") }

// build serializes s with correct checksums.
func build(t testing.TB, s seg) []byte {
	t.Helper()
	tcp := &layers.TCP{SrcPort: layers.TCPPort(s.sport), DstPort: layers.TCPPort(s.dport), Seq: s.seq, Ack: s.ack, ACK: true, PSH: s.payload != "", Window: 502}
	if strings.Contains(s.flags, "F") {
		tcp.FIN = true
	}
	if strings.Contains(s.flags, "S") {
		tcp.SYN, tcp.ACK, tcp.Ack = true, false, 0
	}
	if len(s.sack) > 0 {
		var data []byte
		for _, b := range s.sack {
			data = append(data, byte(b[0]>>24), byte(b[0]>>16), byte(b[0]>>8), byte(b[0]), byte(b[1]>>24), byte(b[1]>>16), byte(b[1]>>8), byte(b[1]))
		}
		tcp.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindSACK, OptionLength: uint8(2 + len(data)), OptionData: data}}
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	var err error
	if s.src.Is4() {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: s.src.AsSlice(), DstIP: s.dst.AsSlice(), Flags: layers.IPv4DontFragment}
		tcp.SetNetworkLayerForChecksum(ip)
		err = gopacket.SerializeLayers(buf, opts, ip, tcp, gopacket.Payload(s.payload))
	} else {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: s.src.AsSlice(), DstIP: s.dst.AsSlice()}
		tcp.SetNetworkLayerForChecksum(ip)
		err = gopacket.SerializeLayers(buf, opts, ip, tcp, gopacket.Payload(s.payload))
	}
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// got is what a test checks of an output packet.
type got struct {
	Verdict string
	Seq     uint32
	Ack     uint32
	Payload string
	SACK    [][2]uint32
}

// inspect decodes an output packet with gopacket and verifies its checksums.
func inspect(t testing.TB, v Decision, in, out []byte) got {
	t.Helper()
	pkt := in
	if v == DecisionModified {
		pkt = out
	}
	g := got{Verdict: v.String()}
	if v == DecisionDrop {
		return g
	}
	var first gopacket.LayerType = layers.LayerTypeIPv4
	if pkt[0]>>4 == 6 {
		first = layers.LayerTypeIPv6
	}
	p := gopacket.NewPacket(pkt, first, gopacket.Default)
	tl, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !ok {
		t.Fatalf("output is not TCP: %v", p)
	}
	g.Seq, g.Ack, g.Payload = tl.Seq, tl.Ack, string(tl.Payload)
	for _, o := range tl.Options {
		if o.OptionType == layers.TCPOptionKindSACK {
			for i := 0; i+8 <= len(o.OptionData); i += 8 {
				d := o.OptionData[i:]
				g.SACK = append(g.SACK, [2]uint32{uint32(d[0])<<24 | uint32(d[1])<<16 | uint32(d[2])<<8 | uint32(d[3]), uint32(d[4])<<24 | uint32(d[5])<<16 | uint32(d[6])<<8 | uint32(d[7])})
			}
		}
	}
	// Checksums: rebuild from the decoded layers and compare bytes.
	var dp rewrite.Packet
	if err := rewrite.Decode(pkt, &dp); err != nil {
		t.Fatalf("output does not decode: %v", err)
	}
	if want := rewrite.TCPChecksum(pkt, &dp); want != tl.Checksum {
		t.Errorf("TCP checksum %#04x, want %#04x", tl.Checksum, want)
	}
	if ip4, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		if int(ip4.Length) != len(pkt) {
			t.Errorf("IPv4 total length %d, packet is %d bytes", ip4.Length, len(pkt))
		}
		if want := rewrite.IPv4HeaderChecksum(pkt[:ip4.IHL*4]); want != ip4.Checksum {
			t.Errorf("IPv4 header checksum %#04x, want %#04x", ip4.Checksum, want)
		}
	}
	return g
}

func newTestEngine(bindings ...conntrack.Binding) (*Engine, *fakeHoles) {
	h := &fakeHoles{}
	e := New(Config{}, &fakeKernel{bindings: bindings}, h)
	e.now = func() time.Time { return time.Unix(1_700_000_000, 0) }
	return e, h
}

// step is one packet through the engine and what must come out.
type step struct {
	name string
	in   seg
	want got
}

func runSteps(t *testing.T, w *Worker, steps []step) {
	t.Helper()
	for _, s := range steps {
		in := build(t, s.in)
		v, out := w.Handle(in)
		g := inspect(t, v, in, out)
		if diff := cmp.Diff(s.want, g); diff != "" {
			t.Fatalf("step %q (-want +got):\n%s", s.name, diff)
		}
	}
}

func TestMasqueradedActiveMode(t *testing.T) {
	e, holes := newTestEngine(masqueradeBinding)
	w := e.NewWorker()
	c2s, s2c := masqC2S, masqS2C
	port1 := "PORT 10,0,1,2,156,64\r\n"       // 22 bytes
	port1w := "PORT 203,0,113,1,156,64\r\n"   // 25 bytes: +3
	eprt := "EPRT |1|10.0.1.2|40002|\r\n"     // 25 bytes
	eprtw := "EPRT |1|203.0.113.1|40002|\r\n" // 28 bytes: +3
	runSteps(t, w, []step{
		{"user", c2s(1000, 5000, "USER anonymous\r\n"), got{Verdict: "accept", Seq: 1000, Ack: 5000, Payload: "USER anonymous\r\n"}},
		{"reply", s2c(5000, 1016, "331 ok\r\n"), got{Verdict: "accept", Seq: 5000, Ack: 1016, Payload: "331 ok\r\n"}},
		{"PORT rewritten", c2s(1016, 5008, port1), got{Verdict: "accept-modified", Seq: 1016, Ack: 5008, Payload: port1w}},
		{"retransmitted PORT rewritten the same", c2s(1016, 5008, port1), got{Verdict: "accept-modified", Seq: 1016, Ack: 5008, Payload: port1w}},
		{"ack of rewritten PORT mapped back", s2c(5008, 1041, "200 PORT ok\r\n"), got{Verdict: "accept-modified", Seq: 5008, Ack: 1038, Payload: "200 PORT ok\r\n"}},
		// The ack was lost after the gateway: the client resends the PORT
		// the server has. It is placed to end where the server's stream
		// is, so the server discards it and acks again.
		{"acknowledged PORT resent", c2s(1016, 5008, port1), got{Verdict: "accept-modified", Seq: 1019, Ack: 5008, Payload: port1}},
		{"later command shifted", c2s(1038, 5021, "LIST\r\n"), got{Verdict: "accept-modified", Seq: 1041, Ack: 5021, Payload: "LIST\r\n"}},
		{"SACK edges mapped back", s2c(5021, 1047, "", [2]uint32{1041, 1047}), got{Verdict: "accept-modified", Seq: 5021, Ack: 1044, SACK: [][2]uint32{{1038, 1044}}}},
		{"EPRT accumulates", c2s(1044, 5021, eprt), got{Verdict: "accept-modified", Seq: 1047, Ack: 5021, Payload: eprtw}},
		{"after two rewrites", c2s(1069, 5021, "NOOP\r\n"), got{Verdict: "accept-modified", Seq: 1075, Ack: 5021, Payload: "NOOP\r\n"}},
		{"ack after two rewrites", s2c(5021, 1081, "200 ok\r\n"), got{Verdict: "accept-modified", Seq: 5021, Ack: 1075, Payload: "200 ok\r\n"}},
	})
	// One pending expectation per session: the EPRT replaced the PORT's.
	want := map[string]rules.Hole{
		"203.0.113.1:40002<203.0.113.2": {Peer: server, Addr: gwPublic, Port: 40002, To: netip.AddrPortFrom(client, 40002), Timeout: 5 * time.Minute, Owner: ownerOf(masqueradeBinding)},
	}
	if diff := cmp.Diff(want, holes.open, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("open holes (-want +got):\n%s", diff)
	}
	st := e.Stats()
	if st.Rewrites != 2 || st.Replays != 1 || st.ExpectCreated != 2 || st.ExpectEvicted != 1 || st.Commands != 2 {
		t.Errorf("stats: rewrites=%d replays=%d created=%d evicted=%d commands=%d; want 2 1 2 1 2", st.Rewrites, st.Replays, st.ExpectCreated, st.ExpectEvicted, st.Commands)
	}
}

func TestPipelinedCommands(t *testing.T) {
	e, holes := newTestEngine(masqueradeBinding)
	w := e.NewWorker()
	in := "NOOP\r\nPORT 10,0,1,2,156,65\r\nRETR f\r\n"
	out := "NOOP\r\nPORT 203,0,113,1,156,65\r\nRETR f\r\n"
	runSteps(t, w, []step{
		{"pipelined", masqC2S(7, 9, in),
			got{Verdict: "accept-modified", Seq: 7, Ack: 9, Payload: out}},
	})
	if len(holes.open) != 1 {
		t.Errorf("holes = %v, want one", holes.open)
	}
}

func TestDNATPassiveMode(t *testing.T) {
	e, holes := newTestEngine(dnatBinding)
	w := e.NewWorker()
	// Packets as they arrive before NAT: the client's to the public address,
	// the server's from its private address.
	s2c := func(seq, ack uint32, payload string) seg {
		return seg{src: privSrv, dst: outsider, sport: 21, dport: 5000, seq: seq, ack: ack, payload: payload}
	}
	c2s := func(seq, ack uint32, payload string) seg {
		return seg{src: outsider, dst: gwPublic, sport: 5000, dport: 21, seq: seq, ack: ack, payload: payload}
	}
	runSteps(t, w, []step{
		{"227 rewritten", s2c(100, 200, "227 Entering Passive Mode (10,0,2,2,195,80).\r\n"),
			got{Verdict: "accept-modified", Seq: 100, Ack: 200, Payload: "227 Entering Passive Mode (203,0,113,1,195,80).\r\n"}},
		{"client ack mapped", c2s(200, 149, "RETR x\r\n"), got{Verdict: "accept-modified", Seq: 200, Ack: 146, Payload: "RETR x\r\n"}},
		{"229 keeps its port", s2c(146, 208, "229 Entering Extended Passive Mode (|||50001|)\r\n"),
			got{Verdict: "accept-modified", Seq: 149, Ack: 208, Payload: "229 Entering Extended Passive Mode (|||50001|)\r\n"}},
	})
	want := rules.Hole{Peer: outsider, Addr: gwPublic, Port: 50001, To: netip.AddrPortFrom(privSrv, 50001), Timeout: 5 * time.Minute, Owner: ownerOf(dnatBinding)}
	if h, ok := holes.open[holeKey(want)]; !ok || h != want {
		t.Errorf("holes = %v, want %v", holes.open, want)
	}
}

func TestRoutedIPv6NoRewrite(t *testing.T) {
	e, holes := newTestEngine(routed6Binding)
	w := e.NewWorker()
	runSteps(t, w, []step{
		{"EPRT |2| untouched", seg{src: client6, dst: server6, sport: 40001, dport: 21, seq: 1, ack: 1, payload: "EPRT |2|2001:db8:1::2|40005|\r\n"},
			got{Verdict: "accept", Seq: 1, Ack: 1, Payload: "EPRT |2|2001:db8:1::2|40005|\r\n"}},
	})
	want := rules.Hole{Peer: server6, Addr: client6, Port: 40005, Timeout: 5 * time.Minute, Owner: ownerOf(routed6Binding)}
	if h, ok := holes.open[holeKey(want)]; !ok || h != want {
		t.Errorf("holes = %v, want %v", holes.open, want)
	}
}

func TestRefusals(t *testing.T) {
	tests := []struct {
		name      string
		payload   string
		failRules bool
		wantStat  func(Snapshot) uint64
		wantHoles int
	}{
		{name: "other address", payload: "PORT 10,0,1,99,156,64\r\n", wantStat: func(s Snapshot) uint64 { return s.ExpectRefused }},
		{name: "privileged port", payload: "PORT 10,0,1,2,0,22\r\n", wantStat: func(s Snapshot) uint64 { return s.ExpectRefused }},
		{name: "malformed", payload: "PORT 10,0,1,300,156,64\r\n", wantStat: func(s Snapshot) uint64 { return s.Malformed }},
		{name: "rules fail", payload: "PORT 10,0,1,2,156,64\r\n", failRules: true, wantStat: func(s Snapshot) uint64 { return s.ExpectRefused }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, holes := newTestEngine(masqueradeBinding)
			holes.fail = tt.failRules
			w := e.NewWorker()
			s := masqC2S(1, 1, tt.payload)
			in := build(t, s)
			v, out := w.Handle(in)
			g := inspect(t, v, in, out)
			if diff := cmp.Diff(got{Verdict: "accept", Seq: 1, Ack: 1, Payload: tt.payload}, g); diff != "" {
				t.Errorf("packet must pass untouched (-want +got):\n%s", diff)
			}
			if n := tt.wantStat(e.Stats()); n != 1 {
				t.Errorf("counter = %d, want 1 (stats %+v)", n, e.Stats())
			}
			if len(holes.open) != tt.wantHoles {
				t.Errorf("holes = %v, want %d", holes.open, tt.wantHoles)
			}
		})
	}
}

func TestGapDropsUntilInOrder(t *testing.T) {
	e, _ := newTestEngine(masqueradeBinding)
	w := e.NewWorker()
	c2s := masqClientSeg
	runSteps(t, w, []step{
		{"first", c2s(100, "NOOP\r\n"), got{Verdict: "accept", Seq: 100, Ack: 1, Payload: "NOOP\r\n"}},
	})
	in := build(t, c2s(112, "PORT 10,0,1,2,156,64\r\n"))
	if v, _ := w.Handle(in); v != DecisionDrop {
		t.Fatalf("segment after a gap: verdict %v, want drop", v)
	}
	runSteps(t, w, []step{
		{"gap filled", c2s(106, "NOOP\r\n"), got{Verdict: "accept", Seq: 106, Ack: 1, Payload: "NOOP\r\n"}},
		{"retransmitted after gap", c2s(112, "PORT 10,0,1,2,156,64\r\n"), got{Verdict: "accept-modified", Seq: 112, Ack: 1, Payload: "PORT 203,0,113,1,156,64\r\n"}},
	})
}

func TestTLSStopsParsing(t *testing.T) {
	e, holes := newTestEngine(masqueradeBinding)
	w := e.NewWorker()
	runSteps(t, w, []step{
		{"auth", masqC2S(1, 1, "AUTH TLS\r\n"), got{Verdict: "accept", Seq: 1, Ack: 1, Payload: "AUTH TLS\r\n"}},
		{"234", masqS2C(1, 11, "234 Proceed\r\n"), got{Verdict: "accept", Seq: 1, Ack: 11, Payload: "234 Proceed\r\n"}},
		{"ciphertext that looks like PORT", masqC2S(11, 14, "PORT 10,0,1,2,156,64\r\n"), got{Verdict: "accept", Seq: 11, Ack: 14, Payload: "PORT 10,0,1,2,156,64\r\n"}},
	})
	if len(holes.open) != 0 || e.Stats().TLSSessions != 1 {
		t.Errorf("holes=%v tls=%d, want none and 1", holes.open, e.Stats().TLSSessions)
	}
}

func TestUnknownConnectionPasses(t *testing.T) {
	e, _ := newTestEngine()
	w := e.NewWorker()
	in := build(t, seg{src: client, dst: server, sport: 1, dport: 21, seq: 1, ack: 1, payload: "PORT 10,0,1,2,156,64\r\n"})
	if v, _ := w.Handle(in); v != DecisionAccept {
		t.Errorf("verdict %v, want accept", v)
	}
	if e.Stats().NoConntrack != 1 {
		t.Errorf("no_conntrack = %d, want 1", e.Stats().NoConntrack)
	}
}

func TestDataConnectionMarksUsed(t *testing.T) {
	e, holes := newTestEngine(masqueradeBinding)
	w := e.NewWorker()
	w.Handle(build(t, masqC2S(1, 1, "PORT 10,0,1,2,156,64\r\n")))
	e.DataConnection(conntrack.Binding{
		Orig:  conntrack.Tuple{Src: server, Dst: gwPublic, SrcPort: 20, DstPort: 40000},
		Reply: conntrack.Tuple{Src: client, Dst: server, SrcPort: 40000, DstPort: 20},
	})
	if st := e.Stats(); st.ExpectUsed != 1 || st.ExpectPending != 0 {
		t.Errorf("used=%d pending=%d, want 1 0", st.ExpectUsed, st.ExpectPending)
	}
	if len(holes.open) != 0 {
		t.Errorf("DNAT mapping not closed: %v", holes.open)
	}
	// The kernel consumed the one-shot element: deleting it again would
	// fail the nftables transaction, slowly.
	if holes.used != 1 {
		t.Errorf("%d closes said the element was used, want 1", holes.used)
	}
}

// A hole closed shortly before it expires is named with a positive timeout
// (rules refuses a hole without one), whatever is left of its lifetime.
func TestHoleClosedNearExpiry(t *testing.T) {
	tests := []struct {
		name string
		left time.Duration // of the expectation's lifetime when its connection comes
	}{
		{name: "minutes left", left: 4 * time.Minute},
		{name: "under half a second left", left: 300 * time.Millisecond},
		{name: "under a millisecond left", left: 200 * time.Microsecond},
		{name: "just expired", left: -time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, holes := newTestEngine(masqueradeBinding)
			clock := time.Unix(1_700_000_000, 0)
			e.now = func() time.Time { return clock }
			e.NewWorker().Handle(build(t, masqC2S(1, 1, "PORT 10,0,1,2,156,64\r\n")))
			if len(holes.open) != 1 {
				t.Fatalf("holes = %v, want one", holes.open)
			}
			clock = clock.Add(e.policy().Timeout - tt.left)
			e.DataConnection(conntrack.Binding{
				Orig:  conntrack.Tuple{Src: server, Dst: gwPublic, SrcPort: 20, DstPort: 40000},
				Reply: conntrack.Tuple{Src: client, Dst: server, SrcPort: 40000, DstPort: 20},
			})
			if st := e.Stats(); st.ExpectUsed != 1 || st.Errors != 0 {
				t.Errorf("used %d errors %d, want 1 0", st.ExpectUsed, st.Errors)
			}
			if len(holes.open) != 0 {
				t.Errorf("DNAT mapping not closed: %v", holes.open)
			}
		})
	}
}

// The steady-state packet path allocates nothing.
func TestHandleAllocs(t *testing.T) {
	t.Run("holes inline", func(t *testing.T) { testHandleAllocs(t, false) })
	t.Run("holes deferred", func(t *testing.T) { testHandleAllocs(t, true) })
}

func testHandleAllocs(t *testing.T, deferred bool) {
	e, _ := newTestEngine(masqueradeBinding)
	c := &fakeCommitter{}
	if deferred {
		e.Defer(c, func(uint64, Decision, []byte) {})
	}
	w := e.NewWorker()
	if d, _ := w.HandleID(1, build(t, masqC2S(1, 1, "PORT 10,0,1,2,156,64\r\n"))); (d == DecisionPending) != deferred {
		t.Fatalf("the PORT's decision is %v", d)
	}
	if deferred {
		c.commit(t, rules.Result{})
	}
	tests := []struct {
		name      string
		pkt       []byte
		completes bool // a resend cutting the kept rewrite: completed
	}{
		{name: "adjusted", pkt: build(t, masqC2S(23, 1, "NOOP\r\n"))},
		{name: "replayed", pkt: build(t, masqC2S(1, 1, "PORT 10,0,1,2,156,64\r\n"))},
		// Before the server acknowledges the PORT: its rewrite is still kept.
		{name: "completed", pkt: build(t, masqC2S(1, 1, "PORT 10,0,")), completes: true},
		{name: "ack mapped", pkt: build(t, masqS2C(1, 29, "200 ok\r\n"))},
	}
	for _, tt := range tests {
		before := e.Stats().ResendsCompleted
		if n := testing.AllocsPerRun(200, func() { w.Handle(tt.pkt) }); n != 0 {
			t.Errorf("%s: %v allocs per Handle, want 0", tt.name, n)
		}
		if done := e.Stats().ResendsCompleted - before; (done > 0) != tt.completes {
			t.Errorf("%s: resends_completed +%d, want completed %v", tt.name, done, tt.completes)
		}
	}
}

func BenchmarkHandle(b *testing.B) {
	cases := []struct {
		name string
		seg  seg
	}{
		{"adjust-only", masqC2S(23, 1, "NOOP\r\n")},
		{"replay-PORT", masqC2S(1, 1, "PORT 10,0,1,2,156,64\r\n")},
		// A reply whose ack is mapped back and checked against the kept rewrites.
		{"server-reply-ack", masqS2C(1, 4, "200 ok\r\n")},
		// A resent piece holding part of the rewritten argument: completed, then replayed.
		{"resend-completed", masqC2S(1, 1, "PORT 10,0,")},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			e, _ := newTestEngine(masqueradeBinding)
			w := e.NewWorker()
			w.Handle(build(b, masqC2S(1, 1, "PORT 10,0,1,2,156,64\r\n")))
			p := build(b, c.seg)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				w.Handle(p)
			}
		})
	}
}

func TestSplitLines(t *testing.T) {
	c2s, s2c := masqClientSeg, masqS2C
	accept := func(seq uint32, payload string) got {
		return got{Verdict: "accept", Seq: seq, Ack: 1, Payload: payload}
	}
	mod := func(seq uint32, payload string) got {
		return got{Verdict: "accept-modified", Seq: seq, Ack: 1, Payload: payload}
	}
	drop := got{Verdict: "drop"}
	const portW = "PORT 203,0,113,1,156,64\r\n" // 25 bytes for the client's 22
	tests := []struct {
		name     string
		maxLine  int
		steps    []step
		wantHeld uint64
	}{
		{name: "command name split", wantHeld: 1, steps: []step{
			{"PO held", c2s(100, "PO"), mod(100, "")},
			{"rest joins", c2s(102, "RT 10,0,1,2,156,64\r\n"), mod(100, portW)},
			{"server ack mapped", s2c(1, 125, "200 ok\r\n"), got{Verdict: "accept-modified", Seq: 1, Ack: 122, Payload: "200 ok\r\n"}},
			{"next command shifted", c2s(122, "NOOP\r\n"), mod(125, "NOOP\r\n")},
		}},
		{name: "address split three ways", wantHeld: 2, steps: []step{
			{"first", c2s(100, "PORT 10,0,"), mod(100, "")},
			{"second", c2s(110, "1,2,1"), mod(100, "")},
			{"third", c2s(115, "56,64\r\n"), mod(100, portW)},
		}},
		{name: "retransmitted held bytes held back", wantHeld: 1, steps: []step{
			{"NOOP", c2s(94, "NOOP\r\n"), accept(94, "NOOP\r\n")},
			{"held", c2s(100, "PORT 10,"), mod(100, "")},
			{"same again", c2s(100, "PORT 1"), mod(100, "")},
			{"with bytes before it", c2s(94, "NOOP\r\nPORT"), mod(94, "NOOP\r\n")},
			{"inside held", c2s(103, "T 10,"), mod(100, "")},
			{"rest", c2s(108, "0,1,2,156,64\r\n"), mod(100, portW)},
		}},
		{name: "sender retransmits whole line", wantHeld: 1, steps: []step{
			{"held", c2s(100, "PORT 10,0,"), mod(100, "")},
			{"coalesced retransmission", c2s(100, "PORT 10,0,1,2,156,64\r\n"), mod(100, portW)},
			{"and once more after it was sent", c2s(100, "PORT 10,0,1,2,156,64\r\n"), mod(100, portW)},
		}},
		{name: "gap while holding", wantHeld: 1, steps: []step{
			{"held", c2s(100, "PORT 10,0,"), mod(100, "")},
			{"after a gap", c2s(112, "2,156,64\r\n"), drop},
			{"gap filled", c2s(110, "1,2,156,64\r\n"), mod(100, portW)},
		}},
		{name: "pipelined and split", wantHeld: 1, steps: []step{
			{"NOOP then PO", c2s(100, "NOOP\r\nPO"), mod(100, "NOOP\r\n")},
			{"rest and RETR", c2s(108, "RT 10,0,1,2,156,64\r\nRETR f\r\n"), mod(106, portW+"RETR f\r\n")},
		}},
		{name: "other commands are not held", steps: []step{
			{"NO", c2s(100, "NO"), accept(100, "NO")},
			{"OP", c2s(102, "OP\r\n"), accept(102, "OP\r\n")},
		}},
		{name: "line longer than MaxLine passes", maxLine: 12, wantHeld: 1, steps: []step{
			{"held", c2s(100, "PORT 10,0,1,"), mod(100, "")},
			{"too long: sent unparsed", c2s(112, "2,156,64"), mod(100, "PORT 10,0,1,2,156,64")},
			{"end of that line", c2s(120, "\r\n"), accept(120, "\r\n")},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &fakeHoles{}
			e := New(Config{MaxLine: tt.maxLine}, &fakeKernel{bindings: []conntrack.Binding{masqueradeBinding}}, h)
			e.now = func() time.Time { return time.Unix(1_700_000_000, 0) }
			runSteps(t, e.NewWorker(), tt.steps)
			if got := e.Stats().HeldLines; got != tt.wantHeld {
				t.Errorf("held_lines = %d, want %d", got, tt.wantHeld)
			}
		})
	}
}

func TestSplitReply(t *testing.T) {
	e, holes := newTestEngine(dnatBinding)
	w := e.NewWorker()
	s2c := func(seq uint32, payload string) seg {
		return seg{src: privSrv, dst: outsider, sport: 21, dport: 5000, seq: seq, ack: 9, payload: payload}
	}
	runSteps(t, w, []step{
		{"227 start held", s2c(100, "227 Entering Passive Mode (10,0,"), got{Verdict: "accept-modified", Seq: 100, Ack: 9}},
		{"rest", s2c(132, "2,2,195,80).\r\n"), got{Verdict: "accept-modified", Seq: 100, Ack: 9, Payload: "227 Entering Passive Mode (203,0,113,1,195,80).\r\n"}},
	})
	if len(holes.open) != 1 {
		t.Errorf("holes = %v, want one", holes.open)
	}
}

func TestSplitLineGivenUpWhenSenderRetransmits(t *testing.T) {
	h := &fakeHoles{}
	e := New(Config{}, &fakeKernel{bindings: []conntrack.Binding{masqueradeBinding}}, h)
	clock := time.Unix(1_700_000_000, 0)
	e.now = func() time.Time { return clock }
	w := e.NewWorker()
	c2s := masqClientSeg
	runSteps(t, w, []step{
		{"held", c2s(100, "PORT 10,0,"), got{Verdict: "accept-modified", Seq: 100, Ack: 1}},
		{"tail loss probe soon after: held back", c2s(100, "PORT 10,0,"), got{Verdict: "accept-modified", Seq: 100, Ack: 1}},
	})
	clock = clock.Add(250 * time.Millisecond)
	runSteps(t, w, []step{
		{"retransmission after the patience: sent unparsed", c2s(100, "PORT 10,0,"), got{Verdict: "accept", Seq: 100, Ack: 1, Payload: "PORT 10,0,"}},
		{"rest of that line passes", c2s(110, "1,2,156,64\r\n"), got{Verdict: "accept", Seq: 110, Ack: 1, Payload: "1,2,156,64\r\n"}},
		{"next line parsed again", c2s(122, "PORT 10,0,1,2,156,65\r\n"), got{Verdict: "accept-modified", Seq: 122, Ack: 1, Payload: "PORT 203,0,113,1,156,65\r\n"}},
	})
	if st := e.Stats(); st.HoldAbandoned != 1 {
		t.Errorf("hold_abandoned = %d, want 1", st.HoldAbandoned)
	}
}

// portLines returns n pipelined PORT commands from the client (22 bytes
// each) and the same lines as the server must see them (25 bytes each).
func portLines(from, n int) (in, out string) {
	var b, c strings.Builder
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&b, "PORT 10,0,1,2,156,%d\r\n", 10+i)
		fmt.Fprintf(&c, "PORT 203,0,113,1,156,%d\r\n", 10+i)
	}
	return b.String(), c.String()
}

func TestPipelinedBurst(t *testing.T) {
	tests := []struct {
		name    string
		n       int // PORT commands in the first segment
		rewrite int // how many of them are rewritten
	}{
		{name: "more than the kernel's one correction", n: 17, rewrite: 17},
		{name: "exactly the room", n: stream.MaxRecords, rewrite: stream.MaxRecords},
		{name: "past the room", n: stream.MaxRecords + 5, rewrite: stream.MaxRecords},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, holes := newTestEngine(masqueradeBinding)
			w := e.NewWorker()
			c2s, s2c := masqC2S, masqS2C
			in, _ := portLines(0, tt.n)
			_, rewritten := portLines(0, tt.rewrite)
			_, untouched := portLines(tt.rewrite, tt.n-tt.rewrite)
			untouched = strings.ReplaceAll(untouched, "203,0,113,1", "10,0,1,2")
			want := rewritten + untouched
			grow := uint32(3 * tt.rewrite)
			end := 1000 + uint32(len(in))
			next, nextW := portLines(100, 1)
			runSteps(t, w, []step{
				{"burst", c2s(1000, 5000, in), got{Verdict: "accept-modified", Seq: 1000, Ack: 5000, Payload: want}},
				{"burst resent", c2s(1000, 5000, in), got{Verdict: "accept-modified", Seq: 1000, Ack: 5000, Payload: want}},
				{"next command shifted", c2s(end, 5000, "NOOP\r\n"), got{Verdict: "accept-modified", Seq: end + grow, Ack: 5000, Payload: "NOOP\r\n"}},
				{"ack of the whole burst", s2c(5000, end+grow+6, "200 ok\r\n"), got{Verdict: "accept-modified", Seq: 5000, Ack: end + 6, Payload: "200 ok\r\n"}},
				{"room again after the ack", c2s(end+6, 5008, next), got{Verdict: "accept-modified", Seq: end + 6 + grow, Ack: 5008, Payload: nextW}},
			})
			st := e.Stats()
			refused := uint64(tt.n - tt.rewrite)
			if st.Rewrites != uint64(tt.rewrite+1) || st.Replays != uint64(tt.rewrite) || st.RewritesRefused != refused || st.ExpectRefused != refused || st.Errors != 0 || st.Dropped != 0 {
				t.Errorf("rewrites %d replays %d rewrites_refused %d expect_refused %d errors %d dropped %d; want %d %d %d %d 0 0",
					st.Rewrites, st.Replays, st.RewritesRefused, st.ExpectRefused, st.Errors, st.Dropped, tt.rewrite+1, tt.rewrite, refused, refused)
			}
			sess := e.Sessions()[0]
			if n := len(sess.Stream[conntrack.DirOrig].Records()); n != 1 {
				t.Errorf("%d rewrites kept after the ack, want 1 (the unacknowledged last)", n)
			}
			if len(holes.open) != 1 {
				t.Errorf("%d holes open, want 1", len(holes.open))
			}
		})
	}
}

// A line split at the end of a full-size segment is held and put in front of
// the next full-size segment; what would then run past the sender's segment
// size is carried to the segment after, so no packet outgrows the sender's.
func TestJoinedSegmentCarriesPastSendersSize(t *testing.T) {
	e, _ := newTestEngine(masqueradeBinding)
	w := e.NewWorker()
	const isn = 1000
	noops := strings.Repeat("NOOP\r\n", 240) // 1440 bytes
	s1 := noops + "PORT 10,"                 // 1448: ends inside a PORT
	s2 := "0,1,2,156,64\r\n" + noops[:1434]  // 1448
	s3 := "STAT\r\n"
	stream := s1 + s2 + s3
	want := strings.Replace(stream, "PORT 10,0,1,2,156,64", "PORT 203,0,113,1,156,64", 1)
	r := &receiver{base: isn, buf: make([]byte, len(want)), written: make([]bool, len(want))}
	c2s := func(off int, payload string) []byte {
		return build(t, masqClientSeg(isn+uint32(off), payload))
	}
	for _, s := range []struct {
		off     int
		payload string
	}{{0, s1}, {len(s1), s2}, {len(s1) + len(s2), s3}} {
		pkt := c2s(s.off, s.payload)
		v, out := w.Handle(pkt)
		if v == DecisionDrop {
			t.Fatalf("segment at %d dropped", s.off)
		}
		if v == DecisionModified {
			pkt = out
		}
		// At most the sender's size plus the rewrite's growth, or 1280.
		if n := len(c2s(s.off, s.payload)); len(pkt) > max(n+3, minMTU) {
			t.Errorf("segment at %d sent as %d bytes, the sender's was %d", s.off, len(pkt), n)
		}
		r.take(t, pkt)
	}
	if got := string(r.buf[:r.next()]); got != want {
		t.Errorf("receiver has %d of %d bytes; stream differs: %q", r.next(), len(want), got[max(0, len(got)-40):])
	}
	st := e.Stats()
	if st.HeldLines != 1 || st.HeldCarried != 1 || st.Rewrites != 1 || st.Dropped != 0 {
		t.Errorf("held_lines %d held_carried %d rewrites %d dropped %d; want 1 1 1 0", st.HeldLines, st.HeldCarried, st.Rewrites, st.Dropped)
	}
}

// Carried bytes are whole lines: when the sender, after the patience,
// resends from their start a segment that completes a line, the stream is
// read again from there, nothing is given up.
func TestCarriedLinesResentAfterPatience(t *testing.T) {
	e, _ := newTestEngine(masqueradeBinding)
	clock := time.Unix(1_700_000_000, 0)
	e.now = func() time.Time { return clock }
	w := e.NewWorker()
	const isn = 1000
	noops := strings.Repeat("NOOP\r\n", 240)
	s1 := noops + "PORT 10,"
	s2 := "0,1,2,156,64\r\n" + noops[:1410] + "\r\n" + "PORT 10,0,1,2,156,66\r\n" // the last line is carried
	stream := s1 + s2 + "PORT 10,0,1,2,156,65\r\n"
	want := strings.ReplaceAll(stream, "10,0,1,2,156,6", "203,0,113,1,156,6")
	r := &receiver{base: isn, buf: make([]byte, len(want)), written: make([]bool, len(want))}
	send := func(off, end int) {
		t.Helper()
		emit(t, w, r, build(t, masqC2S(isn+uint32(off), 1, stream[off:end])))
	}
	send(0, len(s1))
	send(len(s1), len(s1)+len(s2))
	sess := e.Sessions()[0]
	d := &sess.Stream[conntrack.DirOrig]
	if len(d.Held()) == 0 {
		t.Fatal("nothing carried")
	}
	hs := int(d.HoldStart().Diff(isn))
	clock = clock.Add(300 * time.Millisecond)
	if got := stream[hs : len(s1)+len(s2)]; got != "PORT 10,0,1,2,156,66\r\n" {
		t.Fatalf("carried %q", got)
	}
	send(hs, len(s1)+len(s2)) // the carried line, resent whole
	send(len(s1)+len(s2), len(stream))
	if got := string(r.buf[:r.next()]); got != want {
		t.Errorf("receiver has %d of %d bytes, tail %q", r.next(), len(want), got[max(0, len(got)-40):])
	}
	if st := e.Stats(); st.HoldAbandoned != 0 || st.Rewrites != 3 || st.Dropped != 0 {
		t.Errorf("hold_abandoned %d rewrites %d dropped %d; want 0 3 0", st.HoldAbandoned, st.Rewrites, st.Dropped)
	}
}

// TestResendCutsRewrittenArgument: a rewrite was made in a segment ftpct
// joined from a split line, and that packet was lost after the gateway. The
// sender resends its own pieces, each holding part of the argument; they are
// completed with the argument's original bytes so that the receiver gets the
// rewritten stream, or, when the original cannot be made again, dropped.
func TestResendCutsRewrittenArgument(t *testing.T) {
	const isn = 5000
	long := strings.Repeat("NOOP\r\n", 300)
	tests := []struct {
		name   string
		stream string
		pieces []int // the sender's segment boundaries (offsets)
		lost   int   // the emitted packets, in order, not delivered: a bit mask
		resend [][2]int
		// completed, dropped: counters after the resends.
		completed, dropped uint64
		maxPayload         int // if > 0, the longest payload any emitted packet may carry
	}{
		{
			name:   "both pieces resent",
			stream: "PORT 10,0,1,2,156,64\r\nNOOP\r\n",
			pieces: []int{10, 22, 28}, lost: 0b10,
			resend:    [][2]int{{0, 10}, {10, 22}},
			completed: 2,
		},
		{
			name:   "resent piece inside the argument only",
			stream: "PORT 10,0,1,2,156,64\r\nNOOP\r\n",
			pieces: []int{8, 12, 28}, lost: 0b100,
			resend:    [][2]int{{0, 8}, {8, 12}, {12, 28}},
			completed: 3,
		},
		{
			name:   "EPRT split, resent coalesced but cut",
			stream: "EPRT |1|10.0.1.2|40000|\r\nLIST\r\n",
			pieces: []int{14, 31}, lost: 0b10,
			resend:    [][2]int{{0, 14}, {14, 31}},
			completed: 2,
		},
		{
			name:   "argument with leading zeros cannot be made again",
			stream: "PORT 010,0,1,2,156,64\r\nNOOP\r\n",
			pieces: []int{10, 23, 29}, lost: 0b10,
			resend:  [][2]int{{0, 10}, {0, 23}}, // the cut piece is dropped; the sender collapses its resend
			dropped: 1,
		},
		{
			name:   "completed resend stays within the sender's size",
			stream: "PORT 10,0,1,2,156,64\r\n" + long,
			pieces: []int{12, 1460, 22 + len(long)}, lost: 0b10,
			resend:     [][2]int{{0, 12}, {12, 1460}, {1453, 22 + len(long)}},
			completed:  2,
			maxPayload: 1448 + 3, // the sender's size, grown by the rewrite
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newTestEngine(masqueradeBinding)
			w := e.NewWorker()
			want := strings.NewReplacer("010,0,1,2,156,64", "203,0,113,1,156,64", "10,0,1,2,156,64", "203,0,113,1,156,64",
				"|10.0.1.2|", "|203.0.113.1|").Replace(tt.stream)
			r := &receiver{base: isn, buf: make([]byte, len(want)), written: make([]bool, len(want))}
			emitted := 0
			send := func(off, end int, deliver bool) {
				t.Helper()
				v, out := w.Handle(build(t, masqClientSeg(isn+uint32(off), tt.stream[off:end])))
				if v == DecisionDrop {
					return
				}
				var p rewrite.Packet
				if err := rewrite.Decode(out, &p); err != nil && v == DecisionModified {
					t.Fatal(err)
				}
				if v == DecisionModified && tt.maxPayload > 0 && p.Len-p.PayloadOff > tt.maxPayload {
					t.Errorf("emitted %d payload bytes, more than %d", p.Len-p.PayloadOff, tt.maxPayload)
				}
				if deliver {
					if v == DecisionModified {
						r.take(t, out)
					} else {
						r.take(t, build(t, masqClientSeg(isn+uint32(off), tt.stream[off:end])))
					}
				}
			}
			from := 0
			for _, to := range tt.pieces {
				send(from, to, tt.lost&(1<<emitted) == 0)
				emitted++
				from = to
			}
			for _, rs := range tt.resend {
				send(rs[0], rs[1], true)
			}
			if got := string(r.buf[:r.next()]); got != want {
				t.Errorf("receiver has\n%q\nwant\n%q", got, want)
			}
			st := e.Stats()
			if st.ResendsCompleted != tt.completed || st.Dropped != tt.dropped || st.Errors != 0 {
				t.Errorf("resends_completed %d dropped %d errors %d; want %d %d 0", st.ResendsCompleted, st.Dropped, st.Errors, tt.completed, tt.dropped)
			}
		})
	}
}

// A new connection that reuses a tracked one's addresses and ports (the
// client's SYN) starts afresh: the old stream's offsets, held bytes and
// holes do not apply to it.
func TestReusedTupleStartsAfresh(t *testing.T) {
	e, holes := newTestEngine(masqueradeBinding)
	w := e.NewWorker()
	syn := masqC2S(90000, 0, "")
	syn.flags = "S"
	fin := masqC2S(1044, 5017, "")
	fin.flags = "F"
	runSteps(t, w, []step{
		{"PORT rewritten", masqC2S(1016, 5008, "PORT 10,0,1,2,156,64\r\n"), got{Verdict: "accept-modified", Seq: 1016, Ack: 5008, Payload: "PORT 203,0,113,1,156,64\r\n"}},
		{"a SYN while the connection lives is mapped like any segment", syn, got{Verdict: "accept-modified", Seq: 90003}},
		{"the live connection keeps its offset", masqC2S(1038, 5008, "NOOP\r\n"), got{Verdict: "accept-modified", Seq: 1041, Ack: 5008, Payload: "NOOP\r\n"}},
		{"server closes", masqS2C(5008, 1047, "221 bye\r\n"), got{Verdict: "accept-modified", Seq: 5008, Ack: 1044, Payload: "221 bye\r\n"}},
		{"client closes", fin, got{Verdict: "accept-modified", Seq: 1047, Ack: 5017}},
		{"SYN of a new connection on the same ports", syn, got{Verdict: "accept", Seq: 90000}},
		{"its first command passes as sent", masqC2S(90001, 7001, "USER anonymous\r\n"), got{Verdict: "accept", Seq: 90001, Ack: 7001, Payload: "USER anonymous\r\n"}},
		{"its server's reply is not shifted", masqS2C(7001, 90017, "331 ok\r\n"), got{Verdict: "accept", Seq: 7001, Ack: 90017, Payload: "331 ok\r\n"}},
	})
	if st := e.Stats(); st.SessionsReused != 1 || st.Sessions != 2 {
		t.Errorf("sessions_reused=%d sessions=%d, want 1 and 2", st.SessionsReused, st.Sessions)
	}
	if len(holes.open) != 0 {
		t.Errorf("the old connection's holes stay open: %v", holes.open)
	}
}

// A session's next announcement evicts its pending expectation unless that
// expectation's data connection came already. The kernel reports data
// connections by events read apart from the queue: the engine has them
// read (UsedEvents) before it evicts, so an expectation used before the
// announcement is counted used, not evicted, however late its event would
// have been read.
func TestUsedBeforeEvicted(t *testing.T) {
	data := conntrack.Binding{
		Orig:  conntrack.Tuple{Src: server, Dst: gwPublic, SrcPort: 20, DstPort: 40000},
		Reply: conntrack.Tuple{Src: client, Dst: server, SrcPort: 40000, DstPort: 20},
	}
	tests := []struct {
		name        string
		hook        bool // UsedEvents set
		pending     bool // the data connection's event is still unread at the second PORT
		wantUsed    uint64
		wantEvicted uint64
		wantSyncs   int
	}{
		{name: "event read in time", hook: true, pending: false, wantUsed: 1, wantEvicted: 0, wantSyncs: 0},
		{name: "event pending, read before the eviction", hook: true, pending: true, wantUsed: 1, wantEvicted: 0, wantSyncs: 1},
		{name: "event pending, no events hook", hook: false, pending: true, wantUsed: 0, wantEvicted: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newTestEngine(masqueradeBinding)
			var queued []conntrack.Binding
			syncs := 0
			if tt.hook {
				e.UsedEvents(func() {
					syncs++
					for _, b := range queued {
						e.DataConnection(b)
					}
					queued = queued[:0]
				})
			}
			w := e.NewWorker()
			w.Handle(build(t, masqC2S(1, 1, "PORT 10,0,1,2,156,64\r\n")))
			if tt.pending {
				queued = append(queued, data)
			} else {
				e.DataConnection(data)
			}
			w.Handle(build(t, masqC2S(23, 1, "PORT 10,0,1,2,156,65\r\n")))
			st := e.Stats()
			if st.ExpectCreated != 2 || st.ExpectUsed != tt.wantUsed || st.ExpectEvicted != tt.wantEvicted {
				t.Errorf("created %d used %d evicted %d, want 2 %d %d", st.ExpectCreated, st.ExpectUsed, st.ExpectEvicted, tt.wantUsed, tt.wantEvicted)
			}
			if syncs != tt.wantSyncs {
				t.Errorf("events synced %d times, want %d (only before an eviction)", syncs, tt.wantSyncs)
			}
		})
	}
}
