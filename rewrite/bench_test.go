package rewrite

import (
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// benchPacket is a typical client PORT segment with the timestamps option.
func benchPacket(b *testing.B) []byte {
	spec := v4spec("PORT 10,0,1,2,156,65\r\n")
	spec.timestamps = true
	return buildPacket(b, spec)
}

func BenchmarkDecode(b *testing.B) {
	pkt := benchPacket(b)
	var p Packet
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		if err := Decode(pkt, &p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeGopacket decodes the same packet with gopacket's DecodingLayerParser
// (IPv4 + TCP + payload, preallocated layers: gopacket's fastest path).
func BenchmarkDecodeGopacket(b *testing.B) {
	pkt := benchPacket(b)
	var (
		ip4     layers.IPv4
		tcp     layers.TCP
		payload gopacket.Payload
	)
	parser := gopacket.NewDecodingLayerParser(layers.LayerTypeIPv4, &ip4, &tcp, &payload)
	decoded := make([]gopacket.LayerType, 0, 4)
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		if err := parser.DecodeLayers(pkt, &decoded); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRewrite is a PORT rewrite growing the payload by 4 bytes (decode included), with a
// retransmission-idempotent Record, seq mapping and a full checksum update.
func BenchmarkRewrite(b *testing.B) {
	pkt := benchPacket(b)
	edits := []Splice{{Off: 5, End: 13, Repl: []byte("198,51,100,1")}}
	dst := make([]byte, 0, 256)
	this := adjWith(b, Record{Pos: 900, Delta: 4})
	var other SeqAdj
	var p Packet
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		if err := Decode(pkt, &p); err != nil {
			b.Fatal(err)
		}
		if _, _, err := rewriteRec(dst, pkt, &p, edits, &this, &other); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRewriteGopacket does the same rewrite with gopacket: decode, replace the payload,
// shift seq, SerializeLayers with FixLengths and ComputeChecksums.
func BenchmarkRewriteGopacket(b *testing.B) {
	pkt := benchPacket(b)
	var (
		ip4     layers.IPv4
		tcp     layers.TCP
		payload gopacket.Payload
	)
	parser := gopacket.NewDecodingLayerParser(layers.LayerTypeIPv4, &ip4, &tcp, &payload)
	decoded := make([]gopacket.LayerType, 0, 4)
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	newPayload := make([]byte, 0, 64)
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		if err := parser.DecodeLayers(pkt, &decoded); err != nil {
			b.Fatal(err)
		}
		newPayload = append(append(append(newPayload[:0], payload[:5]...), "198,51,100,1"...), payload[13:]...)
		tcp.Seq += 4
		if err := tcp.SetNetworkLayerForChecksum(&ip4); err != nil {
			b.Fatal(err)
		}
		if err := gopacket.SerializeLayers(buf, opts, &ip4, &tcp, gopacket.Payload(newPayload)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRewriteAckSACK is a server ACK with timestamps and one SACK block whose ack and
// SACK edges are mapped back.
func BenchmarkRewriteAckSACK(b *testing.B) {
	spec := v4spec("")
	spec.timestamps = true
	spec.sack = []SACKBlock{{1030, 1040}}
	spec.ack = 1026
	pkt := buildPacket(b, spec)
	peer := adjWith(b, Record{Pos: 1005, Delta: 4})
	var this SeqAdj
	dst := make([]byte, 0, 256)
	var p Packet
	b.ReportAllocs()
	for b.Loop() {
		if err := Decode(pkt, &p); err != nil {
			b.Fatal(err)
		}
		if _, _, err := rewriteRec(dst, pkt, &p, nil, &this, &peer); err != nil {
			b.Fatal(err)
		}
	}
}
