package rewrite

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/ftpct/ftpct/seqnum"
	"github.com/ftpct/ftpct/stream"
	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// cmpAddr lets cmp compare netip.Addr values (unexported fields).
var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

// tcpSpec describes a test packet, built with gopacket (lengths and checksums computed there,
// independently of this package).
type tcpSpec struct {
	src, dst         string
	sport, dport     uint16
	seq, ack         uint32
	flags            uint8
	sack             []SACKBlock
	timestamps       bool
	payload          string
	dstOpts          bool // IPv6 only: insert an 8-byte destination options header
	hopByHop         bool // IPv6 only: insert an 8-byte hop-by-hop header
	trailing         int  // extra bytes after the IP packet (link-layer padding)
	corruptChecksum  bool // flip a bit of the TCP checksum
	ipv4DontFragment bool
}

func buildPacket(t testing.TB, s tcpSpec) []byte {
	t.Helper()
	src, dst := netip.MustParseAddr(s.src), netip.MustParseAddr(s.dst)
	tcp := &layers.TCP{
		SrcPort: layers.TCPPort(s.sport),
		DstPort: layers.TCPPort(s.dport),
		Seq:     s.seq,
		Ack:     s.ack,
		FIN:     s.flags&FlagFIN != 0,
		SYN:     s.flags&FlagSYN != 0,
		RST:     s.flags&FlagRST != 0,
		PSH:     s.flags&FlagPSH != 0,
		ACK:     s.flags&FlagACK != 0,
		URG:     s.flags&FlagURG != 0,
		Window:  502,
	}
	if s.timestamps {
		tcp.Options = append(tcp.Options,
			layers.TCPOption{OptionType: layers.TCPOptionKindNop},
			layers.TCPOption{OptionType: layers.TCPOptionKindNop},
			layers.TCPOption{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10,
				OptionData: []byte{0, 0, 0x12, 0x34, 0, 0, 0x56, 0x78}})
	}
	if len(s.sack) > 0 {
		data := make([]byte, 0, 8*len(s.sack))
		for _, blk := range s.sack {
			data = binary.BigEndian.AppendUint32(data, uint32(blk.Left))
			data = binary.BigEndian.AppendUint32(data, uint32(blk.Right))
		}
		tcp.Options = append(tcp.Options,
			layers.TCPOption{OptionType: layers.TCPOptionKindNop},
			layers.TCPOption{OptionType: layers.TCPOptionKindNop},
			layers.TCPOption{OptionType: layers.TCPOptionKindSACK, OptionLength: uint8(2 + len(data)), OptionData: data})
	}
	var ip gopacket.SerializableLayer
	if src.Is4() {
		ip4 := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, Id: 0x1234,
			SrcIP: net.IP(src.AsSlice()), DstIP: net.IP(dst.AsSlice())}
		if s.ipv4DontFragment {
			ip4.Flags = layers.IPv4DontFragment
		}
		if err := tcp.SetNetworkLayerForChecksum(ip4); err != nil {
			t.Fatal(err)
		}
		ip = ip4
	} else {
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP,
			SrcIP: net.IP(src.AsSlice()), DstIP: net.IP(dst.AsSlice())}
		if err := tcp.SetNetworkLayerForChecksum(ip6); err != nil {
			t.Fatal(err)
		}
		ip = ip6
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ip, tcp, gopacket.Payload(s.payload)); err != nil {
		t.Fatal(err)
	}
	b := append([]byte(nil), buf.Bytes()...)
	if s.dstOpts {
		b = insertIPv6ExtHeader(b, protoDstOpts)
	}
	if s.hopByHop {
		b = insertIPv6ExtHeader(b, protoHopByHop)
	}
	if s.corruptChecksum {
		var p Packet
		if err := Decode(b, &p); err != nil {
			t.Fatal(err)
		}
		b[p.TCPOff+17] ^= 0x40
	}
	for range s.trailing {
		b = append(b, 0xee)
	}
	return b
}

// insertIPv6ExtHeader inserts an 8-byte extension header (PadN option) of type kind right
// after the fixed IPv6 header. The TCP checksum stays valid: the pseudo-header uses the
// upper-layer length, which does not change.
func insertIPv6ExtHeader(b []byte, kind uint8) []byte {
	ext := []byte{b[6], 0, 1, 4, 0, 0, 0, 0} // next header, len 0 (8 bytes), PadN of 4
	out := append(append(append([]byte(nil), b[:40]...), ext...), b[40:]...)
	out[6] = kind
	binary.BigEndian.PutUint16(out[4:], uint16(len(out)-40))
	return out
}

