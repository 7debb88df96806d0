//go:build integration

package rules

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ftpct/ftpct/nfq"
)

// queued is what the queue saw of one TCP packet.
type queued struct {
	sport, dport uint16
	flags        byte // FIN, SYN, RST, PSH, ACK, ... as in the header
	payload      int
}

func (q queued) bare() bool { return q.payload == 0 && q.flags&0x07 == 0 }

// TestBareACKsOfFlowsNotHeld: the divert chains queue a control connection's
// SYN, FIN and data, but not its bare ACKs, unless the flow is held (then
// every packet is queued: its acknowledgements need mapping back). A reader
// on the queue records what it gets; two local connections that exchange
// the same bytes with pauses (so each side sends bare ACKs) differ only in
// being held.
func TestBareACKsOfFlowsNotHeld(t *testing.T) {
	_, cfg, m := installed(t, ip4NoAccept)
	path := cfg.NetNS
	var mu sync.Mutex
	var seen []queued
	handle := func(p nfq.Packet) (nfq.Verdict, []byte) {
		b := p.Data
		if len(b) >= 20 && b[0]>>4 == 4 && b[9] == 6 {
			ihl := int(b[0]&0x0f) * 4
			tcp := b[ihl:]
			doff := int(tcp[12]>>4) * 4
			mu.Lock()
			seen = append(seen, queued{sport: binary.BigEndian.Uint16(tcp[0:]), dport: binary.BigEndian.Uint16(tcp[2:]),
				flags: tcp[13], payload: int(binary.BigEndian.Uint16(b[2:])) - ihl - doff})
			mu.Unlock()
		}
		return nfq.Accept, nil
	}
	openQueue(t, path, cfg.Queue, handle)

	server := netip.MustParseAddrPort("127.0.0.1:21")
	helloServer(t, path, server)
	converse := func(src netip.AddrPort) { sayHello(t, path, src, server) }
	free, held := netip.MustParseAddrPort("127.0.0.1:40021"), netip.MustParseAddrPort("127.0.0.1:40022")
	if err := m.Hold(Flow{Src: held, Dst: server}, Flow{Src: server, Dst: held}); err != nil {
		t.Fatal(err)
	}
	converse(free)
	converse(held)
	time.Sleep(300 * time.Millisecond) // the FIN exchange

	mu.Lock()
	defer mu.Unlock()
	type count struct{ syn, fin, data, bare int }
	counts := map[uint16]*count{free.Port(): {}, held.Port(): {}}
	for _, p := range seen {
		port := p.sport
		if port == server.Port() {
			port = p.dport
		}
		c := counts[port]
		if c == nil {
			continue
		}
		switch {
		case p.flags&0x02 != 0:
			c.syn++
		case p.flags&0x01 != 0:
			c.fin++
		case p.payload > 0:
			c.data++
		case p.bare():
			c.bare++
		}
	}
	f, h := counts[free.Port()], counts[held.Port()]
	if f.syn < 2 || f.data < 2 || f.fin < 2 {
		t.Errorf("flow not held: %d SYN, %d data, %d FIN queued; want both sides' of each", f.syn, f.data, f.fin)
	}
	if f.bare != 0 {
		t.Errorf("flow not held: %d bare ACKs queued, want none", f.bare)
	}
	if h.syn < 2 || h.data < 2 || h.fin < 2 || h.bare < 2 {
		t.Errorf("held flow: %d SYN, %d data, %d FIN, %d bare ACKs queued; want every packet (at least 2 bare ACKs)", h.syn, h.data, h.fin, h.bare)
	}
}

// openQueue reads NFQUEUE num in the namespace at path with handle until
// the test ends.
func openQueue(t *testing.T, path string, num uint16, handle nfq.Handler) *nfq.Queue {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var q *nfq.Queue
	if err := inNetNS(t, path, func() (err error) {
		qc := nfq.DefaultConfig()
		qc.Num = num
		q, err = nfq.Open(ctx, qc, handle)
		return err
	}); err != nil {
		cancel()
		t.Fatalf("open queue: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		q.Close()
	})
	return q
}

// helloServer listens on server in the namespace at path until the test
// ends: each connection reads "hello", answers "ok" 100 ms later (so the
// ACK of "hello" goes alone) and reads to the end.
func helloServer(t *testing.T, path string, server netip.AddrPort) {
	t.Helper()
	listenIn(t, path, server, func(c net.Conn) {
		defer c.Close()
		b := make([]byte, 5)
		if _, err := io.ReadFull(c, b); err != nil {
			return
		}
		time.Sleep(100 * time.Millisecond) // the ACK of "hello" goes alone
		c.Write([]byte("ok"))
		io.Copy(io.Discard, c)
	})
}

// sayHello connects from src, in the namespace at path, to a helloServer
// at server, sends "hello", reads "ok", and waits 100 ms (the ACK of "ok"
// goes alone) before closing.
func sayHello(t *testing.T, path string, src, server netip.AddrPort) {
	t.Helper()
	var c net.Conn
	if err := inNetNS(t, path, func() (err error) {
		d := net.Dialer{Timeout: time.Second, LocalAddr: net.TCPAddrFromAddrPort(src)}
		c, err = d.Dial("tcp", server.String())
		return err
	}); err != nil {
		t.Fatalf("dial from %v: %v", src, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 2)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read from %v: %v", src, err)
	}
	time.Sleep(100 * time.Millisecond) // the ACK of "ok" goes alone
}
