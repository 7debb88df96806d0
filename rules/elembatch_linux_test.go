package rules

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// nlAttr is a decoded netlink attribute: nested ones (NLA_F_NESTED) by
// their children, others by their data.
type nlAttr struct {
	Type     uint16
	Data     []byte   `json:",omitempty"`
	Children []nlAttr `json:",omitempty"`
}

func decodeAttrs(t *testing.T, b []byte) []nlAttr {
	t.Helper()
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		t.Fatalf("attributes: %v", err)
	}
	var out []nlAttr
	for ad.Next() {
		a := nlAttr{Type: ad.Type() | ad.TypeFlags()}
		if a.Type&unix.NLA_F_NESTED != 0 {
			a.Children = decodeAttrs(t, ad.Bytes())
		} else {
			a.Data = ad.Bytes()
		}
		out = append(out, a)
	}
	if err := ad.Err(); err != nil {
		t.Fatalf("attributes: %v", err)
	}
	return out
}

// nlMsg is a netlink message as the golden comparison sees it: sequence
// numbers, port IDs and lengths left out (the socket's), attributes
// decoded.
type nlMsg struct {
	Type   netlink.HeaderType
	Flags  netlink.HeaderFlags
	NFGen  []byte // struct nfgenmsg
	Attrs  []nlAttr
	Length int // the message's own length field against its bytes: 0 when they agree
}

func decodeMsgs(t *testing.T, msgs []netlink.Message) []nlMsg {
	t.Helper()
	var out []nlMsg
	for _, m := range msgs {
		if len(m.Data) < nfgenLen {
			t.Fatalf("message %v: %d bytes", m.Header, len(m.Data))
		}
		out = append(out, nlMsg{Type: m.Header.Type, Flags: m.Header.Flags, NFGen: m.Data[:nfgenLen], Attrs: decodeAttrs(t, m.Data[nfgenLen:])})
	}
	return out
}

// splitMsgs splits a datagram into its netlink messages; Length is set
// where a header's length is not its message's.
func splitMsgs(t *testing.T, b []byte) []netlink.Message {
	t.Helper()
	var msgs []netlink.Message
	for len(b) > 0 {
		if len(b) < nlmsgHdrLen {
			t.Fatalf("%d bytes left after %d messages", len(b), len(msgs))
		}
		l := int(binary.NativeEndian.Uint32(b))
		if l < nlmsgHdrLen || l > len(b) {
			t.Fatalf("message %d: length %d of %d bytes", len(msgs), l, len(b))
		}
		var m netlink.Message
		if err := m.UnmarshalBinary(b[:l]); err != nil {
			t.Fatalf("message %d: %v", len(msgs), err)
		}
		msgs = append(msgs, m)
		b = b[align4(l):]
	}
	return msgs
}

// elemCall is one add or delete of a transaction.
type elemCall struct {
	del   bool
	set   *nftables.Set
	elems []nftables.SetElement
}

// putCalls hands each of calls to add or del, in order, and stops at the
// first error: the same calls for google/nftables' Conn and an elemBatch.
func putCalls(calls []elemCall, add, del func(*nftables.Set, []nftables.SetElement) error) error {
	for _, c := range calls {
		op := add
		if c.del {
			op = del
		}
		if err := op(c.set, c.elems); err != nil {
			return err
		}
	}
	return nil
}

// nftablesBatch is what google/nftables sends for calls, captured through
// its test dial.
func nftablesBatch(t *testing.T, calls []elemCall) []netlink.Message {
	t.Helper()
	var sent []netlink.Message
	conn, err := nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		if req == nil {
			// The acknowledgement it reads for each message.
			return []netlink.Message{{Header: netlink.Header{Type: netlink.Error}, Data: make([]byte, 4)}}, nil
		}
		sent = append(sent, req...)
		return nil, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := putCalls(calls, conn.SetAddElements, conn.SetDeleteElements); err != nil {
		t.Fatal(err)
	}
	if err := conn.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	return sent
}

