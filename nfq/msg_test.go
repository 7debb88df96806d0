package nfq

import (
	"encoding/binary"
	"errors"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
)

// The tests build and check messages with mdlayher/netlink's encoder and
// decoder: an implementation independent of nfq's own.

// attr is one netlink attribute for a test message.
type attr struct {
	typ  uint16
	data []byte
}

// nlMessage returns one marshalled netlink message with an nfgenmsg of family
// and res_id followed by attrs.
func nlMessage(tb testing.TB, typ uint16, flags netlink.HeaderFlags, seq uint32, family uint8, resID uint16, attrs ...attr) []byte {
	tb.Helper()
	ae := netlink.NewAttributeEncoder()
	for _, a := range attrs {
		ae.Bytes(a.typ, a.data)
	}
	ab, err := ae.Encode()
	if err != nil {
		tb.Fatal(err)
	}
	data := append([]byte{family, 0}, binary.BigEndian.AppendUint16(nil, resID)...)
	data = append(data, ab...)
	b, err := netlink.Message{
		Header: netlink.Header{Length: uint32(16 + len(data)), Type: netlink.HeaderType(typ), Flags: flags, Sequence: seq},
		Data:   data,
	}.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// pktHdr returns an NFQA_PACKET_HDR value (struct nfqnl_msg_packet_hdr).
func pktHdr(id uint32, hwProto uint16, hook uint8) []byte {
	b := binary.BigEndian.AppendUint32(nil, id)
	b = binary.BigEndian.AppendUint16(b, hwProto)
	return append(b, hook)
}

// packetMsg returns an NFQNL_MSG_PACKET as the kernel sends it for queue 7:
// header, some metadata, then the payload.
func packetMsg(tb testing.TB, id uint32, hook uint8, payload []byte) []byte {
	tb.Helper()
	return nlMessage(tb, typePacket, 0, 0, syscall.AF_INET, 7,
		attr{attrPktHdr, pktHdr(id, 0x0800, hook)},
		attr{5 /* NFQA_IFINDEX_INDEV */, binary.BigEndian.AppendUint32(nil, 2)},
		attr{9 /* NFQA_HWADDR */, []byte{0, 6, 0, 0, 1, 2, 3, 4, 5, 6, 0, 0}},
		attr{attrPayload, payload},
	)
}

// markedPacketMsg is packetMsg for a packet with mark (NFQA_MARK, sent by
// the kernel before the payload).
func markedPacketMsg(tb testing.TB, id uint32, hook uint8, mark uint32, payload []byte) []byte {
	tb.Helper()
	return nlMessage(tb, typePacket, 0, 0, syscall.AF_INET, 7,
		attr{attrPktHdr, pktHdr(id, 0x0800, hook)},
		attr{attrMark, binary.BigEndian.AppendUint32(nil, mark)},
		attr{5 /* NFQA_IFINDEX_INDEV */, binary.BigEndian.AppendUint32(nil, 2)},
		attr{attrPayload, payload},
	)
}

// errorMsg returns an NLMSG_ERROR answering seq with errno (0: an ack),
// echoing only the request's header, as with NETLINK_CAP_ACK.
func errorMsg(tb testing.TB, seq uint32, errno syscall.Errno) []byte {
	tb.Helper()
	data := binary.NativeEndian.AppendUint32(nil, uint32(-int32(errno)))
	echo := make([]byte, 16)
	binary.NativeEndian.PutUint32(echo[8:], seq)
	data = append(data, echo...)
	b, err := netlink.Message{
		Header: netlink.Header{Length: uint32(16 + len(data)), Type: netlink.Error, Sequence: seq},
		Data:   data,
	}.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestParsePacket(t *testing.T) {
	ip := []byte{0x45, 0, 0, 20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	body := func(b []byte) []byte { return b[16:] }
	tests := []struct {
		name    string
		body    []byte
		want    Packet
		wantErr bool
	}{
		{
			name: "header, metadata and payload",
			body: body(packetMsg(t, 0xdeadbeef, 3, ip)),
			want: Packet{ID: 0xdeadbeef, Hook: 3, Data: ip},
		},
		{
			name: "with a mark",
			body: body(markedPacketMsg(t, 5, 0, 0x80100001, ip)),
			want: Packet{ID: 5, Hook: 0, Mark: 0x80100001, Data: ip},
		},
		{
			name:    "short mark",
			body:    body(nlMessage(t, typePacket, 0, 0, syscall.AF_INET, 7, attr{attrPktHdr, pktHdr(2, 0x0800, 1)}, attr{attrMark, []byte{0, 1}})),
			wantErr: true,
		},
		{
			name: "payload before header, odd length",
			body: body(nlMessage(t, typePacket, 0, 0, syscall.AF_INET6, 7,
				attr{attrPayload, []byte{0x60, 1, 2}},
				attr{attrPktHdr, pktHdr(1, 0x86dd, 0)})),
			want: Packet{ID: 1, Hook: 0, Data: []byte{0x60, 1, 2}},
		},
		{
			name: "type flag bits ignored",
			body: body(nlMessage(t, typePacket, 0, 0, syscall.AF_INET, 7,
				attr{attrPktHdr | netlink.Nested, pktHdr(9, 0x0800, 4)},
				attr{attrPayload | netlink.NetByteOrder, ip})),
			want: Packet{ID: 9, Hook: 4, Data: ip},
		},
		{
			name: "no payload",
			body: body(nlMessage(t, typePacket, 0, 0, syscall.AF_INET, 7, attr{attrPktHdr, pktHdr(2, 0x0800, 1)})),
			want: Packet{ID: 2, Hook: 1},
		},
		{
			name:    "no packet header",
			body:    body(nlMessage(t, typePacket, 0, 0, syscall.AF_INET, 7, attr{attrPayload, ip})),
			wantErr: true,
		},
		{
			name:    "short packet header",
			body:    body(nlMessage(t, typePacket, 0, 0, syscall.AF_INET, 7, attr{attrPktHdr, []byte{0, 0, 0, 1, 8, 0}})),
			wantErr: true,
		},
		{
			name:    "attribute longer than the message",
			body:    append(body(packetMsg(t, 1, 1, ip))[:4], 0xff, 0, attrPayload, 0, 1, 2, 3, 4),
			wantErr: true,
		},
		{
			name:    "attribute length below its header",
			body:    []byte{2, 0, 0, 7, 3, 0, attrPktHdr, 0},
			wantErr: true,
		},
		{
			name:    "trailing bytes",
			body:    append(body(packetMsg(t, 1, 1, ip)), 1, 2),
			wantErr: true,
		},
		{
			name:    "no nfgenmsg",
			body:    []byte{2, 0},
			wantErr: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parsePacket(tc.body)
			if tc.wantErr {
				if !errors.Is(err, errMalformed) {
					t.Fatalf("parsePacket = %+v, %v; want an error wrapping errMalformed", got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parsePacket: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("parsePacket (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNextMessage(t *testing.T) {
	ack := errorMsg(t, 5, 0)
	pkt := packetMsg(t, 3, 1, []byte{0x45, 1, 2}) // 3-byte payload: padded
	// The same message with its length not counting the final padding,
	// and the padding missing from the datagram.
	unpadded := append([]byte{}, pkt[:len(pkt)-1]...)
	binary.NativeEndian.PutUint32(unpadded, uint32(len(unpadded)))
	type msg struct {
		Type uint16
		Seq  uint32
		Body []byte
	}
	tests := []struct {
		name    string
		b       []byte
		want    []msg
		wantErr bool
	}{
		{
			name: "two messages in one datagram",
			b:    append(append([]byte{}, pkt...), ack...),
			want: []msg{{typePacket, 0, pkt[16:]}, {nlmsgError, 5, ack[16:]}},
		},
		{
			name: "last message unpadded",
			b:    append(append([]byte{}, ack...), unpadded...),
			want: []msg{{nlmsgError, 5, ack[16:]}, {typePacket, 0, unpadded[16:]}},
		},
		{name: "short header", b: ack[:15], wantErr: true},
		{name: "length beyond the datagram", b: pkt[:40], wantErr: true},
		{name: "length below the header", b: append([]byte{15, 0, 0, 0}, ack[4:]...), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []msg
			var err error
			for b := tc.b; len(b) > 0 && err == nil; {
				var h nlHeader
				var body []byte
				h, body, b, err = nextMessage(b)
				if err == nil {
					got = append(got, msg{h.Type, h.Seq, body})
				}
			}
			if tc.wantErr != errors.Is(err, errMalformed) {
				t.Errorf("error = %v, want one wrapping errMalformed: %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseError(t *testing.T) {
	for _, tc := range []struct {
		name string
		want syscall.Errno
	}{
		{"ack", 0},
		{"ENOENT", syscall.ENOENT},
		{"EPERM", syscall.EPERM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseError(errorMsg(t, 1, tc.want)[16:])
			if err != nil || got != tc.want {
				t.Errorf("parseError = %v, %v; want %v, nil", got, err, tc.want)
			}
		})
	}
	if _, err := parseError([]byte{1, 2, 3}); !errors.Is(err, errMalformed) {
		t.Errorf("parseError(3 bytes) = %v, want errMalformed", err)
	}
}

// decodedVerdict is a verdict message as mdlayher/netlink reads it.
type decodedVerdict struct {
	Type     netlink.HeaderType
	Flags    netlink.HeaderFlags
	Seq      uint32
	NfGen    []byte
	Verdict  uint32
	ID       uint32
	Mark     uint32
	HasMark  bool
	Payload  []byte
	HasPload bool
}

func decodeVerdict(tb testing.TB, b []byte) decodedVerdict {
	tb.Helper()
	var m netlink.Message
	if err := m.UnmarshalBinary(b); err != nil {
		tb.Fatalf("unmarshal verdict % x: %v", b, err)
	}
	// The header's length must cover the message exactly, up to padding.
	if l := int(m.Header.Length); l > len(b) || (l+3)&^3 != len(b) {
		tb.Fatalf("header length %d for %d bytes", l, len(b))
	}
	d := decodedVerdict{Type: m.Header.Type, Flags: m.Header.Flags, Seq: m.Header.Sequence, NfGen: m.Data[:4]}
	ad, err := netlink.NewAttributeDecoder(m.Data[4 : int(m.Header.Length)-16])
	if err != nil {
		tb.Fatal(err)
	}
	for ad.Next() {
		switch ad.Type() {
		case attrVerdict:
			v := ad.Bytes()
			d.Verdict, d.ID = binary.BigEndian.Uint32(v), binary.BigEndian.Uint32(v[4:])
		case attrPayload:
			d.Payload, d.HasPload = ad.Bytes(), true
		case attrMark:
			d.Mark, d.HasMark = binary.BigEndian.Uint32(ad.Bytes()), true
		default:
			tb.Errorf("unexpected attribute %d", ad.Type())
		}
	}
	if err := ad.Err(); err != nil {
		tb.Fatal(err)
	}
	return d
}

func TestAppendVerdict(t *testing.T) {
	nfgen := []byte{0, 0, 0x01, 0x02} // AF_UNSPEC, NFNETLINK_V0, queue 258 big-endian
	tests := []struct {
		name    string
		v       Verdict
		mark    uint32
		setMark bool
		payload []byte
		want    decodedVerdict
	}{
		{"accept", Accept, 7, false, nil, decodedVerdict{Verdict: nfAccept}},
		{"drop", Drop, 7, false, nil, decodedVerdict{Verdict: nfDrop}},
		{"drop ignores a payload", Drop, 0, false, []byte{1}, decodedVerdict{Verdict: nfDrop}},
		{"modified, aligned", Accept, 0, false, []byte{1, 2, 3, 4}, decodedVerdict{Verdict: nfAccept, Payload: []byte{1, 2, 3, 4}, HasPload: true}},
		{"modified, padded", Accept, 0, false, []byte{1, 2, 3, 4, 5}, decodedVerdict{Verdict: nfAccept, Payload: []byte{1, 2, 3, 4, 5}, HasPload: true}},
		{"modified, empty", Accept, 0, false, []byte{}, decodedVerdict{Verdict: nfAccept, Payload: []byte{}, HasPload: true}},
		{"marked", AcceptMark, 0x00100001, true, nil, decodedVerdict{Verdict: nfAccept, Mark: 0x00100001, HasMark: true}},
		{"marked and modified", AcceptMark, 0x00100000, true, []byte{1, 2, 3, 4, 5}, decodedVerdict{Verdict: nfAccept, Mark: 0x00100000, HasMark: true, Payload: []byte{1, 2, 3, 4, 5}, HasPload: true}},
		{"accept clearing a mark", Accept, 0, true, nil, decodedVerdict{Verdict: nfAccept, Mark: 0, HasMark: true}},
		{"repeat", Repeat, 0x00200000, true, nil, decodedVerdict{Verdict: nfRepeat, Mark: 0x00200000, HasMark: true}},
		{"repeat ignores a payload", Repeat, 0x00200000, true, []byte{1, 2}, decodedVerdict{Verdict: nfRepeat, Mark: 0x00200000, HasMark: true}},
		{"held and modified", AcceptMarkHold, 0x00300000, true, []byte{1, 2, 3}, decodedVerdict{Verdict: nfAccept, Mark: 0x00300000, HasMark: true, Payload: []byte{1, 2, 3}, HasPload: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.want.Type, tc.want.Flags, tc.want.Seq, tc.want.NfGen, tc.want.ID = typeVerdict, netlink.Request, 0x01020304, nfgen, 0x01020304
			// Appending to a used buffer must leave its start alone.
			prefix := []byte{9, 9, 9, 9}
			b := appendVerdict(append([]byte{}, prefix...), 258, 0x01020304, tc.v, tc.mark, tc.setMark, tc.payload)
			if diff := cmp.Diff(prefix, b[:4]); diff != "" {
				t.Errorf("prefix (-want +got):\n%s", diff)
			}
			got := decodeVerdict(t, b[4:])
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("verdict (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConfigMessage(t *testing.T) {
	b, err := configMessage(1, 300, 8192)
	if err != nil {
		t.Fatal(err)
	}
	var m netlink.Message
	if err := m.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	type config struct {
		Type         netlink.HeaderType
		Flags        netlink.HeaderFlags
		Seq          uint32
		NfGen        []byte
		Attrs        map[uint16][]byte
		CommandFirst bool
	}
	got := config{Type: m.Header.Type, Flags: m.Header.Flags, Seq: m.Header.Sequence, NfGen: m.Data[:4], Attrs: map[uint16][]byte{}}
	ad, err := netlink.NewAttributeDecoder(m.Data[4:])
	if err != nil {
		t.Fatal(err)
	}
	for ad.Next() {
		if len(got.Attrs) == 0 {
			got.CommandFirst = ad.Type() == cfgCmd
		}
		got.Attrs[ad.Type()] = ad.Bytes()
	}
	want := config{
		Type:  typeConfig,
		Flags: netlink.Request | netlink.Acknowledge,
		Seq:   1,
		NfGen: []byte{0, 0, 0x01, 0x2c},
		Attrs: map[uint16][]byte{
			cfgCmd:      {cfgCmdBind, 0, 0, 0},
			cfgParams:   {0, 0, 0xff, 0xff, copyPacket},
			cfgQueueLen: {0, 0, 0x20, 0},
		},
		CommandFirst: true,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config message (-want +got):\n%s", diff)
	}
}

// FuzzParsePacket checks that no input makes the decoder panic and that a
// decoded payload lies within the message.
func FuzzParsePacket(f *testing.F) {
	f.Add(packetMsg(f, 1, 3, []byte{0x45, 0, 0, 20})[16:])
	f.Add(nlMessage(f, typePacket, 0, 0, 2, 7, attr{attrPktHdr, pktHdr(1, 0x0800, 0)})[16:])
	f.Add([]byte{0, 0, 0, 0, 4, 0, 1, 0})
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := parsePacket(body)
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("error %v does not wrap errMalformed", err)
			}
			return
		}
		if len(p.Data) > len(body) {
			t.Fatalf("payload of %d bytes from a %d-byte message", len(p.Data), len(body))
		}
	})
}
