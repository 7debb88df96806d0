package rewrite

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ftpct/ftpct/seqnum"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// dir is the direction of a scenario step.
type dir int

const (
	c2s dir = iota // client → server (PORT commands, the rewritten stream)
	s2c            // server → client (acks of the rewritten stream)
)

// scenarioStep is one packet of the scripted FTP control connection. Sequence numbers are
// relative: client seq/ack values are offsets from the client base c, server ones from s.
// The want* values are computed by hand from the deltas (+4 at c+5, -2 at c+39), so the
// golden files cannot silently encode a bug.
type scenarioStep struct {
	name      string
	dir       dir
	seq, ack  uint32 // relative, as the sender put them on the wire
	sack      [][2]uint32
	payload   string
	edits     []Splice
	wantSeq   uint32 // relative
	wantAck   uint32 // relative
	wantSACK  [][2]uint32
	wantData  string
	unchanged bool // Rewrite must report changed=false
	sameAs    string
	wantRecs  []Record // client direction records after the step, Pos relative to c
}

const serverBase = 5000

var recPort1 = Record{Pos: 5, Delta: 4}
var recPort2 = Record{Pos: 39, Delta: -2}

var scenario = []scenarioStep{
	{
		name: "port1 grows by 4", dir: c2s, seq: 0, ack: 0,
		payload: "PORT 10,0,1,2,156,65\r\n",
		edits:   []Splice{{Off: 5, End: 13, Repl: []byte("198,51,100,1")}},
		wantSeq: 0, wantAck: 0, wantData: "PORT 198,51,100,1,156,65\r\n",
		wantRecs: []Record{recPort1},
	},
	{
		name: "server acks port1", dir: s2c, seq: 0, ack: 26,
		wantSeq: 0, wantAck: 22,
		wantRecs: []Record{recPort1},
	},
	{
		name: "server partial ack at record wire position is not shifted", dir: s2c, seq: 0, ack: 5,
		wantSeq: 0, wantAck: 5, unchanged: true,
		wantRecs: []Record{recPort1},
	},
	{
		name: "server reply acks port1", dir: s2c, seq: 0, ack: 26,
		payload: "200 PORT command successful.\r\n",
		wantSeq: 0, wantAck: 22, wantData: "200 PORT command successful.\r\n",
		wantRecs: []Record{recPort1},
	},
	{
		name: "client LIST shifted by 4", dir: c2s, seq: 22, ack: 30,
		payload: "LIST\r\n",
		wantSeq: 26, wantAck: 30, wantData: "LIST\r\n",
		wantRecs: []Record{recPort1},
	},
	{
		name: "client NOOP shifted by 4", dir: c2s, seq: 28, ack: 30,
		payload: "NOOP\r\n",
		wantSeq: 32, wantAck: 30, wantData: "NOOP\r\n",
		wantRecs: []Record{recPort1},
	},
	{
		name: "server ack with one SACK block", dir: s2c, seq: 30, ack: 26,
		sack:    [][2]uint32{{32, 38}},
		wantSeq: 30, wantAck: 22, wantSACK: [][2]uint32{{28, 34}},
		wantRecs: []Record{recPort1},
	},
	{
		name: "server ack with D-SACK and SACK blocks", dir: s2c, seq: 30, ack: 38,
		sack:    [][2]uint32{{26, 32}, {40, 50}},
		wantSeq: 30, wantAck: 34, wantSACK: [][2]uint32{{22, 28}, {36, 46}},
		wantRecs: []Record{recPort1},
	},
	{
		name: "port2 shrinks by 2", dir: c2s, seq: 34, ack: 30,
		payload: "PORT 10,0,100,200,195,80\r\n",
		edits:   []Splice{{Off: 5, End: 17, Repl: []byte("192,0,2,10")}},
		wantSeq: 38, wantAck: 30, wantData: "PORT 192,0,2,10,195,80\r\n",
		wantRecs: []Record{recPort1, recPort2},
	},
	{
		name: "client QUIT shifted by +4-2", dir: c2s, seq: 60, ack: 30,
		payload: "QUIT\r\n",
		wantSeq: 62, wantAck: 30, wantData: "QUIT\r\n",
		wantRecs: []Record{recPort1, recPort2},
	},
	{
		name: "server acks everything", dir: s2c, seq: 30, ack: 68,
		wantSeq: 30, wantAck: 66,
		wantRecs: []Record{recPort1, recPort2},
	},
	{
		name: "server ack at port2 wire position uses port1 only", dir: s2c, seq: 30, ack: 43,
		wantSeq: 30, wantAck: 39,
		wantRecs: []Record{recPort1, recPort2},
	},
	{
		name: "server SACK across both records", dir: s2c, seq: 30, ack: 26,
		sack:    [][2]uint32{{38, 62}, {62, 68}},
		wantSeq: 30, wantAck: 22, wantSACK: [][2]uint32{{34, 60}, {60, 66}},
		wantRecs: []Record{recPort1, recPort2},
	},
	{
		name: "retransmission of port1", dir: c2s, seq: 0, ack: 0,
		payload: "PORT 10,0,1,2,156,65\r\n",
		edits:   []Splice{{Off: 5, End: 13, Repl: []byte("198,51,100,1")}},
		wantSeq: 0, wantAck: 0, wantData: "PORT 198,51,100,1,156,65\r\n",
		sameAs:   "port1 grows by 4",
		wantRecs: []Record{recPort1, recPort2},
	},
	{
		name: "retransmission of port2", dir: c2s, seq: 34, ack: 30,
		payload: "PORT 10,0,100,200,195,80\r\n",
		edits:   []Splice{{Off: 5, End: 17, Repl: []byte("192,0,2,10")}},
		wantSeq: 38, wantAck: 30, wantData: "PORT 192,0,2,10,195,80\r\n",
		sameAs:   "port2 shrinks by 2",
		wantRecs: []Record{recPort1, recPort2},
	},
}