// fakeKernel is an elemSocket that answers transactions as nfnetlink
// does: an error (capped, with the extended ack's offset of the element at
// fault) for every element message that deletes a key in missing, then,
// unless its own message failed, the last message's acknowledgement. It
// keeps what was sent.
type fakeKernel struct {
	missing [][]byte
	sent    [][]byte
	replies [][]byte
	recvs   int
	// stale is a reply queued before the next transaction's.
	stale []byte
}

func (f *fakeKernel) send(b []byte) error {
	f.sent = append(f.sent, bytes.Clone(b))
	if f.stale != nil {
		f.replies = append(f.replies, f.stale)
		f.stale = nil
	}
	var lastSeq uint32
	var lastErr bool
	for len(b) >= nlmsgHdrLen {
		l := int(binary.NativeEndian.Uint32(b))
		msg := b[:l]
		b = b[align4(l):]
		typ := binary.NativeEndian.Uint16(msg[4:])
		flags := binary.NativeEndian.Uint16(msg[6:])
		seq := binary.NativeEndian.Uint32(msg[8:])
		if typ == unix.NFNL_MSG_BATCH_BEGIN || typ == unix.NFNL_MSG_BATCH_END {
			continue
		}
		if offs, ok := f.fault(msg); ok {
			f.replies = append(f.replies, fakeReply(msg, -int32(unix.ENOENT), offs))
			lastErr = true
		} else {
			lastErr = false
		}
		if flags&unix.NLM_F_ACK != 0 {
			if lastSeq != 0 {
				return fmt.Errorf("two messages ask for an acknowledgement")
			}
			lastSeq = seq
			if !lastErr {
				f.replies = append(f.replies, fakeReply(msg, 0, 0))
			}
		}
	}
	if lastSeq == 0 {
		return fmt.Errorf("no message asks for an acknowledgement")
	}
	return nil
}

// fault finds the element of a delete in msg whose key is missing: its
// attribute's offset in msg.
func (f *fakeKernel) fault(msg []byte) (uint32, bool) {
	if binary.NativeEndian.Uint16(msg[4:]) != unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_DELSETELEM {
		return 0, false
	}
	ad, _ := netlink.NewAttributeDecoder(msg[nlmsgHdrLen+nfgenLen:])
	off := nlmsgHdrLen + nfgenLen
	for ad.Next() {
		l := nlaHdrLen + len(ad.Bytes())
		if ad.Type() == unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			el := off + nlaHdrLen
			list := ad.Bytes()
			for len(list) > 0 {
				n := int(binary.NativeEndian.Uint16(list))
				for _, k := range f.missing {
					if bytes.Contains(list[:n], k) {
						return uint32(el), true
					}
				}
				el += align4(n)
				list = list[align4(n):]
			}
		}
		off += align4(l)
	}
	return 0, false
}

// fakeReply is the kernel's NLMSG_ERROR for req: capped, with the offset of
// the attribute at fault when code is an error.
func fakeReply(req []byte, code int32, offs uint32) []byte {
	b := binary.NativeEndian.AppendUint32(nil, 0)
	flags := uint16(unix.NLM_F_CAPPED)
	if code != 0 {
		flags |= unix.NLM_F_ACK_TLVS
	}
	b = binary.NativeEndian.AppendUint16(b, unix.NLMSG_ERROR)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = append(b, req[8:16]...) // seq, pid
	b = binary.NativeEndian.AppendUint32(b, uint32(code))
	b = append(b, req[:nlmsgHdrLen]...)
	if code != 0 {
		b = binary.NativeEndian.AppendUint16(b, 8)
		b = binary.NativeEndian.AppendUint16(b, unix.NLMSGERR_ATTR_OFFS)
		b = binary.NativeEndian.AppendUint32(b, offs)
	}
	binary.NativeEndian.PutUint32(b, uint32(len(b)))
	return b
}

func (f *fakeKernel) recv(b []byte) (int, error) {
	f.recvs++
	if len(f.replies) == 0 {
		return 0, errors.New("fake kernel: would block forever (no reply queued)")
	}
	n := copy(b, f.replies[0])
	f.replies = f.replies[1:]
	return n, nil
}

