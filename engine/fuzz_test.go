package engine

import (
	"bytes"
	"testing"

	"github.com/ftpct/ftpct/conntrack"
	"github.com/ftpct/ftpct/rewrite"
)

// sessionScripts are valid control streams, one per direction of the
// bindings used by FuzzSegmentation.
var sessionScripts = []struct {
	name    string
	binding conntrack.Binding
	seg     func(seq uint32, payload string) seg
	ack     func(ack uint32) seg // the receiver's bare ACK
	stream  string
}{
	{
		name:    "client commands through masquerade",
		binding: masqueradeBinding,
		seg:     masqClientSeg,
		ack:     masqServerAck,
		stream: "USER anonymous\r\nPASS x\r\nTYPE I\r\nPORT 10,0,1,2,156,64\r\nRETR big.bin\r\nNOOP\r\n" +
			"EPRT |1|10.0.1.2|40002|\r\nLIST\r\nport 10,0,1,2,200,1\r\nPORT 10,0,1,2,0,22\r\nQUIT\r\n",
	},
	{
		name:    "server replies through DNAT",
		binding: dnatBinding,
		seg: func(seq uint32, payload string) seg {
			return seg{src: privSrv, dst: outsider, sport: 21, dport: 5000, seq: seq, ack: 1, payload: payload}
		},
		ack: func(ack uint32) seg {
			return seg{src: outsider, dst: gwPublic, sport: 5000, dport: 21, seq: 1, ack: ack}
		},
		stream: "220 ready\r\n230-Welcome\r\n230 ok\r\n227 Entering Passive Mode (10,0,2,2,195,80).\r\n" +
			"150 ok\r\n226 done\r\n229 Entering Extended Passive Mode (|||50001|)\r\n227 =10,0,2,2,200,10\r\n221 bye\r\n",
	},
	{
		name:    "pipelined PORT burst through masquerade",
		binding: masqueradeBinding,
		seg:     masqClientSeg,
		ack:     masqServerAck,
		stream: func() string {
			in, _ := portLines(0, 40)
			return "TYPE I\r\n" + in + "RETR x\r\n"
		}(),
	},
}

// receiver rebuilds the byte stream the far end gets from emitted packets.
// Like TCP, it discards bytes before what it has acknowledged.
type receiver struct {
	base    uint32
	buf     []byte
	written []bool
	acked   int // stream offset it has acknowledged
}

// next returns the offset of the first byte not yet received.
func (r *receiver) next() int {
	n := 0
	for n < len(r.written) && r.written[n] {
		n++
	}
	return n
}

func (r *receiver) take(t *testing.T, pkt []byte) {
	var p rewrite.Packet
	if err := rewrite.Decode(pkt, &p); err != nil {
		t.Fatalf("emitted packet does not decode: %v", err)
	}
	if !rewrite.ValidTCPChecksum(pkt, &p) {
		t.Fatalf("emitted packet has a bad TCP checksum")
	}
	payload := p.Payload(pkt)
	off := int(int32(uint32(p.Seq) - r.base))
	if off+len(payload) <= r.acked {
		return // all acknowledged: discarded
	}
	if off < r.acked {
		payload = payload[r.acked-off:]
		off = r.acked
	}
	if off < 0 || off+len(payload) > len(r.buf) {
		t.Fatalf("emitted bytes [%d,%d) outside the stream (len %d): %q", off, off+len(payload), len(r.buf), payload)
	}
	for i, c := range payload {
		if r.written[off+i] && r.buf[off+i] != c {
			t.Fatalf("byte %d emitted twice, differently: %q then %q", off+i, r.buf[off+i], c)
		}
		r.buf[off+i], r.written[off+i] = c, true
	}
}

// emit runs one packet through w and hands what is sent to r. It reports
// whether the packet was dropped.
func emit(t *testing.T, w *Worker, r *receiver, pkt []byte) bool {
	v, out := w.Handle(pkt)
	switch v {
	case DecisionDrop:
		return true
	case DecisionModified:
		r.take(t, out)
	default:
		r.take(t, pkt)
	}
	return false
}

