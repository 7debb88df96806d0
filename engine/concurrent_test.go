package engine

import (
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ftpct/ftpct/conntrack"
	"github.com/ftpct/ftpct/rules"
)

// lockedStore is labelKernel and holdingHoles behind one mutex: the
// daemon's conntrack.Kernel and rules.Manager are safe for concurrent use,
// the test fakes are not.
type lockedStore struct {
	mu sync.Mutex
	k  labelKernel
	h  holdingHoles
}

func (l *lockedStore) Lookup(t conntrack.Tuple) (conntrack.Binding, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.k.Lookup(t)
}

func (l *lockedStore) SetResized(t conntrack.Tuple, b [conntrack.LabelsSize]byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.k.SetResized(t, b)
}

func (l *lockedStore) Open(h rules.Hole) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.h.Open(h)
}

func (l *lockedStore) Close(h rules.Hole) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.h.Close(h)
}

func (l *lockedStore) Hold(fs ...rules.Flow) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.h.Hold(fs...)
}

func (l *lockedStore) Release(fs ...rules.Flow) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.h.Release(fs...)
}

// TestTwoWorkersOneConnection: with several queues, the kernel hashes a
// flow's addresses to pick the queue, so under NAT the two directions of
// one control connection (client -> server, server -> gateway) reach two
// workers. One worker handles every client segment, the other every server
// segment, at the same time, for several connections; each server segment
// follows the client segment it acknowledges (as on the wire), but the
// client side runs ahead. Every rewrite, sequence shift and mapped-back
// acknowledgement must come out as with one worker. Run with -race.
func TestTwoWorkersOneConnection(t *testing.T) {
	const (
		conns = 4
		cmds  = 40 // PORT commands per connection (more than stream.MaxRecords in all)
		ahead = 16 // how far the client side may run ahead of the server side
	)
	st := &lockedStore{}
	for c := range conns {
		b := masqueradeBinding
		b.Orig.SrcPort += uint16(c)
		b.Reply.DstPort += uint16(c)
		st.k.bindings = append(st.k.bindings, b)
	}
	e := New(Config{}, st, st)
	e.Persist(st, st)
	wc, ws := e.NewWorker(), e.NewWorker()

	type sent struct{ conn, k int }
	acks := make(chan sent, ahead)
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the client side's queue
		defer wg.Done()
		defer close(acks)
		for k := range cmds {
			for c := range conns {
				in := fmt.Sprintf("PORT 10,0,1,2,%d,%d\r\n", 100+c, 10+k) // 22 bytes
				out := fmt.Sprintf("PORT 203,0,113,1,%d,%d\r\n", 100+c, 10+k)
				s := masqC2S(1000+22*uint32(k), 5000, in)
				s.sport += uint16(c)
				pkt := build(t, s)
				v, o := wc.Handle(pkt)
				want := got{Verdict: "accept-modified", Seq: 1000 + 25*uint32(k), Ack: 5000, Payload: out}
				if diff := cmp.Diff(want, inspect(t, v, pkt, o)); diff != "" {
					errs <- fmt.Errorf("connection %d, PORT %d (-want +got):\n%s", c, k, diff)
					return
				}
				acks <- sent{c, k}
			}
		}
	}()
	go func() { // the server side's queue
		defer wg.Done()
		for a := range acks {
			// The server acknowledges PORT k (25 bytes each as it saw them)
			// with its reply; the client must see its own numbering.
			s := masqS2C(5000, 1000+25*uint32(a.k+1), "")
			s.dport += uint16(a.conn)
			pkt := build(t, s)
			v, o := ws.Handle(pkt)
			want := got{Verdict: "accept-modified", Seq: 5000, Ack: 1000 + 22*uint32(a.k+1)}
			if diff := cmp.Diff(want, inspect(t, v, pkt, o)); diff != "" {
				errs <- fmt.Errorf("connection %d, ack of PORT %d (-want +got):\n%s", a.conn, a.k, diff)
				for range acks { // let the client side finish
				}
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s := e.Stats()
	if s.Rewrites != conns*cmds || s.RewritesRefused != 0 || s.Errors != 0 || s.Dropped != 0 {
		t.Errorf("rewrites %d refused %d errors %d dropped %d; want %d 0 0 0", s.Rewrites, s.RewritesRefused, s.Errors, s.Dropped, conns*cmds)
	}
	if n := len(st.h.held); n != 2*conns {
		t.Errorf("%d flows held, want both directions of %d resized connections", n, conns)
	}
	if n := len(st.h.open); n != conns {
		t.Errorf("%d holes open, want one per connection (each PORT replaces the last)", n)
	}
}