func (f *fakeKernel) close() error { return nil }

// testSets are the sets of the tables of both families, with batch IDs as
// an Install gives them.
func testSets() (v4, v6 *tableObjs) {
	v4, v6 = newTableObjs("ftpct", familyIPv4), newTableObjs("ftpct", familyIPv6)
	id := uint32(7)
	for _, o := range []*tableObjs{v4, v6} {
		for _, s := range o.kept() {
			s.ID = id
			id++
		}
	}
	return v4, v6
}

// TestElemBatchEncoding: the writer sends what google/nftables sends for
// the same adds and deletes, attribute by attribute, but asks for an
// acknowledgement of the last element message only.
func TestElemBatchEncoding(t *testing.T) {
	v4, v6 := testSets()
	hole4 := Hole{Peer: netip.MustParseAddr("192.0.2.7"), Addr: netip.MustParseAddr("198.51.100.1"), Port: 2000,
		To: netip.MustParseAddrPort("10.1.2.3:2000"), Timeout: 1500 * time.Millisecond,
		Owner: Flow{Src: netip.MustParseAddrPort("10.1.2.3:40000"), Dst: netip.MustParseAddrPort("192.0.2.7:21")}}
	hole6 := Hole{Peer: netip.MustParseAddr("2001:db8::7"), Addr: netip.MustParseAddr("2001:db8:1::1"), Port: 50123,
		To: netip.MustParseAddrPort("[fd00::3]:50123"), Timeout: time.Minute,
		Owner: Flow{Src: netip.MustParseAddrPort("[fd00::3]:40000"), Dst: netip.MustParseAddrPort("[2001:db8::7]:21")}}
	flow4 := Flow{Src: netip.MustParseAddrPort("10.0.0.1:40000"), Dst: netip.MustParseAddrPort("10.0.0.2:21")}
	flow6 := Flow{Src: netip.MustParseAddrPort("[fd00::1]:40000"), Dst: netip.MustParseAddrPort("[fd00::2]:21")}
	expectEl := func(h Hole) nftables.SetElement {
		return nftables.SetElement{Key: h.expectKey(), Timeout: h.timeoutDuration(), Comment: h.Owner.String()}
	}
	xlateEl := func(h Hole) nftables.SetElement {
		return nftables.SetElement{Key: h.expectKey(), Val: h.xlateValue(), Timeout: h.timeoutDuration()}
	}
	key := func(k []byte) nftables.SetElement { return nftables.SetElement{Key: k} }
	other := hole4
	other.Port, other.To, other.Owner = 2001, netip.MustParseAddrPort("10.1.2.3:2001"), Flow{}
	tests := []struct {
		name  string
		calls []elemCall
	}{
		{name: "expect set, timeout and comment, IPv4", calls: []elemCall{{set: v4.expect, elems: []nftables.SetElement{expectEl(hole4)}}}},
		{name: "expect set, no comment", calls: []elemCall{{set: v4.expect, elems: []nftables.SetElement{expectEl(other)}}}},
		{name: "expect set, no timeout", calls: []elemCall{{set: v4.expect, elems: []nftables.SetElement{key(hole4.expectKey())}}}},
		{name: "xlate map with data, IPv4", calls: []elemCall{{set: v4.xlate, elems: []nftables.SetElement{xlateEl(hole4), xlateEl(other)}}}},
		{name: "xlate map with data, IPv6", calls: []elemCall{{set: v6.xlate, elems: []nftables.SetElement{xlateEl(hole6)}}}},
		{name: "expect set, IPv6", calls: []elemCall{{set: v6.expect, elems: []nftables.SetElement{expectEl(hole6)}}}},
		{name: "hold set, IPv4 and IPv6", calls: []elemCall{
			{set: v4.hold, elems: []nftables.SetElement{key(flow4.holdKey()), key(Flow{Src: flow4.Dst, Dst: flow4.Src}.holdKey())}},
			{set: v6.hold, elems: []nftables.SetElement{key(flow6.holdKey())}},
		}},
		{name: "deletes", calls: []elemCall{
			{del: true, set: v4.expect, elems: []nftables.SetElement{key(hole4.expectKey()), key(other.expectKey())}},
			{del: true, set: v6.xlate, elems: []nftables.SetElement{key(hole6.expectKey())}},
			{del: true, set: v4.hold, elems: []nftables.SetElement{key(flow4.holdKey())}},
		}},
		{name: "a pass: deletes, adds, deletes", calls: []elemCall{
			{del: true, set: v4.expect, elems: []nftables.SetElement{key(other.expectKey())}},
			{set: v4.xlate, elems: []nftables.SetElement{xlateEl(hole4)}},
			{set: v4.expect, elems: []nftables.SetElement{expectEl(hole4)}},
			{set: v4.hold, elems: []nftables.SetElement{key(flow4.holdKey())}},
			{del: true, set: v4.expect, elems: []nftables.SetElement{key(other.expectKey())}},
			{del: true, set: v4.xlate, elems: []nftables.SetElement{key(other.expectKey())}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := decodeMsgs(t, nftablesBatch(t, tt.calls))
			// The one difference: only the last element message asks
			// for an acknowledgement.
			for i := 1; i < len(want)-2; i++ {
				want[i].Flags &^= netlink.Acknowledge
			}
			fk := &fakeKernel{}
			b := newElemBatch(fk)
			if err := putCalls(tt.calls, b.add, b.del); err != nil {
				t.Fatal(err)
			}
			if err := b.commit(); err != nil {
				t.Fatalf("commit: %v", err)
			}
			if len(fk.sent) != 1 {
				t.Fatalf("%d datagrams sent, want 1", len(fk.sent))
			}
			got := decodeMsgs(t, splitMsgs(t, fk.sent[0]))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("messages (-google/nftables +elemBatch):\n%s", diff)
			}
			if fk.recvs != 1 {
				t.Errorf("%d reads, want 1 (the last message's acknowledgement)", fk.recvs)
			}
		})
	}
}

