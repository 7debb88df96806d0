//go:build linux

package conntrack

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/mdlayher/netlink"
	ctnl "github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// resizedRequest is the reference for appendResized: the same request built
// with ti-mo/netfilter's encoder (how Kernel built it before it encoded by
// hand).
func resizedRequest(t Tuple, labels [LabelsSize]byte) (netlink.Message, error) {
	mask := [LabelsSize]byte{}
	for i := range mask {
		mask[i] = 0xff
	}
	liberal := netfilter.Attribute{Type: ctaProtoInfo, Nested: true, Children: []netfilter.Attribute{
		{Type: ctaProtoInfoTCP, Nested: true, Children: []netfilter.Attribute{
			{Type: ctaTCPFlagsOrig, Data: []byte{tcpFlagBeLiberal, tcpFlagBeLiberal}},
			{Type: ctaTCPFlagsRepl, Data: []byte{tcpFlagBeLiberal, tcpFlagBeLiberal}},
		}},
	}}
	return referenceRequest(t, ipctnlMsgCtNew, []netfilter.Attribute{
		liberal,
		{Type: ctaLabels, Data: labels[:]},
		{Type: ctaLabelsMask, Data: mask[:]},
	})
}

func referenceRequest(t Tuple, typ uint8, extra []netfilter.Attribute) (netlink.Message, error) {
	family := netfilter.ProtoIPv4
	srcType, dstType := uint16(ctaIPv4Src), uint16(ctaIPv4Dst)
	src, dst := t.Src.Unmap(), t.Dst.Unmap()
	if !src.Is4() {
		family = netfilter.ProtoIPv6
		srcType, dstType = ctaIPv6Src, ctaIPv6Dst
	}
	tuple := netfilter.Attribute{Type: ctaTupleOrig, Nested: true, Children: []netfilter.Attribute{
		{Type: ctaTupleIP, Nested: true, Children: []netfilter.Attribute{
			{Type: srcType, Data: src.AsSlice()},
			{Type: dstType, Data: dst.AsSlice()},
		}},
		{Type: ctaTupleProto, Nested: true, Children: []netfilter.Attribute{
			{Type: ctaProtoNum, Data: []byte{unix.IPPROTO_TCP}},
			{Type: ctaProtoSrcPort, Data: netfilter.Uint16Bytes(t.SrcPort)},
			{Type: ctaProtoDstPort, Data: netfilter.Uint16Bytes(t.DstPort)},
		}},
	}}
	return netfilter.MarshalNetlink(netfilter.Header{
		SubsystemID: netfilter.NFSubsysCTNetlink,
		MessageType: netfilter.MessageType(typ),
		Family:      family,
		Flags:       netlink.Request | netlink.Acknowledge,
	}, append([]netfilter.Attribute{tuple}, extra...))
}

