package rewrite

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/ftpct/ftpct/seqnum"

	"github.com/google/go-cmp/cmp"
)

func decoded(t testing.TB, b []byte) *Packet {
	t.Helper()
	var p Packet
	if err := Decode(b, &p); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return &p
}

func adjWith(t testing.TB, recs ...Record) SeqAdj {
	t.Helper()
	var a SeqAdj
	for _, r := range recs {
		if err := a.Record(r.Pos, r.Delta); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// burst returns n pipelined "PORT 10,0,1,2,156,65\r\n" lines and the edits that
// replace each address with 198,51,100,1 (4 bytes longer), with the records
// they make when the segment starts at seq 1000.
func burst(n int) (payload string, edits []Splice, recs []Record) {
	const line = "PORT 10,0,1,2,156,65\r\n"
	for i := range n {
		off := i*len(line) + 5
		edits = append(edits, Splice{Off: off, End: off + 8, Repl: []byte("198,51,100,1")})
		recs = append(recs, Record{Pos: seqnum.Value(1000 + off), Delta: 4})
	}
	return strings.Repeat(line, n), edits, recs
}

func TestRewriteErrors(t *testing.T) {
	port := buildPacket(t, v4spec("PORT 10,0,1,2,156,65\r\n")) // payload: 22 bytes, seq 1000
	big4 := buildPacket(t, v4spec(strings.Repeat("x", 0xffff-40-2)))
	big6 := buildPacket(t, v6spec(strings.Repeat("x", 0xffff-20-2)))
	tests := []struct {
		name    string
		pkt     []byte
		edits   []Splice
		this    SeqAdj
		nilThis bool
		want    error
	}{
		{name: "edit past payload", pkt: port, edits: []Splice{{Off: 20, End: 23}}, want: ErrSplice},
		{name: "edit end before off", pkt: port, edits: []Splice{{Off: 5, End: 4}}, want: ErrSplice},
		{name: "negative offset", pkt: port, edits: []Splice{{Off: -1, End: 2}}, want: ErrSplice},
		{name: "overlapping edits", pkt: port, edits: []Splice{{Off: 5, End: 10, Repl: []byte("a")}, {Off: 9, End: 12}}, want: ErrSplice},
		{name: "unsorted edits", pkt: port, edits: []Splice{{Off: 10, End: 12}, {Off: 5, End: 6}}, want: ErrSplice},
		{name: "two edits at one offset", pkt: port, edits: []Splice{{Off: 5, End: 5, Repl: []byte("a")}, {Off: 5, End: 6}}, want: ErrSplice},
		{name: "ipv4 grows past 65535", pkt: big4, edits: []Splice{{Off: 0, End: 1, Repl: []byte("abcd")}}, want: ErrTooBig},
		{name: "ipv6 grows past 65535", pkt: big6, edits: []Splice{{Off: 0, End: 1, Repl: []byte("abcd")}}, want: ErrTooBig},
		{name: "resize without SeqMap", pkt: port, nilThis: true, edits: []Splice{{Off: 5, End: 13, Repl: []byte("198,51,100,1")}}, want: ErrNoSeqMap},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := decoded(t, tt.pkt)
			this := &tt.this
			if tt.nilThis {
				this = nil
			}
			before := tt.this
			dst := make([]byte, 0, 8)
			out, changed, err := rewriteRec(dst, tt.pkt, p, tt.edits, this, nil)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Rewrite err = %v, want %v", err, tt.want)
			}
			if changed || len(out) != 0 {
				t.Errorf("on error: changed=%v, %d bytes", changed, len(out))
			}
			if diff := cmp.Diff(before.Records(), tt.this.Records()); diff != "" {
				t.Errorf("records changed on error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRewriteBoundaryFits(t *testing.T) {
	tests := []struct {
		name string
		spec tcpSpec
	}{
		{name: "ipv4 grows to exactly 65535", spec: v4spec(strings.Repeat("x", 0xffff-40-3))},
		{name: "ipv6 grows to payload length exactly 65535", spec: v6spec(strings.Repeat("x", 0xffff-20-3))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := buildPacket(t, tt.spec)
			p := decoded(t, b)
			var this SeqAdj
			out, _, err := rewriteRec(nil, b, p, []Splice{{Off: 0, End: 1, Repl: []byte("abcd")}}, &this, nil)
			if err != nil {
				t.Fatalf("Rewrite: %v", err)
			}
			checkWithGopacket(t, out, p.V6)
		})
	}
}

func TestRewriteUnchanged(t *testing.T) {
	port := buildPacket(t, v4spec("PORT 10,0,1,2,156,65\r\n"))
	noACK := v4spec("")
	noACK.flags = FlagSYN
	noACK.ack = 0x7777
	syn := buildPacket(t, noACK)
	tests := []struct {
		name        string
		pkt         []byte
		edits       []Splice
		this, other SeqAdj
	}{
		{name: "no edits no offsets", pkt: port},
		{name: "edit with identical bytes", pkt: port, edits: []Splice{{Off: 5, End: 13, Repl: []byte("10,0,1,2")}}},
		{name: "empty edit", pkt: port, edits: []Splice{{Off: 3, End: 3}}},
		{name: "records after the segment start", pkt: port, this: adjWith(t, Record{Pos: 1000, Delta: 4})},
		{name: "ack before peer's record", pkt: port, other: adjWith(t, Record{Pos: 5000, Delta: 4})},
		{name: "ack ignored without ACK flag", pkt: syn, other: adjWith(t, Record{Pos: 1, Delta: 4})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := decoded(t, tt.pkt)
			dst := bytes.Repeat([]byte{0xaa}, 128)[:0]
			out, changed, err := rewriteRec(dst, tt.pkt, p, tt.edits, &tt.this, &tt.other)
			if err != nil {
				t.Fatal(err)
			}
			if changed || len(out) != 0 {
				t.Errorf("changed=%v len=%d, want unchanged", changed, len(out))
			}
			if !bytes.Equal(dst[:128], bytes.Repeat([]byte{0xaa}, 128)) {
				t.Error("dst was written although nothing changed")
			}
		})
	}
}

func TestRewriteCases(t *testing.T) {
	syn := v4spec("hello")
	syn.flags = FlagSYN | FlagPSH // TCP Fast Open style: data starts at seq+1
	trailing := v4spec("PORT 10,0,1,2,156,65\r\n")
	trailing.trailing = 5
	routed := v6spec("EPRT |2|fd00::2|40001|\r\n")
	// More growing edits in one segment than the kernel keeps, after an
	// earlier record: the segment's own seq is shifted by the earlier one only.
	many, manyEdits, manyRecs := burst(MaxRecords - 1)
	manyWant := strings.ReplaceAll(many, "10,0,1,2", "198,51,100,1")
	tests := []struct {
		name      string
		pkt       []byte
		edits     []Splice
		this      SeqAdj
		wantData  string
		wantSeq   seqnum.Value
		wantRecs  []Record
		wantValid bool // expected TCP checksum validity of the output
	}{
		{
			name: "two edits in one segment", pkt: buildPacket(t, v4spec("PORT 10,0,1,2,156,65\r\n")),
			edits:    []Splice{{Off: 5, End: 13, Repl: []byte("198,51,100,1")}, {Off: 14, End: 20, Repl: []byte("4,1")}},
			wantData: "PORT 198,51,100,1,4,1\r\n", wantSeq: 1000,
			wantRecs: []Record{{1005, 4}, {1014, -3}}, wantValid: true,
		},
		{
			name: "adjacent insert and delete", pkt: buildPacket(t, v4spec("abcdef")),
			edits:    []Splice{{Off: 0, End: 0, Repl: []byte("XY")}, {Off: 1, End: 3}},
			wantData: "XYadef", wantSeq: 1000,
			wantRecs: []Record{{1000, 2}, {1001, -2}}, wantValid: true,
		},
		{
			name: "MaxRecords-1 growing edits in one segment", pkt: buildPacket(t, v4spec(many)),
			this: adjWith(t, Record{Pos: 900, Delta: 3}), edits: manyEdits,
			wantData: manyWant, wantSeq: 1003, wantRecs: append([]Record{{900, 3}}, manyRecs...), wantValid: true,
		},
		{
			name: "same-length edit needs no record", pkt: buildPacket(t, v4spec("PORT 10,0,1,2,156,65\r\n")),
			edits:    []Splice{{Off: 5, End: 13, Repl: []byte("10,0,9,9")}},
			wantData: "PORT 10,0,9,9,156,65\r\n", wantSeq: 1000, wantValid: true,
		},
		{
			name: "SYN with data records after the SYN", pkt: buildPacket(t, syn),
			edits:    []Splice{{Off: 0, End: 5, Repl: []byte("hi")}},
			wantData: "hi", wantSeq: 1000, wantRecs: []Record{{1001, -3}}, wantValid: true,
		},
		{
			name: "trailing bytes are dropped", pkt: buildPacket(t, trailing),
			edits:    []Splice{{Off: 5, End: 13, Repl: []byte("198,51,100,1")}},
			wantData: "PORT 198,51,100,1,156,65\r\n", wantSeq: 1000, wantRecs: []Record{{1005, 4}}, wantValid: true,
		},
		{
			name: "seq shifted by earlier records and folded base", pkt: buildPacket(t, v4spec("NOOP\r\n")),
			this:     adjWith(t, Record{Pos: 900, Delta: 4}, Record{Pos: 950, Delta: -1}),
			wantData: "NOOP\r\n", wantSeq: 1003, wantRecs: []Record{{900, 4}, {950, -1}}, wantValid: true,
		},
		{
			name: "corrupt input checksum stays corrupt", pkt: func() []byte {
				s := v4spec("PORT 10,0,1,2,156,65\r\n")
				s.corruptChecksum = true
				return buildPacket(t, s)
			}(),
			edits:    []Splice{{Off: 5, End: 13, Repl: []byte("198,51,100,1")}},
			wantData: "PORT 198,51,100,1,156,65\r\n", wantSeq: 1000, wantRecs: []Record{{1005, 4}}, wantValid: false,
		},
		{
			name: "ipv6 EPRT grows by 4", pkt: buildPacket(t, routed),
			edits:    []Splice{{Off: 8, End: 15, Repl: []byte("2001:db8::1")}},
			wantData: "EPRT |2|2001:db8::1|40001|\r\n", wantSeq: 1000, wantRecs: []Record{{1008, 4}}, wantValid: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := decoded(t, tt.pkt)
			out, changed, err := rewriteRec(make([]byte, 0, 2048), tt.pkt, p, tt.edits, &tt.this, nil)
			if err != nil || !changed {
				t.Fatalf("Rewrite: changed=%v err=%v", changed, err)
			}
			q := decoded(t, out)
			type view struct {
				Data  string
				Seq   seqnum.Value
				Recs  []Record
				Valid bool
				Len   int
			}
			want := view{Data: tt.wantData, Seq: tt.wantSeq, Recs: tt.wantRecs, Valid: tt.wantValid, Len: len(out)}
			got := view{Data: string(q.Payload(out)), Seq: q.Seq, Recs: tt.this.Records(), Valid: refTCPValid(out, q), Len: q.Len}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if refSum(out[:q.IPHeaderLen]) != 0xffff && !q.V6 {
				t.Error("IPv4 header checksum invalid")
			}
		})
	}
}

// TestRewriteRoutingHeaderChecksum: with an IPv6 routing header the pseudo-header uses the
// final destination, not the IPv6 header's. Rewrite carries the checksum over, so it stays
// valid for the final destination.
func TestRewriteRoutingHeaderChecksum(t *testing.T) {
	final := netip.MustParseAddr("2001:db8::21")
	hop := netip.MustParseAddr("2001:db8::ffff")
	b := buildPacket(t, v6spec("EPRT |2|fd00::2|40001|\r\n")) // checksum computed for final
	// Type 0 routing header, one segment left, carrying the final destination.
	rh := append([]byte{protoTCP, 2, 0, 1, 0, 0, 0, 0}, final.AsSlice()...)
	b = append(append(append([]byte(nil), b[:40]...), rh...), b[40:]...)
	b[6] = protoRouting
	b[4], b[5] = byte((len(b)-40)>>8), byte(len(b)-40)
	copy(b[24:40], hop.AsSlice())
	p := decoded(t, b)
	var this SeqAdj
	out, _, err := rewriteRec(nil, b, p, []Splice{{Off: 8, End: 15, Repl: []byte("2001:db8::1")}}, &this, nil)
	if err != nil {
		t.Fatal(err)
	}
	q := decoded(t, out)
	withFinal := append([]byte(nil), out...)
	copy(withFinal[24:40], final.AsSlice())
	if !refTCPValid(withFinal, q) {
		t.Error("TCP checksum not valid for the final destination")
	}
}

func TestRewriteSmallDstAllocates(t *testing.T) {
	b := buildPacket(t, v4spec("PORT 10,0,1,2,156,65\r\n"))
	p := decoded(t, b)
	var this SeqAdj
	small := make([]byte, 3, 10)
	out, _, err := rewriteRec(small, b, p, []Splice{{Off: 5, End: 13, Repl: []byte("198,51,100,1")}}, &this, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(b)+4 {
		t.Errorf("len(out) = %d, want %d", len(out), len(b)+4)
	}
	checkWithGopacket(t, out, false)
}

func TestAllocs(t *testing.T) {
	spec := v4spec("PORT 10,0,1,2,156,65\r\n")
	spec.timestamps = true
	b := buildPacket(t, spec)
	ackSpec := v6spec("")
	ackSpec.sack = []SACKBlock{{1030, 1040}}
	ack := buildPacket(t, ackSpec)
	edits := []Splice{{Off: 5, End: 13, Repl: []byte("198,51,100,1")}}
	dst := make([]byte, 0, 256)
	peer := adjWith(t, Record{Pos: 1005, Delta: 4})
	var this, other SeqAdj
	var p Packet
	tests := []struct {
		name string
		f    func()
	}{
		{name: "Decode", f: func() { _ = Decode(b, &p) }},
		{name: "Decode ipv6", f: func() { _ = Decode(ack, &p) }},
		{name: "Rewrite PORT", f: func() {
			_ = Decode(b, &p)
			_, _, _ = rewriteRec(dst, b, &p, edits, &this, &other)
		}},
		{name: "Rewrite ack with SACK", f: func() {
			_ = Decode(ack, &p)
			_, _, _ = rewriteRec(dst, ack, &p, nil, &other, &peer)
		}},
		{name: "ValidTCPChecksum", f: func() { _ = ValidTCPChecksum(b, &p) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(1000, tt.f); n != 0 {
				t.Errorf("%v allocations per run, want 0", n)
			}
		})
	}
	// The runs above really rewrote.
	if err := Decode(ack, &p); err != nil {
		t.Fatal(err)
	}
	out, changed, err := rewriteRec(dst, ack, &p, nil, &other, &peer)
	if err != nil || !changed || len(out) == 0 {
		t.Fatalf("ack rewrite: changed=%v err=%v", changed, err)
	}
}