// TestElemBatchSplit: a list too long for one attribute (16-bit length)
// goes in several messages of the same set, in order.
func TestElemBatchSplit(t *testing.T) {
	v4, _ := testSets()
	var elems []nftables.SetElement
	for i := range 3000 {
		h := Hole{Peer: netip.MustParseAddr("192.0.2.7"), Addr: netip.MustParseAddr("198.51.100.1"), Port: uint16(1024 + i), Timeout: time.Minute,
			Owner: Flow{Src: netip.MustParseAddrPort("10.1.2.3:40000"), Dst: netip.MustParseAddrPort("192.0.2.7:21")}}
		elems = append(elems, nftables.SetElement{Key: h.expectKey(), Timeout: h.timeoutDuration(), Comment: h.Owner.String()})
	}
	fk := &fakeKernel{}
	b := newElemBatch(fk)
	if err := b.add(v4.expect, elems); err != nil {
		t.Fatal(err)
	}
	if err := b.commit(); err != nil {
		t.Fatal(err)
	}
	msgs := splitMsgs(t, fk.sent[0])
	if len(msgs) < 4 {
		t.Fatalf("%d messages for %d elements, want the list split", len(msgs), len(elems))
	}
	var keys [][]byte
	for i, m := range msgs[1 : len(msgs)-1] {
		for _, a := range decodeAttrs(t, m.Data[nfgenLen:]) {
			if a.Type&^unix.NLA_F_NESTED != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
				continue
			}
			for _, el := range a.Children {
				keys = append(keys, el.Children[0].Children[0].Data)
			}
		}
		if ack := m.Header.Flags&netlink.Acknowledge != 0; ack != (i == len(msgs)-3) {
			t.Errorf("message %d: acknowledgement asked %v", i, ack)
		}
	}
	var want [][]byte
	for _, e := range elems {
		want = append(want, e.Key)
	}
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
}

