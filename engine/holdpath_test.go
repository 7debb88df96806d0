package engine

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ftpct/ftpct/conntrack"
	"github.com/ftpct/ftpct/rules"
)

// holdRig is a guard rig holding first resizes in the packet path, with
// persistence: k counts label writes, h the flows held by a commit.
type holdRig struct {
	*deferredRig
	k *labelKernel
	h *holdingHoles
}

func newHoldRig(t *testing.T) *holdRig {
	r := &holdRig{deferredRig: newGuardRig(t, Config{}),
		k: &labelKernel{fakeKernel: fakeKernel{bindings: []conntrack.Binding{masqueradeBinding}}}, h: &holdingHoles{}}
	r.e.Persist(r.k, r.h)
	r.e.HoldInPath()
	return r
}

// passed is what the caller sees of one packet's decision.
type passed struct {
	Got    got
	Marked bool // the guard's mark
	Held   bool // the hold mark
	// Early counts decisions of other packets given while this one's,
	// given at once, was not in line yet: they would leave before it.
	Early int
}

// pass hands packet id to the worker, queued with the hold mark when held;
// a packet id already handled is handed again as it was built then (the
// kernel's second pass).
func (r *holdRig) pass(t *testing.T, id uint64, s seg, held bool) passed {
	t.Helper()
	if r.in[id] == nil {
		r.in[id] = build(t, s)
	}
	n := len(r.given)
	d, out := r.w.HandleMarked(id, r.in[id], held)
	p := passed{Marked: r.w.Marked(), Held: r.w.Held()}
	switch d {
	case DecisionPending, DecisionRepeat:
		p.Got = got{Verdict: d.String()}
	default:
		p.Got = inspect(t, d, r.in[id], out)
		p.Early = len(r.given) - n
	}
	r.w.Decided() // its verdict is in line, as the queue calls it
	return p
}

func opKinds(ops []rules.Op) []rules.OpKind {
	var kinds []rules.OpKind
	for _, op := range ops {
		kinds = append(kinds, op.Kind)
	}
	return kinds
}