// FuzzSegmentation cuts a valid control stream into segments as the fuzzer
// chooses, with retransmissions and coalesced resends, packets lost after
// the gateway, and acknowledgements from the receiver that the sender may not
// get (so it resends acknowledged bytes). At the end the sender resends, as
// TCP does, its own segment holding the first byte the receiver lacks until
// the receiver has everything. The receiver must get exactly the stream a
// single segment would have produced, and the same holes must be open.
func FuzzSegmentation(f *testing.F) {
	f.Add(uint8(0), []byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Add(uint8(0), []byte{2, 0x82, 3, 0x45, 1, 1, 1, 1, 1})
	f.Add(uint8(1), []byte{30, 0x8a, 7, 0x47, 2})
	f.Add(uint8(1), bytes.Repeat([]byte{0}, 64))
	f.Add(uint8(2), []byte{0x97, 0xf7, 0xb7, 0xd7, 0x37, 0x97, 0xf7, 0xb7})
	f.Add(uint8(2), bytes.Repeat([]byte{0xb7}, 40))
	// Lost packets (0x10), among them joined ones.
	f.Add(uint8(0), []byte{0x03, 0x14, 0x02, 0x15, 0x13, 0x01, 0x33, 0x11})
	f.Add(uint8(1), []byte{0x05, 0x12, 0x04, 0x13, 0x30, 0x16})
	f.Add(uint8(2), bytes.Repeat([]byte{0x17, 0x05, 0x52}, 20))
	f.Fuzz(func(t *testing.T, which uint8, cuts []byte) {
		sc := sessionScripts[int(which)%len(sessionScripts)]
		const isn = 0xfffffff0 // wraps during the stream
		stream := sc.stream

		// Reference: the whole stream in one segment.
		refE, refHoles := newTestEngine(sc.binding)
		refW := refE.NewWorker()
		v, out := refW.Handle(build(t, sc.seg(isn, stream)))
		want := []byte(stream)
		if v == DecisionModified {
			var p rewrite.Packet
			if err := rewrite.Decode(out, &p); err != nil {
				t.Fatal(err)
			}
			want = append([]byte(nil), p.Payload(out)...)
		}

		e, holes := newTestEngine(sc.binding)
		w := e.NewWorker()
		r := &receiver{base: isn, buf: make([]byte, len(want)), written: make([]bool, len(want))}
		prevStart, prevEnd := -1, -1
		pos := 0
		var pieces [][2]int // the sender's segments
		for i := 0; pos < len(stream); i++ {
			c := byte(i*7 + 3)
			if i < len(cuts) {
				c = cuts[i]
			}
			n := min(1+int(c%24), len(stream)-pos)
			pieces = append(pieces, [2]int{pos, pos + n})
			pkt := build(t, sc.seg(isn+uint32(pos), stream[pos:pos+n]))
			if c&0x10 != 0 {
				// Lost after the gateway.
				if v, _ := w.Handle(pkt); v == DecisionDrop {
					t.Fatalf("in-order segment [%d,%d) %q dropped", pos, pos+n, stream[pos:pos+n])
				}
			} else if emit(t, w, r, pkt) {
				t.Fatalf("in-order segment [%d,%d) %q dropped", pos, pos+n, stream[pos:pos+n])
			}
			switch {
			case c&0x80 != 0 && prevStart >= 0:
				// The previous segment again (a dropped verdict is fine:
				// its bytes were already taken).
				emit(t, w, r, build(t, sc.seg(isn+uint32(prevStart), stream[prevStart:prevEnd])))
			case c&0x40 != 0 && prevStart >= 0:
				// A coalesced resend of the previous and this segment.
				emit(t, w, r, build(t, sc.seg(isn+uint32(prevStart), stream[prevStart:pos+n])))
			}
			if c&0x20 != 0 {
				// The receiver acknowledges what it has; the sender may
				// not hear of it and resend from before.
				r.acked = r.next()
				if v, _ := w.Handle(build(t, sc.ack(isn+uint32(r.acked)))); v == DecisionDrop {
					t.Fatalf("acknowledgement of %d bytes dropped", r.acked)
				}
			}
			prevStart, prevEnd = pos, pos+n
			pos += n
		}
		// Recovery: the receiver acknowledges what it has; the sender
		// resends its segment holding the byte after the acknowledged ones.
		for round := 0; r.next() < len(want) && round < 4*len(pieces); round++ {
			r.acked = r.next()
			ack := build(t, sc.ack(isn+uint32(r.acked)))
			v, out := w.Handle(ack)
			if v == DecisionDrop {
				t.Fatalf("acknowledgement of %d bytes dropped", r.acked)
			}
			if v == DecisionModified {
				ack = out
			}
			var p rewrite.Packet
			if err := rewrite.Decode(ack, &p); err != nil {
				t.Fatal(err)
			}
			a := int(int32(uint32(p.Ack) - isn)) // the sender's view: its own stream
			for _, pc := range pieces {
				if pc[0] <= a && a < pc[1] {
					emit(t, w, r, build(t, sc.seg(isn+uint32(pc[0]), stream[pc[0]:pc[1]])))
					break
				}
			}
		}
		for i, ok := range r.written {
			if !ok {
				t.Fatalf("byte %d of the rewritten stream never sent; got %q, want %q", i, r.buf, want)
			}
		}
		if !bytes.Equal(r.buf, want) {
			t.Fatalf("receiver got\n%q\nwant\n%q", r.buf, want)
		}
		if len(holes.open) != len(refHoles.open) {
			t.Fatalf("holes %v, want %v", holes.open, refHoles.open)
		}
		for k, h := range refHoles.open {
			if holes.open[k] != h {
				t.Fatalf("hole %s = %v, want %v", k, holes.open[k], h)
			}
		}
	})
}