// TestElemBatchErrors: a rejected transaction's errors name the message's
// set and the element at fault; element lists the writer cannot send are
// refused before anything is sent.
func TestElemBatchErrors(t *testing.T) {
	v4, _ := testSets()
	key := func(port uint16) []byte {
		return Hole{Peer: netip.MustParseAddr("192.0.2.7"), Addr: netip.MustParseAddr("198.51.100.1"), Port: port}.expectKey()
	}
	els := func(ports ...uint16) []nftables.SetElement {
		var out []nftables.SetElement
		for _, p := range ports {
			out = append(out, nftables.SetElement{Key: key(p)})
		}
		return out
	}
	tests := []struct {
		name    string
		missing []uint16
		stale   bool
		calls   []elemCall
		want    []string // the errors, in order
		wantErr error
	}{
		{
			name:  "committed",
			calls: []elemCall{{set: v4.expect, elems: els(1)}, {del: true, set: v4.expect, elems: els(2)}},
		},
		{
			name:    "the middle message fails: its element named",
			missing: []uint16{3},
			calls:   []elemCall{{set: v4.expect, elems: els(1)}, {del: true, set: v4.expect, elems: els(2, 3)}, {set: v4.xlate, elems: els(4)}},
			want:    []string{"delete from expect, element 1 (key " + fmt.Sprintf("%x", key(3)) + "): no such file or directory"},
			wantErr: unix.ENOENT,
		},
		{
			name:    "two messages fail, the last one of them",
			missing: []uint16{3, 5},
			calls:   []elemCall{{del: true, set: v4.expect, elems: els(3)}, {set: v4.xlate, elems: els(4)}, {del: true, set: v4.xlate, elems: els(6, 7, 5)}},
			want: []string{
				"delete from expect, element 0 (key " + fmt.Sprintf("%x", key(3)) + "): no such file or directory",
				"delete from xlate, element 2 (key " + fmt.Sprintf("%x", key(5)) + "): no such file or directory",
			},
			wantErr: unix.ENOENT,
		},
		{
			name:  "a stale reply of an earlier transaction is skipped",
			stale: true,
			calls: []elemCall{{set: v4.expect, elems: els(1)}},
		},
		{
			name:    "an anonymous set",
			calls:   []elemCall{{set: &nftables.Set{Name: "__set0", Anonymous: true, Table: v4.table}, elems: els(1)}},
			wantErr: ErrInvalidElement,
		},
		{
			name:    "an interval element",
			calls:   []elemCall{{set: v4.expect, elems: []nftables.SetElement{{Key: key(1), IntervalEnd: true}}}},
			wantErr: ErrInvalidElement,
		},
		{
			name:    "a key too long",
			calls:   []elemCall{{set: v4.expect, elems: []nftables.SetElement{{Key: make([]byte, 65)}}}},
			wantErr: ErrInvalidElement,
		},
		{
			name:    "a comment too long",
			calls:   []elemCall{{set: v4.expect, elems: []nftables.SetElement{{Key: key(1), Comment: strings.Repeat("x", 255)}}}},
			wantErr: ErrInvalidElement,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fk := &fakeKernel{}
			for _, p := range tt.missing {
				fk.missing = append(fk.missing, key(p))
			}
			b := newElemBatch(fk)
			if tt.stale {
				// An acknowledgement of sequence number 1 that an
				// earlier transaction left unread.
				b.seq = 100
				req := make([]byte, nlmsgHdrLen)
				binary.NativeEndian.PutUint32(req[8:], 1)
				fk.stale = fakeReply(req, -int32(unix.EEXIST), 0)
			}
			err := putCalls(tt.calls, b.add, b.del)
			if err != nil {
				b.discard()
				if len(fk.sent) != 0 {
					t.Errorf("sent a transaction after a refused element")
				}
			} else {
				err = b.commit()
			}
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			var got []string
			var one *elemError
			if errors.As(err, &one) {
				var errs []error
				if j, ok := err.(interface{ Unwrap() []error }); ok {
					errs = j.Unwrap()
				} else {
					errs = []error{err}
				}
				for _, e := range errs {
					got = append(got, e.Error())
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if len(fk.replies) != 0 {
				t.Errorf("%d replies left unread", len(fk.replies))
			}
		})
	}
}

// TestElemBatchAllocs: a transaction allocates nothing once its buffers
// have grown (the committer's steady state).
func TestElemBatchAllocs(t *testing.T) {
	v4, v6 := testSets()
	b := newElemBatch(nopKernel{})
	pass := benchPass(v4, v6, 18)
	run := func() {
		if err := putCalls(pass, b.add, b.del); err != nil {
			t.Fatal(err)
		}
		if err := b.commit(); err != nil {
			t.Fatal(err)
		}
	}
	run()
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Errorf("%v allocations per transaction, want 0", n)
	}
}