// scenarioVariant runs the scenario over one address family and client base sequence number.
type scenarioVariant struct {
	name           string
	client, server string
	clientBase     uint32
	dstOpts        bool
}

var scenarioVariants = []scenarioVariant{
	{name: "ipv4", client: "10.0.1.2", server: "203.0.113.5", clientBase: 1000},
	{name: "ipv4_wrap", client: "10.0.1.2", server: "203.0.113.5", clientBase: 0xFFFFFFF0},
	{name: "ipv6", client: "fd00::2", server: "2001:db8::21", clientBase: 1000},
	{name: "ipv6_dstopts_wrap", client: "fd00::2", server: "2001:db8::21", clientBase: 0xFFFFFFDE, dstOpts: true},
}

func TestScenarioGolden(t *testing.T) {
	for _, v := range scenarioVariants {
		t.Run(v.name, func(t *testing.T) {
			var got bytes.Buffer
			var client, server SeqAdj // records of the client → server and server → client streams
			outs := map[string][]byte{}
			c := v.clientBase
			rel := func(d dir, x uint32) uint32 { // relative → absolute, per owner of the number
				if d == c2s {
					return c + x
				}
				return serverBase + x
			}
			for _, st := range scenario {
				spec := tcpSpec{flags: FlagACK, payload: st.payload, dstOpts: v.dstOpts, timestamps: true}
				if st.payload != "" {
					spec.flags |= FlagPSH
				}
				var this, other *SeqAdj
				if st.dir == c2s {
					spec.src, spec.dst, spec.sport, spec.dport = v.client, v.server, 40000, 21
					spec.seq, spec.ack = rel(c2s, st.seq), rel(s2c, st.ack)
					this, other = &client, &server
				} else {
					spec.src, spec.dst, spec.sport, spec.dport = v.server, v.client, 21, 40000
					spec.seq, spec.ack = rel(s2c, st.seq), rel(c2s, st.ack)
					this, other = &server, &client
				}
				for _, blk := range st.sack {
					spec.sack = append(spec.sack, SACKBlock{Left: seqnum.Value(c + blk[0]), Right: seqnum.Value(c + blk[1])})
				}
				in := buildPacket(t, spec)
				var p Packet
				if err := Decode(in, &p); err != nil {
					t.Fatalf("%s: Decode input: %v", st.name, err)
				}
				out, changed, err := rewriteRec(make([]byte, 0, 256), in, &p, st.edits, this, other)
				if err != nil {
					t.Fatalf("%s: Rewrite: %v", st.name, err)
				}
				fmt.Fprintf(&got, "# %s\nin  %x\n", st.name, in)
				if changed == st.unchanged {
					t.Errorf("%s: changed = %v, want %v", st.name, changed, !st.unchanged)
				}
				if !changed {
					if len(out) != 0 {
						t.Errorf("%s: unchanged but returned %d bytes", st.name, len(out))
					}
					fmt.Fprintf(&got, "out -\n")
					out = in[:p.Len]
				} else {
					fmt.Fprintf(&got, "out %x\n", out)
				}
				outs[st.name] = out
				checkStep(t, st, out, c, v.dstOpts)
				checkWithGopacket(t, out, p.V6)
				if st.sameAs != "" && !bytes.Equal(out, outs[st.sameAs]) {
					t.Errorf("%s: output differs from %q:\n got %x\nwant %x", st.name, st.sameAs, out, outs[st.sameAs])
				}
				var wantRecs []Record
				for _, r := range st.wantRecs {
					wantRecs = append(wantRecs, Record{Pos: seqnum.Value(c + uint32(r.Pos)), Delta: r.Delta})
				}
				if diff := cmp.Diff(wantRecs, client.Records()); diff != "" {
					t.Errorf("%s: client records (-want +got):\n%s", st.name, diff)
				}
				if !server.IsZero() {
					t.Errorf("%s: server records %v, want none", st.name, server.Records())
				}
			}
			compareGolden(t, filepath.Join("testdata", "scenario_"+v.name+".golden"), got.Bytes())
		})
	}
}