// refSum is a deliberately naive RFC 1071 sum, independent of checksum.go.
func refSum(parts ...[]byte) uint16 {
	var acc uint32
	for _, b := range parts {
		for i := 0; i < len(b); i += 2 {
			w := uint32(b[i]) << 8
			if i+1 < len(b) {
				w |= uint32(b[i+1])
			}
			acc += w
		}
	}
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return uint16(acc)
}

// refTCPValid checks the TCP checksum of the decoded packet naively, with the pseudo-header
// from the IP header's addresses.
func refTCPValid(b []byte, p *Packet) bool {
	seg := b[p.TCPOff:p.Len]
	l := len(seg)
	var addrs []byte
	if p.V6 {
		addrs = b[8:40]
	} else {
		addrs = b[12:20]
	}
	pseudoTail := []byte{0, 0, byte(l >> 8), byte(l), 0, 0, 0, protoTCP}
	return refSum(addrs, pseudoTail, seg) == 0xffff
}

// checkWithGopacket decodes out with gopacket and checks that lengths and checksums hold.
func checkWithGopacket(t *testing.T, out []byte, v6 bool) {
	t.Helper()
	first := layers.LayerTypeIPv4
	if v6 {
		first = layers.LayerTypeIPv6
	}
	pkt := gopacket.NewPacket(out, first, gopacket.Default)
	if el := pkt.ErrorLayer(); el != nil {
		t.Fatalf("gopacket cannot decode output: %v", el.Error())
	}
	if v6 {
		ip6 := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		if int(ip6.Length) != len(out)-40 {
			t.Errorf("IPv6 payload length = %d, want %d", ip6.Length, len(out)-40)
		}
	} else {
		ip4 := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if int(ip4.Length) != len(out) {
			t.Errorf("IPv4 total length = %d, want %d", ip4.Length, len(out))
		}
		if s := refSum(out[:int(ip4.IHL)*4]); s != 0xffff {
			t.Errorf("IPv4 header checksum invalid (sum %#x)", s)
		}
	}
	tcp, ok := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !ok {
		t.Fatalf("gopacket found no TCP layer")
	}
	if err := tcp.SetNetworkLayerForChecksum(pkt.NetworkLayer()); err != nil {
		t.Fatal(err)
	}
	err, res := tcp.VerifyChecksum()
	if err != nil || !res.Valid {
		t.Errorf("gopacket TCP checksum verification: err=%v result=%+v", err, res)
	}
}

// MaxRecords is how many rewrites a direction keeps (stream.MaxRecords).
const MaxRecords = stream.MaxRecords

// Record is a length change as the tests write it: Delta bytes at Pos.
type Record struct {
	Pos   seqnum.Value
	Delta int32
}

// SeqAdj is a direction's sequence map for the tests: the normaliser's
// stream.Half, fed with bare length changes.
type SeqAdj struct{ stream.Half }

// Record keeps a length change of delta bytes at pos.
func (a *SeqAdj) Record(pos seqnum.Value, delta int32) error {
	return a.Add(stream.Record{Pos: pos, OrigLen: uint16(max(1, -delta)), Delta: int16(delta)})
}

// Records returns the kept length changes, oldest first.
func (a *SeqAdj) Records() []Record {
	var out []Record
	for _, r := range a.Half.Records() {
		out = append(out, Record{Pos: r.Pos, Delta: int32(r.Delta)})
	}
	return out
}

// Len returns how many length changes are kept; At returns the i-th.
func (a *SeqAdj) Len() int        { return len(a.Half.Records()) }
func (a *SeqAdj) At(i int) Record { return a.Records()[i] }

// rewriteRec calls Rewrite and records the length changes of splices in
// this, as the engine keeps them (a segment's own changes never shift it, so
// recording them after gives the same packet). On error nothing stays
// recorded.
func rewriteRec(dst, pkt []byte, p *Packet, splices []Splice, this, other *SeqAdj) ([]byte, bool, error) {
	var tm, om SeqMap
	if this != nil {
		tm = this
	}
	if other != nil {
		om = other
	}
	out, changed, err := Rewrite(dst, pkt, p, splices, tm, om)
	if err != nil || this == nil {
		return out, changed, err
	}
	kept := this.Len()
	for _, s := range splices {
		if d := len(s.Repl) - (s.End - s.Off); d != 0 {
			if err := this.Record(p.dataSeq().Add(int32(s.Off)), int32(d)); err != nil {
				this.Truncate(kept)
				return dst[:0], false, err
			}
		}
	}
	return out, changed, nil
}

// sameAdj reports whether a and b keep the same length changes.
func sameAdj(a, b SeqAdj) bool {
	return a.Base() == b.Base() && slices.Equal(a.Records(), b.Records())
}

// dataSeq returns the original sequence number of the first payload byte (a SYN occupies one).
func (p *Packet) dataSeq() seqnum.Value {
	if p.Flags&FlagSYN != 0 {
		return p.Seq + 1
	}
	return p.Seq
}
