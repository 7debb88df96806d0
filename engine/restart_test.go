package engine

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ftpct/ftpct/conntrack"
	"github.com/ftpct/ftpct/ctstate"
)

// TestResendAfterRestart: after a restart the sender resends what its peer
// had not acknowledged to it, which may hold several rewrites made by the
// dead daemon, before the newest change, and which the peer may or may not
// hold (the dead daemon's verdict may never have been given). Each case
// runs steps through a first engine, checks the labels it leaves, starts a
// second engine on them (the restarted daemon) and runs the rest.
//
// portLines' lines are 22 bytes (25 rewritten: +3), their argument 5 bytes
// into the line. The client's stream starts with "USER a\r\n" at 1000, so
// its PORTs start at 1008.
func TestResendAfterRestart(t *testing.T) {
	a2, a2w := portLines(0, 2) // segment A: 1008..1052, +6
	b2, b2w := portLines(2, 2) // segment B: 1052..1096, +6
	p5, p5w := portLines(0, 5) // a first batch: 1008..1118, +15
	q5, q5w := portLines(5, 5) // a second batch: 1118..1228, +15
	user := step{"user", masqC2S(1000, 5000, "USER a\r\n"), got{Verdict: "accept", Seq: 1000, Ack: 5000, Payload: "USER a\r\n"}}
	segA := step{"segment A", masqC2S(1008, 5000, a2), got{Verdict: "accept-modified", Seq: 1008, Ack: 5000, Payload: a2w}}
	segB := step{"segment B", masqC2S(1052, 5000, b2), got{Verdict: "accept-modified", Seq: 1058, Ack: 5000, Payload: b2w}}
	ackA := step{"A acknowledged", masqS2C(5000, 1058, "200 ok\r\n"), got{Verdict: "accept-modified", Seq: 5000, Ack: 1052, Payload: "200 ok\r\n"}}
	tests := []struct {
		name       string
		before     []step
		wantLabels ctstate.Adj // original direction
		after      []step
		wantStale  uint64
		wantOOO    uint64
	}{
		{
			// TestLongActiveSession/restart: the batch was rewritten and
			// its state stored, but the daemon died before its verdict:
			// the server never got it. Its resend must be placed where
			// the batch starts, not where the newest change is, and every
			// PORT in it rewritten again (before, only the newest was).
			name: "batch never sent",
			before: []step{
				user,
				{"first batch", masqC2S(1008, 5000, p5), got{Verdict: "accept-modified", Seq: 1008, Ack: 5000, Payload: p5w}},
				{"first batch acknowledged", masqS2C(5000, 1133, "200 ok\r\n"), got{Verdict: "accept-modified", Seq: 5000, Ack: 1118, Payload: "200 ok\r\n"}},
				{"second batch (its verdict is lost)", masqC2S(1118, 5008, q5), got{Verdict: "accept-modified", Seq: 1133, Ack: 5008, Payload: q5w}},
			},
			// Newest at 1118+88+5; the span from the batch's first line.
			wantLabels: ctstate.Adj{Pos: 1211, Delta: 3, After: 30, Span: 93, Lump: 12},
			after: []step{
				{"second batch resent: placed at its start, all rewritten", masqC2S(1118, 5008, q5), got{Verdict: "accept-modified", Seq: 1133, Ack: 5008, Payload: q5w}},
				{"server acknowledges it", masqS2C(5008, 1258, "200 ok\r\n"), got{Verdict: "accept-modified", Seq: 5008, Ack: 1228, Payload: "200 ok\r\n"}},
				{"next command", masqC2S(1228, 5016, "NOOP\r\n"), got{Verdict: "accept-modified", Seq: 1258, Ack: 5016, Payload: "NOOP\r\n"}},
			},
		},
		{
			// The server holds the batch; its acknowledgement was lost.
			// The resend is rewritten the same and the server discards it.
			name: "batch sent, acknowledgement lost",
			before: []step{
				user,
				{"batch", masqC2S(1008, 5000, p5), got{Verdict: "accept-modified", Seq: 1008, Ack: 5000, Payload: p5w}},
			},
			wantLabels: ctstate.Adj{Pos: 1101, Delta: 3, After: 15, Span: 93, Lump: 12},
			after: []step{
				{"server retransmits its reply", masqS2C(5000, 1123, "200 ok\r\n"), got{Verdict: "accept-modified", Seq: 5000, Ack: 1108, Payload: "200 ok\r\n"}},
				{"batch resent", masqC2S(1008, 5008, p5), got{Verdict: "accept-modified", Seq: 1008, Ack: 5008, Payload: p5w}},
				{"next command", masqC2S(1118, 5008, "NOOP\r\n"), got{Verdict: "accept-modified", Seq: 1133, Ack: 5008, Payload: "NOOP\r\n"}},
			},
		},
		{
			// The server acknowledged segment A after B was rewritten:
			// the state is stored again before that acknowledgement
			// reaches the client, whose resend then starts at B.
			name:       "acknowledgement moves the span",
			before:     []step{user, segA, segB, ackA},
			wantLabels: ctstate.Adj{Pos: 1079, Delta: 3, After: 12, Span: 27, Lump: 3},
			after: []step{
				{"B resent", masqC2S(1052, 5008, b2), got{Verdict: "accept-modified", Seq: 1058, Ack: 5008, Payload: b2w}},
				{"B acknowledged", masqS2C(5008, 1108, "200 ok\r\n"), got{Verdict: "accept-modified", Seq: 5008, Ack: 1096, Payload: "200 ok\r\n"}},
			},
		},
		{
			// The server got A but not B, and its acknowledgement of A
			// lands where this run cannot tell the original position
			// yet: it is mapped back to the span's start (never beyond
			// what the server holds), and the client resends A and B.
			name:       "acknowledgement inside the unknown part",
			before:     []step{user, segA, segB},
			wantLabels: ctstate.Adj{Pos: 1079, Delta: 3, After: 12, Span: 71, Lump: 9},
			after: []step{
				{"server's ack of A: the span's start", masqS2C(5000, 1058, "200 ok\r\n"), got{Verdict: "accept-modified", Seq: 5000, Ack: 1008, Payload: "200 ok\r\n"}},
				{"B sent first: cannot be placed yet", masqC2S(1052, 5008, b2), got{Verdict: "drop"}},
				{"A and B resent", masqC2S(1008, 5008, a2+b2), got{Verdict: "accept-modified", Seq: 1008, Ack: 5008, Payload: a2w + b2w}},
				{"both acknowledged", masqS2C(5008, 1108, "200 ok\r\n"), got{Verdict: "accept-modified", Seq: 5008, Ack: 1096, Payload: "200 ok\r\n"}},
			},
			wantOOO: 1,
		},
		{
			// Everything was acknowledged to the client: it resends
			// nothing and goes on after the newest change.
			name:       "nothing to resend",
			before:     []step{user, segA, ackA},
			wantLabels: ctstate.Adj{Pos: 1035, Delta: 3, After: 6, Span: 27, Lump: 3},
			after: []step{
				{"next command", masqC2S(1052, 5008, "NOOP\r\n"), got{Verdict: "accept-modified", Seq: 1058, Ack: 5008, Payload: "NOOP\r\n"}},
				{"a PORT after it", masqC2S(1058, 5016, b2), got{Verdict: "accept-modified", Seq: 1064, Ack: 5016, Payload: b2w}},
			},
		},
		{
			// Resent with bytes the server acknowledged before the span:
			// those are the server's already, sent as they are below what
			// it holds; the span's rewrites are made again.
			name:       "resend from before the span",
			before:     []step{user, segA, segB, ackA},
			wantLabels: ctstate.Adj{Pos: 1079, Delta: 3, After: 12, Span: 27, Lump: 3},
			after: []step{
				// The client did not get the ack: it resends A and B. A's
				// PORTs pass as sent (stale), 6 bytes short, so B's
				// bytes land exactly where the server expects them.
				{"A and B resent", masqC2S(1008, 5000, a2+b2), got{Verdict: "accept-modified", Seq: 1014, Ack: 5000, Payload: a2 + b2w}},
				{"B acknowledged", masqS2C(5000, 1108, "200 ok\r\n"), got{Verdict: "accept-modified", Seq: 5000, Ack: 1096, Payload: "200 ok\r\n"}},
			},
			wantStale: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := masqLabelKernel()
			runSteps(t, newPersistEngine(k, &holdingHoles{}, nil).NewWorker(), tt.before)
			want := ctstate.State{Valid: [2]bool{true, false}, Dir: [2]ctstate.Adj{tt.wantLabels}}
			if diff := cmp.Diff(labelsOf(t, want), k.bindings[0].Labels); diff != "" {
				got, err := ctstate.Decode(k.bindings[0].Labels)
				t.Fatalf("stored labels (-want +got):\n%s\ndecoded: %+v %v", diff, got, err)
			}
			e := restarted(k, &holdingHoles{}, masqueradeBinding)
			runSteps(t, e.NewWorker(), tt.after)
			st := e.Stats()
			if st.RewritesStale != tt.wantStale || st.OutOfOrder != tt.wantOOO || st.Errors != 0 || st.StateErrors != 0 {
				t.Errorf("after the restart: rewrites_stale %d, out_of_order %d, errors %d, state_errors %d; want %d, %d, 0, 0",
					st.RewritesStale, st.OutOfOrder, st.Errors, st.StateErrors, tt.wantStale, tt.wantOOO)
			}
		})
	}
}