// wireBytes is m as the kernel receives it, with sequence number seq.
func wireBytes(tb testing.TB, m netlink.Message, seq uint32) []byte {
	tb.Helper()
	m.Header.Sequence = seq
	m.Header.Length = uint32(nlmsgHdrLen + len(m.Data))
	b, err := m.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

var encodeTests = []struct {
	name   string
	t      Tuple
	labels [LabelsSize]byte
}{
	{"ipv4", Tuple{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("198.51.100.7"), SrcPort: 40000, DstPort: 21}, [LabelsSize]byte{0: 0x18, 15: 0xff}},
	{"ipv4-mapped", Tuple{Src: netip.MustParseAddr("::ffff:10.0.0.1"), Dst: netip.MustParseAddr("::ffff:10.0.0.2"), SrcPort: 1, DstPort: 65535}, [LabelsSize]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}},
	{"ipv6", Tuple{Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2:1"), SrcPort: 2121, DstPort: 0x1234}, [LabelsSize]byte{}},
}

// TestAppendResized checks the hand encoding against ti-mo/netfilter's.
func TestAppendResized(t *testing.T) {
	for _, tc := range encodeTests {
		t.Run(tc.name, func(t *testing.T) {
			ref, err := resizedRequest(tc.t, tc.labels)
			if err != nil {
				t.Fatal(err)
			}
			want := wireBytes(t, ref, 0x01020304)
			// Appending to a used buffer must leave its start alone.
			prefix := []byte{9, 9, 9, 9}
			got := appendResized(append([]byte{}, prefix...), 0x01020304, tc.t, &tc.labels)
			if diff := cmp.Diff(prefix, got[:4]); diff != "" {
				t.Errorf("prefix (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(want, got[4:]); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
			if len(got)-4 > maxRequestLen {
				t.Errorf("request of %d bytes, longer than maxRequestLen %d", len(got)-4, maxRequestLen)
			}
		})
	}
}

// TestAppendGet checks the hand encoding against ti-mo/netfilter's.
func TestAppendGet(t *testing.T) {
	for _, tc := range encodeTests {
		t.Run(tc.name, func(t *testing.T) {
			ref, err := referenceRequest(tc.t, ipctnlMsgCtGet, nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(wireBytes(t, ref, 7), appendGet(nil, 7, tc.t)); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAppendResizedAllocs(t *testing.T) {
	buf := make([]byte, 0, maxRequestLen)
	tc := encodeTests[2]
	if n := testing.AllocsPerRun(100, func() { buf = appendResized(buf[:0], 1, tc.t, &tc.labels) }); n != 0 {
		t.Errorf("appendResized: %v allocations, want 0", n)
	}
}

// nlMsg is a netlink message of type typ with sequence number seq and body,
// padded to four bytes.
func nlMsg(typ uint16, seq uint32, body []byte) []byte {
	b := binary.NativeEndian.AppendUint32(nil, uint32(nlmsgHdrLen+len(body)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, 0)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = append(b, body...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func TestNextMessage(t *testing.T) {
	ack := nlMsg(nlmsgError, 3, []byte{0, 0, 0, 0})
	odd := nlMsg(0x101, 4, []byte{1, 2, 3, 4, 5}) // padded to 24 bytes
	tests := []struct {
		name      string
		in        []byte
		wantTypes []uint16
		wantSeqs  []uint32
		wantBody  [][]byte
		wantErr   bool
	}{
		{"one", ack, []uint16{nlmsgError}, []uint32{3}, [][]byte{{0, 0, 0, 0}}, false},
		{"padded then ack", append(append([]byte{}, odd...), ack...), []uint16{0x101, nlmsgError}, []uint32{4, 3}, [][]byte{{1, 2, 3, 4, 5}, {0, 0, 0, 0}}, false},
		{"short header", ack[:10], nil, nil, nil, true},
		{"length beyond datagram", ack[:len(ack)-1], nil, nil, nil, true},
		{"length below header", append([]byte{4, 0, 0, 0}, ack[4:]...), nil, nil, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var (
				types  []uint16
				seqs   []uint32
				bodies [][]byte
				err    error
			)
			for b := tc.in; len(b) > 0 && err == nil; {
				var h nlHeader
				var body []byte
				if h, body, b, err = nextMessage(b); err == nil {
					types, seqs, bodies = append(types, h.Type), append(seqs, h.Seq), append(bodies, body)
				}
			}
			if (err != nil) != tc.wantErr || err != nil && !errors.Is(err, errMalformed) {
				t.Fatalf("error %v, want error %v wrapping errMalformed", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if diff := cmp.Diff(tc.wantTypes, types); diff != "" {
				t.Errorf("types (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantSeqs, seqs); diff != "" {
				t.Errorf("sequence numbers (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantBody, bodies); diff != "" {
				t.Errorf("bodies (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseError(t *testing.T) {
	tests := []struct {
		name    string
		body    []byte
		want    syscall.Errno
		wantErr bool
	}{
		{"ack", nlMsg(0, 0, []byte{0, 0, 0, 0})[16:], 0, false},
		{"enoent", []byte{0xfe, 0xff, 0xff, 0xff, 1, 2, 3, 4}, unix.ENOENT, false},
		{"short", []byte{0xfe, 0xff}, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseError(tc.body)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("errno %v, want %v", got, tc.want)
			}
		})
	}
}

// referenceDecode is the reference for decodeFlow: the binding read from a
// CT_GET answer with ti-mo/conntrack's decoder (how Kernel read it before it
// decoded in place).
func referenceDecode(m netlink.Message) (Binding, uint8, error) {
	var ev ctnl.Event
	if err := ev.Unmarshal(m); err != nil {
		return Binding{}, 0, err
	}
	if ev.Flow == nil {
		return Binding{}, 0, errors.New("no flow")
	}
	tupleOf := func(t ctnl.Tuple) Tuple {
		return Tuple{Src: t.IP.SourceAddress, Dst: t.IP.DestinationAddress, SrcPort: t.Proto.SourcePort, DstPort: t.Proto.DestinationPort}
	}
	b := Binding{Orig: tupleOf(ev.Flow.TupleOrig), Reply: tupleOf(ev.Flow.TupleReply), Mark: ev.Flow.Mark}
	if tcp := ev.Flow.ProtoInfo.TCP; tcp != nil {
		b.Liberal = (tcp.OriginalFlags&tcp.ReplyFlags)>>8&tcpFlagBeLiberal != 0
	}
	copy(b.Labels[:], ev.Flow.Labels)
	return b, ev.Flow.TupleOrig.Proto.Protocol, nil
}

// withProto returns tuple attribute a (tupleAttr's) with protocol proto.
func withProto(a netfilter.Attribute, proto byte) netfilter.Attribute {
	a.Children = slices.Clone(a.Children)
	p := a.Children[1]
	p.Children = slices.Clone(p.Children)
	p.Children[0].Data = []byte{proto}
	a.Children[1] = p
	return a
}

func tupleAttr(typ uint16, t Tuple) netfilter.Attribute {
	srcType, dstType := uint16(ctaIPv4Src), uint16(ctaIPv4Dst)
	if !t.Src.Is4() {
		srcType, dstType = ctaIPv6Src, ctaIPv6Dst
	}
	return netfilter.Attribute{Type: typ, Nested: true, Children: []netfilter.Attribute{
		{Type: ctaTupleIP, Nested: true, Children: []netfilter.Attribute{
			{Type: srcType, Data: t.Src.AsSlice()},
			{Type: dstType, Data: t.Dst.AsSlice()},
		}},
		{Type: ctaTupleProto, Nested: true, Children: []netfilter.Attribute{
			{Type: ctaProtoNum, Data: []byte{unix.IPPROTO_TCP}},
			{Type: ctaProtoSrcPort, Data: netfilter.Uint16Bytes(t.SrcPort)},
			{Type: ctaProtoDstPort, Data: netfilter.Uint16Bytes(t.DstPort)},
		}},
	}}
}

// tcpInfo is CTA_PROTOINFO as the kernel sends it: state, window scales and
// the flags of both directions.
func tcpInfo(orig, reply byte) netfilter.Attribute {
	return netfilter.Attribute{Type: ctaProtoInfo, Nested: true, Children: []netfilter.Attribute{
		{Type: ctaProtoInfoTCP, Nested: true, Children: []netfilter.Attribute{
			{Type: 1, Data: []byte{3}}, // CTA_PROTOINFO_TCP_STATE: ESTABLISHED
			{Type: 2, Data: []byte{7}}, // CTA_PROTOINFO_TCP_WSCALE_ORIGINAL
			{Type: 3, Data: []byte{7}}, // CTA_PROTOINFO_TCP_WSCALE_REPLY
			{Type: ctaTCPFlagsOrig, Data: []byte{orig, 0}},
			{Type: ctaTCPFlagsRepl, Data: []byte{reply, 0}},
		}},
	}}
}

// flowMessage is a CT_GET answer with attrs, as the kernel sends it.
func flowMessage(tb testing.TB, family netfilter.ProtoFamily, attrs ...netfilter.Attribute) netlink.Message {
	tb.Helper()
	m, err := netfilter.MarshalNetlink(netfilter.Header{
		SubsystemID: netfilter.NFSubsysCTNetlink,
		MessageType: netfilter.MessageType(ipctnlMsgCtNew),
		Family:      family,
	}, attrs)
	if err != nil {
		tb.Fatal(err)
	}
	m.Header.Length = uint32(nlmsgHdrLen + len(m.Data))
	return m
}

func TestDecodeFlow(t *testing.T) {
	v4 := Tuple{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("198.51.100.7"), SrcPort: 40000, DstPort: 21}
	v4nat := Tuple{Src: netip.MustParseAddr("198.51.100.7"), Dst: netip.MustParseAddr("203.0.113.9"), SrcPort: 21, DstPort: 61000}
	v6 := Tuple{Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2:1"), SrcPort: 2121, DstPort: 0x1234}
	labels := []byte{0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xa5}
	other := []netfilter.Attribute{
		{Type: 3, Data: []byte{0, 0, 1, 0x8e}},           // CTA_STATUS
		{Type: 7, Data: []byte{0, 0, 0x1c, 0x20}},        // CTA_TIMEOUT
		{Type: 12, Data: []byte{0xde, 0xad, 0xbe, 0xef}}, // CTA_ID
		{Type: 11, Data: []byte{0, 0, 0, 1}},             // CTA_USE
		{Type: 9, Nested: true, Children: []netfilter.Attribute{ // CTA_COUNTERS_ORIG
			{Type: 1, Data: []byte{0, 0, 0, 0, 0, 0, 0, 5}}, // CTA_COUNTERS_PACKETS
			{Type: 2, Data: []byte{0, 0, 0, 0, 0, 0, 1, 5}}, // CTA_COUNTERS_BYTES
		}},
	}
	tests := []struct {
		name   string
		family netfilter.ProtoFamily
		attrs  []netfilter.Attribute
	}{
		{"ipv4 translated, labels, liberal", netfilter.ProtoIPv4, append([]netfilter.Attribute{tupleAttr(ctaTupleOrig, v4), tupleAttr(ctaTupleReply, v4nat),
			{Type: ctaMark, Data: []byte{0x00, 0x10, 0x00, 0x01}}, tcpInfo(0x08|0x02, 0x08|0x20), {Type: ctaLabels, Data: labels}}, other...)},
		{"ipv4 strict, no labels", netfilter.ProtoIPv4, append(other, tupleAttr(ctaTupleOrig, v4), tupleAttr(ctaTupleReply, v4.Reverse()), tcpInfo(0x02, 0x20))},
		{"liberal one way only", netfilter.ProtoIPv4, []netfilter.Attribute{tupleAttr(ctaTupleOrig, v4), tupleAttr(ctaTupleReply, v4.Reverse()), tcpInfo(0x08, 0x20)}},
		{"no protoinfo", netfilter.ProtoIPv4, []netfilter.Attribute{tupleAttr(ctaTupleOrig, v4), tupleAttr(ctaTupleReply, v4.Reverse()), {Type: ctaLabels, Data: labels}}},
		{"ipv6", netfilter.ProtoIPv6, []netfilter.Attribute{tupleAttr(ctaTupleOrig, v6), tupleAttr(ctaTupleReply, v6.Reverse()), tcpInfo(0x08, 0x08),
			{Type: ctaMark, Data: []byte{1, 2, 3, 4}}, {Type: ctaLabels, Data: labels}}},
		{"udp", netfilter.ProtoIPv4, []netfilter.Attribute{withProto(tupleAttr(ctaTupleOrig, v4), unix.IPPROTO_UDP), withProto(tupleAttr(ctaTupleReply, v4.Reverse()), unix.IPPROTO_UDP)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := flowMessage(t, tc.family, tc.attrs...)
			want, wantProto, err := referenceDecode(m)
			if err != nil {
				t.Fatalf("reference decoder: %v", err)
			}
			got, proto, err := decodeFlow(m.Data)
			if err != nil {
				t.Fatalf("decodeFlow: %v", err)
			}
			if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
				t.Errorf("binding (-want +got):\n%s", diff)
			}
			if proto != wantProto {
				t.Errorf("protocol %d, want %d", proto, wantProto)
			}
		})
	}
}

func TestDecodeFlowMalformed(t *testing.T) {
	v4 := Tuple{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("198.51.100.7"), SrcPort: 40000, DstPort: 21}
	whole := flowMessage(t, netfilter.ProtoIPv4, tupleAttr(ctaTupleOrig, v4), tupleAttr(ctaTupleReply, v4.Reverse())).Data
	tests := []struct {
		name string
		body []byte
	}{
		{"empty", nil},
		{"truncated", whole[:len(whole)-3]},
		{"no reply tuple", flowMessage(t, netfilter.ProtoIPv4, tupleAttr(ctaTupleOrig, v4)).Data},
		{"short mark", flowMessage(t, netfilter.ProtoIPv4, tupleAttr(ctaTupleOrig, v4), tupleAttr(ctaTupleReply, v4), netfilter.Attribute{Type: ctaMark, Data: []byte{1}}).Data},
		{"short address", flowMessage(t, netfilter.ProtoIPv4, netfilter.Attribute{Type: ctaTupleOrig, Nested: true, Children: []netfilter.Attribute{
			{Type: ctaTupleIP, Nested: true, Children: []netfilter.Attribute{{Type: ctaIPv4Src, Data: []byte{1, 2, 3}}}}}}, tupleAttr(ctaTupleReply, v4)).Data},
		{"short port", flowMessage(t, netfilter.ProtoIPv4, netfilter.Attribute{Type: ctaTupleOrig, Nested: true, Children: []netfilter.Attribute{
			{Type: ctaTupleProto, Nested: true, Children: []netfilter.Attribute{{Type: ctaProtoSrcPort, Data: []byte{1}}}}}}, tupleAttr(ctaTupleReply, v4)).Data},
		{"short TCP flags", flowMessage(t, netfilter.ProtoIPv4, tupleAttr(ctaTupleOrig, v4), tupleAttr(ctaTupleReply, v4), netfilter.Attribute{Type: ctaProtoInfo, Nested: true, Children: []netfilter.Attribute{
			{Type: ctaProtoInfoTCP, Nested: true, Children: []netfilter.Attribute{{Type: ctaTCPFlagsOrig, Data: []byte{8}}}}}}).Data},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := decodeFlow(tc.body); !errors.Is(err, errMalformed) {
				t.Errorf("decodeFlow: %v, want errMalformed", err)
			}
		})
	}
}

func TestDecodeFlowAllocs(t *testing.T) {
	v6 := Tuple{Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2:1"), SrcPort: 2121, DstPort: 0x1234}
	body := flowMessage(t, netfilter.ProtoIPv6, tupleAttr(ctaTupleOrig, v6), tupleAttr(ctaTupleReply, v6.Reverse()), tcpInfo(8, 8)).Data
	if n := testing.AllocsPerRun(100, func() {
		if _, _, err := decodeFlow(body); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("decodeFlow: %v allocations, want 0", n)
	}
}

// FuzzDecodeFlow checks that no input makes the decoder panic and that
// every failure wraps errMalformed.
func FuzzDecodeFlow(f *testing.F) {
	v4 := Tuple{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("198.51.100.7"), SrcPort: 40000, DstPort: 21}
	f.Add(flowMessage(f, netfilter.ProtoIPv4, tupleAttr(ctaTupleOrig, v4), tupleAttr(ctaTupleReply, v4.Reverse()), tcpInfo(8, 8)).Data)
	f.Add([]byte{2, 0, 0, 0, 4, 0, 1, 0})
	f.Fuzz(func(t *testing.T, body []byte) {
		if _, _, err := decodeFlow(body); err != nil && !errors.Is(err, errMalformed) {
			t.Fatalf("error %v does not wrap errMalformed", err)
		}
	})
}
