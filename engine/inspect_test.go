package engine

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ftpct/ftpct/conntrack"
	"github.com/ftpct/ftpct/rules"
)

func TestSessionInfos(t *testing.T) {
	e, _ := newTestEngine(masqueradeBinding, dnatBinding)
	w := e.NewWorker()
	runSteps(t, w, []step{
		{"PORT", masqC2S(1016, 5008, "PORT 10,0,1,2,156,64\r\n"), got{Verdict: "accept-modified", Seq: 1016, Ack: 5008, Payload: "PORT 203,0,113,1,156,64\r\n"}},
		{"auth", seg{src: outsider, dst: gwPublic, sport: 5000, dport: 21, seq: 1, ack: 1, payload: "AUTH TLS\r\n"},
			got{Verdict: "accept", Seq: 1, Ack: 1, Payload: "AUTH TLS\r\n"}},
		{"split", masqC2S(1038, 5008, "EPRT |1|10.0"), got{Verdict: "accept-modified", Seq: 1041, Ack: 5008}},
	})
	now := e.now()
	want := []SessionInfo{
		{ID: 1, Binding: masqueradeBinding, State: SessionActive, Created: now, LastSeen: now,
			Dir: [2]DirInfo{{Offset: 3, Kept: 1, Held: 12}}, Expectations: []uint64{1}},
		{ID: 2, Binding: dnatBinding, State: SessionActive, TLS: TLSRequested, Created: now, LastSeen: now},
	}
	if diff := cmp.Diff(want, e.SessionInfos(), cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("sessions (-want +got):\n%s", diff)
	}
	// Once the server acknowledged the rewrite, it moves to the base.
	runSteps(t, w, []step{{"ack", masqS2C(5008, 1041, "200 ok\r\n"), got{Verdict: "accept-modified", Seq: 5008, Ack: 1038, Payload: "200 ok\r\n"}}})
	if got := e.SessionInfos()[0].Dir[conntrack.DirOrig]; got != (DirInfo{Offset: 3, Base: 3, Held: 12}) {
		t.Errorf("client direction after ack = %+v, want offset 3 all in the base", got)
	}
	runSteps(t, w, []step{{"fin", seg{src: outsider, dst: gwPublic, sport: 5000, dport: 21, seq: 11, ack: 1, flags: "F"},
		got{Verdict: "accept", Seq: 11, Ack: 1}}})
	want2 := []StateCount{{"active", 1}, {"tls", 0}, {"closing", 1}}
	if diff := cmp.Diff(want2, e.SessionsByState()); diff != "" {
		t.Errorf("by state (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]StateCount{{"pending", 1}}, e.ExpectationsByState()); diff != "" {
		t.Errorf("expectations by state (-want +got):\n%s", diff)
	}
}

func TestExpectationsOf(t *testing.T) {
	e, _ := newTestEngine(masqueradeBinding, dnatBinding)
	w := e.NewWorker()
	w.Handle(build(t, masqC2S(1, 1, "PORT 10,0,1,2,156,64\r\n")))
	w.Handle(build(t, seg{src: privSrv, dst: outsider, sport: 21, dport: 5000, seq: 1, ack: 1, payload: "227 Entering Passive Mode (10,0,2,2,156,65)\r\n"}))
	tests := []struct {
		name string
		f    ExpectFilter
		want []uint64
	}{
		{name: "all", want: []uint64{1, 2}},
		{name: "session 2", f: ExpectFilter{Session: 2}, want: []uint64{2}},
		{name: "session 9", f: ExpectFilter{Session: 9}, want: []uint64{}},
		{name: "data peer", f: ExpectFilter{Peer: server}, want: []uint64{1}},
		{name: "destination", f: ExpectFilter{Peer: gwPublic}, want: []uint64{1, 2}},
		{name: "translated to", f: ExpectFilter{Peer: privSrv}, want: []uint64{2}},
		{name: "mapped form", f: ExpectFilter{Peer: netip.AddrFrom16(client.As16())}, want: []uint64{1}},
		{name: "both", f: ExpectFilter{Session: 1, Peer: privSrv}, want: []uint64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids := []uint64{}
			for _, x := range e.ExpectationsOf(tt.f) {
				ids = append(ids, x.ID)
			}
			if diff := cmp.Diff(tt.want, ids); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDeleteExpectation(t *testing.T) {
	holes := &lastHole{}
	e := New(Config{}, &fakeKernel{bindings: []conntrack.Binding{masqueradeBinding}}, holes)
	e.now = func() time.Time { return time.Unix(1_700_000_000, 0) }
	w := e.NewWorker()
	w.Handle(build(t, masqC2S(1, 1, "PORT 10,0,1,2,156,64\r\n")))
	if _, err := e.DeleteExpectation(7); !errors.Is(err, ErrNoExpectation) {
		t.Errorf("delete of an unknown id: %v, want ErrNoExpectation", err)
	}
	// Also when its time is nearly up (the hole's timeout rounds to 0).
	e.now = func() time.Time { return time.Unix(1_700_000_000, 0).Add(5*time.Minute - 100*time.Millisecond) }
	x, err := e.DeleteExpectation(1)
	if err != nil {
		t.Fatal(err)
	}
	if x.ID != 1 || len(holes.open) != 0 || len(holes.closed) != 1 {
		t.Errorf("deleted %d; holes open %v, closed %v; want 1, none, one", x.ID, holes.open, holes.closed)
	}
	if holes.lastClosed.Timeout <= 0 {
		t.Errorf("hole closed with timeout %v: the rule manager refuses that", holes.lastClosed.Timeout)
	}
	if st := e.Stats(); st.ExpectDeleted != 1 || st.ExpectPending != 0 {
		t.Errorf("expect_deleted = %d, expect_pending = %d; want 1 and 0", st.ExpectDeleted, st.ExpectPending)
	}
	if _, err := e.DeleteExpectation(1); !errors.Is(err, ErrNoExpectation) {
		t.Errorf("second delete: %v, want ErrNoExpectation", err)
	}
	// The data connection no longer finds it.
	e.DataConnection(dataSYN)
	if e.Stats().ExpectUsed != 0 {
		t.Errorf("a deleted expectation was used")
	}
}

// lastHole is a fakeHoles that also keeps the last hole closed.
type lastHole struct {
	fakeHoles
	lastClosed rules.Hole
}

func (l *lastHole) Close(h rules.Hole) error {
	l.lastClosed = h
	return l.fakeHoles.Close(h)
}