// TestHoldInPath: a session's first resize goes back to the kernel
// (DecisionRepeat, unmodified) with no hold submitted and no labels
// written; at its second pass, with the hold mark, its labels are written
// before its verdict, which is the rewrite, with the guard's and the hold
// mark, and nothing is held by a commit. The packets around it: a later
// one of its flow waits behind it and is decided once the second pass's
// verdict is in line (Decided), never before it (Early); a
// retransmission before the second pass goes back too; a marked packet
// with no decision kept (a restart between the passes) is decided afresh,
// held; a marked packet dropped leaves the session not held.
func TestHoldInPath(t *testing.T) {
	type step struct {
		id   uint64
		in   seg
		held bool // queued with the hold mark
		want passed
		// label writes and submissions after it, when checked (>= 0)
		writes, subs int
	}
	repeat := passed{Got: got{Verdict: "repeat"}}
	rewritten := passed{Got: got{Verdict: "accept-modified", Seq: 1016, Ack: 5008, Payload: guardPort1w}, Marked: true, Held: true}
	tests := []struct {
		name      string
		steps     []step
		wantGiven []given // decisions given to the VerdictFunc
		wantCount map[string]uint64
	}{
		{
			name: "repeat, then the second pass",
			steps: []step{
				{id: 1, in: masqC2S(1016, 5008, guardPort1), want: repeat, writes: 0, subs: 1},
				{id: 1, held: true, want: rewritten, writes: 1, subs: 1},
				// Held now: the next command is shifted at once, unmarked.
				{id: 2, in: masqC2S(1038, 5008, "LIST\r\n"), want: passed{Got: got{Verdict: "accept-modified", Seq: 1041, Ack: 5008, Payload: "LIST\r\n"}}, writes: -1, subs: 1},
				// So is the next announcement: guarded.
				{id: 3, in: masqC2S(1044, 5008, guardPort2), want: passed{Got: got{Verdict: "accept-modified", Seq: 1047, Ack: 5008, Payload: guardPort2w}, Marked: true}, writes: -1, subs: 2},
			},
			wantCount: map[string]uint64{"first_resizes_in_path": 1, "first_resizes_by_commit": 0, "guarded": 2, "deferred": 0, "state_errors": 0},
		},
		{
			name: "a later packet waits behind it",
			steps: []step{
				{id: 1, in: masqC2S(1016, 5008, guardPort1), want: repeat, writes: 0, subs: 1},
				{id: 2, in: masqC2S(1038, 5008, "LIST\r\n"), want: passed{Got: got{Verdict: "pending"}}, writes: 0, subs: 1},
				{id: 1, held: true, want: rewritten, writes: 1, subs: 1},
			},
			wantGiven: []given{{2, got{Verdict: "accept-modified", Seq: 1041, Ack: 5008, Payload: "LIST\r\n"}}},
			wantCount: map[string]uint64{"first_resizes_in_path": 1, "deferred": 1},
		},
		{
			name: "a retransmission goes back too; the later pass is a resend",
			steps: []step{
				{id: 1, in: masqC2S(1016, 5008, guardPort1), want: repeat, writes: 0, subs: 1},
				{id: 2, in: masqC2S(1016, 5008, guardPort1), want: repeat, writes: 0, subs: 1},
				// Its bytes are the packet's: the kept decision.
				{id: 2, held: true, want: rewritten, writes: 1, subs: 1},
				// No decision kept: decided afresh, held.
				{id: 1, held: true, want: passed{Got: rewritten.Got, Held: true}, writes: -1, subs: 1},
			},
			wantCount: map[string]uint64{"first_resizes_in_path": 1, "replays": 1},
		},
		{
			// The first resize is the line's rest, sent with the held
			// beginning put in front (from sequence 1016, not 1018): its
			// second pass is recognised by the sequence number it came
			// with.
			name: "a split command: held bytes put in front",
			steps: []step{
				{id: 1, in: masqC2S(1016, 5008, "PO"), want: passed{Got: got{Verdict: "accept-modified", Seq: 1016, Ack: 5008}}, writes: 0, subs: 0},
				{id: 2, in: masqC2S(1018, 5008, guardPort1[2:]), want: repeat, writes: 0, subs: 1},
				{id: 2, held: true, want: rewritten, writes: 1, subs: 1},
			},
			wantCount: map[string]uint64{"first_resizes_in_path": 1, "held_lines": 1, "deferred": 0},
		},
		{
			name: "second pass after a restart",
			steps: []step{
				{id: 1, in: masqC2S(1016, 5008, guardPort1), held: true, want: rewritten, writes: 1, subs: 1},
				{id: 2, in: masqC2S(1038, 5008, "LIST\r\n"), want: passed{Got: got{Verdict: "accept-modified", Seq: 1041, Ack: 5008, Payload: "LIST\r\n"}}, writes: -1, subs: 1},
			},
			wantCount: map[string]uint64{"first_resizes_in_path": 0, "guarded": 1},
		},
		{
			name: "a marked packet dropped leaves the session not held",
			steps: []step{
				{id: 1, in: masqC2S(1010, 5008, "NOOP\r\n"), want: passed{Got: got{Verdict: "accept", Seq: 1010, Ack: 5008, Payload: "NOOP\r\n"}}, writes: 0, subs: 0},
				// Out of order (a gap before it): dropped.
				{id: 2, in: masqC2S(1100, 5008, "NOOP\r\n"), held: true, want: passed{Got: got{Verdict: "drop"}}, writes: 0, subs: 0},
				{id: 3, in: masqC2S(1016, 5008, guardPort1), want: repeat, writes: 0, subs: 1},
				{id: 3, held: true, want: rewritten, writes: 1, subs: 1},
			},
			wantCount: map[string]uint64{"first_resizes_in_path": 1, "out_of_order": 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newHoldRig(t)
			for i, st := range tc.steps {
				if diff := cmp.Diff(st.want, r.pass(t, st.id, st.in, st.held)); diff != "" {
					t.Fatalf("step %d (packet %d, held %v) (-want +got):\n%s", i, st.id, st.held, diff)
				}
				if st.writes >= 0 && r.k.writes != st.writes {
					t.Fatalf("step %d: %d label writes, want %d", i, r.k.writes, st.writes)
				}
				if len(r.c.subs) != st.subs {
					t.Fatalf("step %d: %d submissions, want %d", i, len(r.c.subs), st.subs)
				}
			}
			for i, s := range r.c.subs {
				for _, k := range opKinds(s.ops) {
					if k == rules.OpHold {
						t.Errorf("submission %d holds flows: %v", i, opKinds(s.ops))
					}
				}
			}
			if len(r.h.held) != 0 {
				t.Errorf("flows held outside the packet path: %v", r.h.held)
			}
			if diff := cmp.Diff(tc.wantGiven, r.given); diff != "" {
				t.Errorf("decisions given later (-want +got):\n%s", diff)
			}
			checkCounters(t, r.e, tc.wantCount)
			if n := len(r.e.async.flows); n != 0 {
				t.Errorf("%d flows still waiting", n)
			}
		})
	}
}

// TestHoldInPathSessionEnds: a session that ends while its first resize
// waits for its second pass takes the kept decision with it, and the
// packets that waited behind it are dropped.
func TestHoldInPathSessionEnds(t *testing.T) {
	r := newHoldRig(t)
	if p := r.pass(t, 1, masqC2S(1016, 5008, guardPort1), false); p.Got.Verdict != "repeat" {
		t.Fatalf("first resize: %v, want repeat", p.Got)
	}
	if p := r.pass(t, 2, masqC2S(1038, 5008, "LIST\r\n"), false); p.Got.Verdict != "pending" {
		t.Fatalf("later packet: %v, want pending", p.Got)
	}
	sessions := r.e.sessions.Sessions(nil)
	if len(sessions) != 1 {
		t.Fatalf("%d sessions, want 1", len(sessions))
	}
	if !r.e.end(sessions[0]) {
		t.Fatal("session not ended")
	}
	if diff := cmp.Diff([]given{{2, got{Verdict: "drop"}}}, r.given); diff != "" {
		t.Errorf("decisions given (-want +got):\n%s", diff)
	}
	if n := len(r.e.async.flows); n != 0 {
		t.Errorf("%d flows still waiting", n)
	}
}
