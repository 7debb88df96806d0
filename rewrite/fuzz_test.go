package rewrite

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ftpct/ftpct/seqnum"
)

// fuzzSeeds returns packets of the unit tests and the golden scenario as fuzz seeds.
func fuzzSeeds(f *testing.F) [][]byte {
	withOpts := v4spec("PORT 10,0,1,2,156,65\r\n")
	withOpts.timestamps = true
	withOpts.sack = []SACKBlock{{1, 2}}
	v6ext := v6spec("EPRT |2|fd00::2|40001|\r\n")
	v6ext.hopByHop, v6ext.dstOpts = true, true
	syn := v4spec("x")
	syn.flags = FlagSYN
	seeds := [][]byte{
		buildPacket(f, v4spec("PORT 10,0,1,2,156,65\r\n")),
		buildPacket(f, withOpts),
		buildPacket(f, v6spec("227 Entering Passive Mode (10,0,1,2,4,1)\r\n")),
		buildPacket(f, v6ext),
		buildPacket(f, syn),
		insertIPv6ExtHeader(buildPacket(f, v6spec("")), protoFragment),
		insertIPv6ExtHeader(buildPacket(f, v6spec("NOOP\r\n")), protoRouting),
	}
	// Every input packet of the golden scenario files.
	files, _ := filepath.Glob(filepath.Join("testdata", "scenario_*.golden"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		for _, line := range splitLines(b) {
			if h, ok := strings.CutPrefix(line, "in  "); ok {
				pkt, err := hex.DecodeString(h)
				if err != nil {
					f.Fatal(err)
				}
				seeds = append(seeds, pkt)
			}
		}
	}
	return seeds
}

func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte{0x45})
	f.Add([]byte{0x60, 0, 0, 0, 0, 8, 0, 64})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Packet
		if err := Decode(b, &p); err != nil {
			known := []error{ErrShort, ErrNotTCP, ErrVersion, ErrFragment, ErrBadHeader}
			for _, k := range known {
				if errors.Is(err, k) {
					return
				}
			}
			t.Fatalf("Decode returned an unknown error: %v", err)
		}
		if p.TCPOff != p.IPHeaderLen || p.IPHeaderLen < 20 || p.TCPOff+20 > p.PayloadOff ||
			p.PayloadOff > p.Len || p.Len > len(b) {
			t.Fatalf("offsets out of bounds: %+v, len %d", p, len(b))
		}
		if p.V6 != (b[0]>>4 == 6) || p.Src.Is6() != p.V6 {
			t.Fatalf("family mismatch: %+v", p)
		}
		_ = p.Payload(b)
		_ = AppendSACKBlocks(nil, b, &p)
		_ = ValidTCPChecksum(b, &p)
	})
}

// fixChecksum makes the TCP checksum of the decoded packet valid (naive reference sum).
func fixChecksum(b []byte, p *Packet) {
	binary.BigEndian.PutUint16(b[p.TCPOff+16:], 0)
	seg := b[p.TCPOff:p.Len]
	l := len(seg)
	addrs := b[12:20]
	if p.V6 {
		addrs = b[8:40]
	}
	s := refSum(addrs, []byte{0, 0, byte(l >> 8), byte(l), 0, 0, 0, protoTCP}, seg)
	binary.BigEndian.PutUint16(b[p.TCPOff+16:], ^s)
}

func FuzzRewrite(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s, 5, 13, []byte("198,51,100,1"), uint32(900), int16(4), uint32(0), int16(0))
		f.Add(s, 0, 0, []byte(nil), uint32(1001), int16(-2), uint32(4000), int16(3))
	}
	f.Fuzz(func(t *testing.T, pkt []byte, off, end int, repl []byte, thisPos uint32, thisDelta int16, otherPos uint32, otherDelta int16) {
		var p Packet
		if Decode(pkt, &p) != nil {
			return
		}
		in := append([]byte(nil), pkt...)
		fixChecksum(in, &p)
		var this, other SeqAdj
		_ = this.Record(seqnum.Value(thisPos), int32(thisDelta))
		_ = other.Record(seqnum.Value(otherPos), int32(otherDelta))
		thisBefore, otherBefore := this, other
		edits := []Splice{{Off: off, End: end, Repl: repl}}
		out, changed, err := rewriteRec(make([]byte, 0, len(in)+len(repl)), in, &p, edits, &this, &other)
		if !sameAdj(other, otherBefore) {
			t.Fatal("Rewrite changed other")
		}
		if err != nil {
			if !sameAdj(this, thisBefore) || changed || len(out) != 0 {
				t.Fatalf("error %v, but changed=%v len=%d or this changed", err, changed, len(out))
			}
			return
		}
		if !changed {
			if len(out) != 0 {
				t.Fatalf("unchanged with %d bytes", len(out))
			}
			return
		}
		var q Packet
		if err := Decode(out, &q); err != nil {
			t.Fatalf("Decode(output): %v\nin  %x\nout %x", err, in, out)
		}
		if q.Len != len(out) || q.IPHeaderLen != p.IPHeaderLen || q.PayloadOff != p.PayloadOff {
			t.Fatalf("output layout %+v vs input %+v, len %d", q, p, len(out))
		}
		payload := p.Payload(in)
		want := append(append(append([]byte(nil), payload[:off]...), repl...), payload[end:]...)
		if !bytes.Equal(q.Payload(out), want) {
			t.Fatalf("payload %q, want %q", q.Payload(out), want)
		}
		if q.Seq != thisBefore.MapSeq(p.Seq) {
			t.Fatalf("seq %d, want %d", q.Seq, thisBefore.MapSeq(p.Seq))
		}
		if p.Flags&FlagACK != 0 && q.Ack != other.UnmapAck(p.Ack) {
			t.Fatalf("ack %d, want %d", q.Ack, other.UnmapAck(p.Ack))
		}
		if !refTCPValid(out, &q) {
			t.Fatalf("TCP checksum invalid\nin  %x\nout %x", in, out)
		}
		if !q.V6 && refSum(out[:q.IPHeaderLen]) != 0xffff {
			t.Fatalf("IPv4 header checksum invalid")
		}
		if d := len(repl) - (end - off); d != 0 {
			pos, found := p.dataSeq().Add(int32(off)), false
			for i := range this.Len() {
				found = found || this.At(i) == Record{Pos: pos, Delta: int32(d)}
			}
			if !found {
				t.Fatalf("record {%d %d} missing: %v", pos, d, this.Records())
			}
		}
	})
}