// TestSpanWriteAllocs: storing the span again when an acknowledgement moves
// it (the packet path of the server's acknowledgements) allocates nothing.
func TestSpanWriteAllocs(t *testing.T) {
	k := masqLabelKernel()
	e := newPersistEngine(k, &holdingHoles{}, nil)
	a3, _ := portLines(0, 3)
	w := e.NewWorker()
	w.Handle(build(t, masqC2S(1008, 5000, a3)))
	sess := e.Sessions()[0]
	p := e.persist
	other := ctstate.State{Valid: [2]bool{true, false}, Dir: [2]ctstate.Adj{{Pos: 1, Delta: 1, After: 1}}}
	now := e.now()
	writes := k.writes
	n := testing.AllocsPerRun(100, func() {
		p.mu.Lock()
		p.byID[sess.ID].state = other // so that the span differs and is written
		p.mu.Unlock()
		p.acked(sess, conntrack.DirOrig, 1, now)
	})
	if n != 0 {
		t.Errorf("%v allocs per span write, want 0", n)
	}
	if k.writes-writes < 100 {
		t.Errorf("%d writes, want one per run", k.writes-writes)
	}
}

// TestResumeAfterRestart: bytes the dead daemon let through are no gap for
// the restarted one. The server resends a reply the client had (its
// acknowledgement was lost in the restart), the client acknowledges all it
// has, and the server's next reply follows bytes this run never saw: read,
// not dropped as after a gap (which the server would never fill: the client
// holds those bytes, and TestLongActiveSession/restart hung so, the client
// waiting for the replies ftpct dropped).
func TestResumeAfterRestart(t *testing.T) {
	k := masqLabelKernel()
	port1 := "PORT 10,0,1,2,156,64\r\n"
	port1w := "PORT 203,0,113,1,156,64\r\n"
	runSteps(t, newPersistEngine(k, &holdingHoles{}, nil).NewWorker(), []step{
		{"user", masqC2S(1000, 5000, "USER a\r\n"), got{Verdict: "accept", Seq: 1000, Ack: 5000, Payload: "USER a\r\n"}},
		{"PORT rewritten", masqC2S(1008, 5000, port1), got{Verdict: "accept-modified", Seq: 1008, Ack: 5000, Payload: port1w}},
		{"reply 1", masqS2C(5000, 1033, "200 a\r\n"), got{Verdict: "accept-modified", Seq: 5000, Ack: 1030, Payload: "200 a\r\n"}},
		{"reply 2", masqS2C(5007, 1033, "200 b\r\n"), got{Verdict: "accept-modified", Seq: 5007, Ack: 1030, Payload: "200 b\r\n"}},
		{"reply 3", masqS2C(5014, 1033, "200 c\r\n"), got{Verdict: "accept-modified", Seq: 5014, Ack: 1030, Payload: "200 c\r\n"}},
	})
	e := restarted(k, &holdingHoles{}, masqueradeBinding)
	runSteps(t, e.NewWorker(), []step{
		{"reply 2 resent", masqS2C(5007, 1033, "200 b\r\n"), got{Verdict: "accept-modified", Seq: 5007, Ack: 1030, Payload: "200 b\r\n"}},
		{"client acknowledges all three", masqC2S(1030, 5021, ""), got{Verdict: "accept-modified", Seq: 1033, Ack: 5021}},
		{"reply 4 after reply 3, never seen by this run", masqS2C(5021, 1033, "200 d\r\n"), got{Verdict: "accept-modified", Seq: 5021, Ack: 1030, Payload: "200 d\r\n"}},
		{"a real gap still waits", masqS2C(5035, 1033, "200 f\r\n"), got{Verdict: "drop"}},
	})
	if st := e.Stats(); st.Resumed != 1 || st.OutOfOrder != 1 || st.Errors != 0 {
		t.Errorf("resumed %d, out_of_order %d, errors %d; want 1, 1, 0", st.Resumed, st.OutOfOrder, st.Errors)
	}
}