// nopKernel acknowledges every transaction, allocating nothing.
type nopKernel struct{}

var nopAck = make([]byte, nlmsgHdrLen+nlmsgErrLen)

func (nopKernel) send(b []byte) error {
	// The last element message asks for the acknowledgement: the one
	// before the batch end (20 bytes).
	end := len(b) - nlmsgHdrLen - nfgenLen
	for off := 0; off < end; {
		l := int(binary.NativeEndian.Uint32(b[off:]))
		if off+align4(l) == end {
			binary.NativeEndian.PutUint32(nopAck, uint32(len(nopAck)))
			binary.NativeEndian.PutUint16(nopAck[4:], unix.NLMSG_ERROR)
			copy(nopAck[8:16], b[off+8:off+16])
		}
		off += align4(l)
	}
	return nil
}

func (nopKernel) recv(b []byte) (int, error) { return copy(b, nopAck), nil }
func (nopKernel) close() error               { return nil }

// benchPass is a storm pass of n announcements, as the committer sends
// it: the evicted holes' deletes, the new holes (xlate map and expect set),
// half of them IPv6.
func benchPass(v4, v6 *tableObjs, n int) []elemCall {
	var calls []elemCall
	put := func(del bool, s *nftables.Set, e nftables.SetElement) {
		for i := range calls {
			if calls[i].del == del && calls[i].set == s {
				calls[i].elems = append(calls[i].elems, e)
				return
			}
		}
		calls = append(calls, elemCall{del: del, set: s, elems: []nftables.SetElement{e}})
	}
	for i := range n {
		o, peer, addr, to := v4, "192.0.2.7", "198.51.100.1", "10.1.2.3"
		if i%2 == 1 {
			o, peer, addr, to = v6, "2001:db8::7", "2001:db8:1::1", "fd00::3"
		}
		port := uint16(1024 + i)
		h := Hole{Peer: netip.MustParseAddr(peer), Addr: netip.MustParseAddr(addr), Port: port,
			To: netip.AddrPortFrom(netip.MustParseAddr(to), port), Timeout: 5 * time.Second,
			Owner: Flow{Src: netip.AddrPortFrom(netip.MustParseAddr(to), 40000), Dst: netip.AddrPortFrom(netip.MustParseAddr(peer), 21)}}
		put(false, o.xlate, nftables.SetElement{Key: h.expectKey(), Val: h.xlateValue(), Timeout: h.timeoutDuration()})
		put(false, o.expect, nftables.SetElement{Key: h.expectKey(), Timeout: h.timeoutDuration(), Comment: h.Owner.String()})
		h.Port += 10000
		put(true, o.expect, nftables.SetElement{Key: h.expectKey()})
		put(true, o.xlate, nftables.SetElement{Key: h.expectKey()})
	}
	return calls
}

// BenchmarkElemBatchEncode: building one storm pass's transaction and
// reading its acknowledgement (no kernel).
func BenchmarkElemBatchEncode(b *testing.B) {
	v4, v6 := testSets()
	eb := newElemBatch(nopKernel{})
	pass := benchPass(v4, v6, 18)
	b.ReportAllocs()
	for b.Loop() {
		if err := putCalls(pass, eb.add, eb.del); err != nil {
			b.Fatal(err)
		}
		if err := eb.commit(); err != nil {
			b.Fatal(err)
		}
	}
}