func checkStep(t *testing.T, st scenarioStep, out []byte, c uint32, dstOpts bool) {
	t.Helper()
	var q Packet
	if err := Decode(out, &q); err != nil {
		t.Fatalf("%s: Decode output: %v", st.name, err)
	}
	if q.Len != len(out) {
		t.Errorf("%s: IP length %d, output is %d bytes", st.name, q.Len, len(out))
	}
	if dstOpts && q.IPHeaderLen != 48 {
		t.Errorf("%s: IPHeaderLen %d, want 48", st.name, q.IPHeaderLen)
	}
	type view struct {
		Seq, Ack seqnum.Value
		SACK     []SACKBlock
		Data     string
	}
	want := view{Data: st.wantData}
	if st.dir == c2s {
		want.Seq, want.Ack = seqnum.Value(c+st.wantSeq), seqnum.Value(serverBase+st.wantAck)
	} else {
		want.Seq, want.Ack = seqnum.Value(serverBase+st.wantSeq), seqnum.Value(c+st.wantAck)
	}
	for _, blk := range st.wantSACK {
		want.SACK = append(want.SACK, SACKBlock{Left: seqnum.Value(c + blk[0]), Right: seqnum.Value(c + blk[1])})
	}
	got := view{Seq: q.Seq, Ack: q.Ack, SACK: AppendSACKBlocks(nil, out, &q), Data: string(q.Payload(out))}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s: output (-want +got):\n%s", st.name, diff)
	}
	if !refTCPValid(out, &q) {
		t.Errorf("%s: TCP checksum invalid", st.name)
	}
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if diff := cmp.Diff(splitLines(want), splitLines(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

func splitLines(b []byte) []string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// TestGoldenFilesReplay decodes every golden input and checks that rewriting the inputs in
// order with fresh SeqAdjs reproduces the stored outputs (a second reader of the files).
func TestGoldenFilesReplay(t *testing.T) {
	for _, v := range scenarioVariants {
		t.Run(v.name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", "scenario_"+v.name+".golden"))
			if err != nil {
				t.Fatal(err)
			}
			lines := splitLines(b)
			var client, server SeqAdj
			i := 0
			for li := 0; li+2 < len(lines)+1 && i < len(scenario); li += 3 {
				st := scenario[i]
				i++
				in, err := hex.DecodeString(strings.TrimPrefix(lines[li+1], "in  "))
				if err != nil {
					t.Fatal(err)
				}
				var p Packet
				if err := Decode(in, &p); err != nil {
					t.Fatal(err)
				}
				this, other := &client, &server
				if st.dir == s2c {
					this, other = &server, &client
				}
				out, _, err := rewriteRec(nil, in, &p, st.edits, this, other)
				if err != nil {
					t.Fatal(err)
				}
				want := strings.TrimPrefix(lines[li+2], "out ")
				if want == "-" {
					want = ""
				}
				if diff := cmp.Diff(want, hex.EncodeToString(out)); diff != "" {
					t.Errorf("%s (-want +got):\n%s", st.name, diff)
				}
			}
			if i != len(scenario) {
				t.Errorf("golden file has %d steps, scenario %d", i, len(scenario))
			}
		})
	}
}
