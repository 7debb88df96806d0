package engine

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ftpct/ftpct/rules"
)

// guardSYN is the server's SYN of an active-mode data connection to the
// masqueraded client's announced port, as it arrives at the gateway.
func guardSYN(port uint16) seg {
	return seg{src: server, dst: gwPublic, sport: 20, dport: port, seq: 7, flags: "S"}
}

func newGuardRig(t *testing.T, cfg Config) *deferredRig {
	r := newDeferredRig(t, cfg)
	r.e.Guard([]uint16{21})
	return r
}

// handleMarked is handle that also reports Worker.Marked.
func (r *deferredRig) handleMarked(t *testing.T, id uint64, s seg) (got, bool, bool) {
	t.Helper()
	g, pending := r.handle(t, id, s)
	return g, pending, r.w.Marked()
}

func counterValues(e *Engine) map[string]uint64 {
	vals := map[string]uint64{}
	for _, v := range Values(e.Stats()) {
		vals[v.Name] = v.Value
	}
	return vals
}

func checkCounters(t *testing.T, e *Engine, want map[string]uint64) {
	t.Helper()
	got := counterValues(e)
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %d, want %d", k, got[k], w)
		}
	}
}

const (
	guardPort1  = "PORT 10,0,1,2,156,64\r\n"    // port 40000
	guardPort1w = "PORT 203,0,113,1,156,64\r\n" // +3
	guardPort2  = "PORT 10,0,1,2,156,65\r\n"    // port 40001
	guardPort2w = "PORT 203,0,113,1,156,65\r\n"
)

// TestGuardVerdicts: with the guard an announcement's packet leaves at
// once, marked, and its flow goes on; the SYN for its hole waits for the
// commit, other SYNs do not; a SYN after the commit does not.
func TestGuardVerdicts(t *testing.T) {
	for _, fail := range []bool{false, true} {
		name := "committed"
		if fail {
			name = "commit fails"
		}
		t.Run(name, func(t *testing.T) {
			r := newGuardRig(t, Config{})
			g, pending, marked := r.handleMarked(t, 1, masqC2S(1016, 5008, guardPort1))
			if diff := cmp.Diff(got{Verdict: "accept-modified", Seq: 1016, Ack: 5008, Payload: guardPort1w}, g); pending || !marked || diff != "" {
				t.Fatalf("announcement: pending %v, marked %v, want a marked verdict at once (-want +got):\n%s", pending, marked, diff)
			}
			g, pending, marked = r.handleMarked(t, 2, masqC2S(1038, 5008, "LIST\r\n"))
			if diff := cmp.Diff(got{Verdict: "accept-modified", Seq: 1041, Ack: 5008, Payload: "LIST\r\n"}, g); pending || marked || diff != "" {
				t.Fatalf("next command: pending %v, marked %v, want it shifted at once (-want +got):\n%s", pending, marked, diff)
			}
			if r.c.hurried != 0 {
				t.Fatalf("the committer was hurried %d times before a packet waited", r.c.hurried)
			}
			if _, pending, marked := r.handleMarked(t, 3, guardSYN(40000)); !pending || marked {
				t.Fatalf("SYN for the uncommitted hole: pending %v, marked %v; want pending", pending, marked)
			}
			if r.c.hurried != 1 {
				t.Fatalf("the waiting SYN hurried the committer %d times, want 1", r.c.hurried)
			}
			g, pending = r.handle(t, 4, guardSYN(40001))
			if diff := cmp.Diff(got{Verdict: "accept", Seq: 7}, g); pending || diff != "" {
				t.Fatalf("SYN for no hole: pending %v (-want +got):\n%s", pending, diff)
			}
			if r.c.hurried != 1 {
				t.Fatalf("a SYN that did not wait hurried the committer (%d Hurry calls, want 1)", r.c.hurried)
			}
			if len(r.given) != 0 {
				t.Fatalf("decisions given before the commit: %v", r.given)
			}
			var err error
			if fail {
				err = errors.New("injected")
			}
			r.c.commit(t, rules.Result{Err: err})
			if diff := cmp.Diff([]given{{3, got{Verdict: "accept", Seq: 7}}}, r.given); diff != "" {
				t.Errorf("decisions given by the commit (-want +got):\n%s", diff)
			}
			g, pending = r.handle(t, 5, guardSYN(40000))
			if diff := cmp.Diff(got{Verdict: "accept", Seq: 7}, g); pending || diff != "" {
				t.Errorf("SYN after the commit: pending %v (-want +got):\n%s", pending, diff)
			}
			want := map[string]uint64{"guarded": 1, "guard_syns": 3, "guard_waits": 1, "deferred": 0, "expect_created": 1, "expect_refused": 0, "errors": 0}
			wantExps := 1
			if fail {
				want["expect_created"], want["expect_refused"], want["errors"] = 0, 1, 1
				wantExps = 0
			}
			checkCounters(t, r.e, want)
			if n := len(r.e.Expectations()); n != wantExps {
				t.Errorf("%d expectations pending, want %d", n, wantExps)
			}
			if n := len(r.e.async.guard.holes); n != 0 {
				t.Errorf("%d holes left in the guard's registry", n)
			}
		})
	}
}

// TestGuardStoppedCommitter: when the committer stopped, the announcement
// is refused and dropped as without the guard, and registers no hole.
func TestGuardStoppedCommitter(t *testing.T) {
	r := newGuardRig(t, Config{})
	r.c.stopped = true
	g, pending, marked := r.handleMarked(t, 1, masqC2S(1016, 5008, guardPort1))
	if diff := cmp.Diff(got{Verdict: "drop"}, g); pending || marked || diff != "" {
		t.Errorf("pending %v, marked %v (-want +got):\n%s", pending, marked, diff)
	}
	if _, pending := r.handle(t, 2, guardSYN(40000)); pending {
		t.Error("SYN waits for a hole never submitted")
	}
	checkCounters(t, r.e, map[string]uint64{"expect_refused": 1, "dropped": 1, "guarded": 0})
}

// TestGuardFirstResizeWaits: a session's first resize still waits for its
// commit (its session is held before it leaves), and so does a packet that
// waited behind it, decided by the committer's goroutine, which cannot mark;
// the next announcement of the held session is guarded.
func TestGuardFirstResizeWaits(t *testing.T) {
	r := newGuardRig(t, Config{})
	k := masqLabelKernel()
	h := &holdingHoles{}
	r.e.Persist(k, h)
	if _, pending, marked := r.handleMarked(t, 1, masqC2S(1016, 5008, guardPort1)); !pending || marked {
		t.Fatalf("first resize: pending %v, marked %v; want pending", pending, marked)
	}
	if _, pending := r.handle(t, 2, masqC2S(1038, 5008, guardPort2)); !pending {
		t.Fatal("second announcement did not wait behind the first")
	}
	var kinds []rules.OpKind
	for _, op := range r.c.subs[0].ops {
		kinds = append(kinds, op.Kind)
	}
	if diff := cmp.Diff([]rules.OpKind{rules.OpOpen, rules.OpHold, rules.OpHold}, kinds); diff != "" {
		t.Errorf("first submission: the session is not held with its hole (-want +got):\n%s", diff)
	}
	r.c.commit(t, rules.Result{})
	if diff := cmp.Diff([]given{{1, got{Verdict: "accept-modified", Seq: 1016, Ack: 5008, Payload: guardPort1w}}}, r.given); diff != "" {
		t.Fatalf("first commit (-want +got):\n%s", diff)
	}
	if len(h.held) != 0 || k.writes != 1 {
		t.Fatalf("held by a transaction of its own %v, %d label writes; want none, 1", h.held, k.writes)
	}
	r.given = nil
	r.c.commit(t, rules.Result{})
	if diff := cmp.Diff([]given{{2, got{Verdict: "accept-modified", Seq: 1041, Ack: 5008, Payload: guardPort2w}}}, r.given); diff != "" {
		t.Fatalf("second commit (-want +got):\n%s", diff)
	}
	g, pending, marked := r.handleMarked(t, 3, masqC2S(1060, 5008, guardPort1))
	if diff := cmp.Diff(got{Verdict: "accept-modified", Seq: 1066, Ack: 5008, Payload: guardPort1w}, g); pending || !marked || diff != "" {
		t.Errorf("announcement of a held session: pending %v, marked %v (-want +got):\n%s", pending, marked, diff)
	}
	r.c.commit(t, rules.Result{})
	checkCounters(t, r.e, map[string]uint64{"guarded": 1, "deferred": 3, "expect_created": 3, "first_resizes_by_commit": 1, "first_resizes_in_path": 0})
}

// TestGuardAllocs: the guard's checks allocate nothing: a SYN for no hole
// and a command of a guarded session.
func TestGuardAllocs(t *testing.T) {
	r := newGuardRig(t, Config{})
	if _, pending, _ := r.handleMarked(t, 1, masqC2S(1016, 5008, guardPort1)); pending {
		t.Fatal("announcement pending")
	}
	r.c.commit(t, rules.Result{})
	syn := build(t, guardSYN(40005))
	noop := build(t, masqC2S(1038, 5008, "NOOP\r\n"))
	for name, pkt := range map[string][]byte{"syn": syn, "noop": noop} {
		if n := testing.AllocsPerRun(200, func() { r.w.HandleID(9, pkt) }); n != 0 {
			t.Errorf("%s: %v allocs per packet, want 0", name, n)
		}
	}
}

// TestGuardRegistryShrinks: after a burst of uncommitted holes, the
// emptied registry is made again (Go maps keep their room).
func TestGuardRegistryShrinks(t *testing.T) {
	g := &guard{holes: map[guardKey]*uncommitted{}}
	var keys [][]guardKey
	for i := range 2 * guardShrink {
		h := rules.Hole{Peer: server, Addr: gwPublic, Port: uint16(2000 + i)}
		keys = append(keys, g.submit([]rules.Op{{Kind: rules.OpOpen, Hole: h}}))
	}
	if g.peak != 2*guardShrink {
		t.Fatalf("peak %d, want %d", g.peak, 2*guardShrink)
	}
	before := g.holes
	for i, k := range keys {
		g.done(k)
		if i < len(keys)-1 && len(g.holes) == 0 {
			t.Fatalf("registry empty after %d of %d", i+1, len(keys))
		}
	}
	if g.peak != 0 || len(g.holes) != 0 {
		t.Errorf("peak %d, %d holes after all were committed, want 0 0", g.peak, len(g.holes))
	}
	before[guardKey{}] = nil // the old map is no longer the registry
	if _, ok := g.holes[guardKey{}]; ok {
		t.Error("the registry was not made again")
	}
}

// TestGuardBacklog: an announcement that finds the committer guardBacklog
// holes behind waits for its commit (deferred, not marked), so a starved
// committer's backlog stays bounded; once the backlog is committed, the
// next announcement is guarded again.
func TestGuardBacklog(t *testing.T) {
	r := newGuardRig(t, Config{})
	g := r.e.async.guard
	var behind [][]guardKey
	for i := range guardBacklog {
		h := rules.Hole{Peer: server, Addr: gwPublic, Port: uint16(2000 + i)}
		behind = append(behind, g.submit([]rules.Op{{Kind: rules.OpOpen, Hole: h}}))
	}
	if _, pending, marked := r.handleMarked(t, 1, masqC2S(1016, 5008, guardPort1)); !pending || marked {
		t.Fatalf("announcement behind a full backlog: pending %v, marked %v; want pending, not marked", pending, marked)
	}
	if r.c.hurried != 1 {
		t.Errorf("the waiting announcement hurried the committer %d times, want 1", r.c.hurried)
	}
	checkCounters(t, r.e, map[string]uint64{"guarded": 0, "deferred": 1})
	for _, k := range behind {
		g.done(k)
	}
	r.c.commit(t, rules.Result{})
	if diff := cmp.Diff([]given{{1, got{Verdict: "accept-modified", Seq: 1016, Ack: 5008, Payload: guardPort1w}}}, r.given); diff != "" {
		t.Fatalf("decision given by the commit (-want +got):\n%s", diff)
	}
	if _, pending, marked := r.handleMarked(t, 2, masqC2S(1038, 5008, guardPort2)); pending || !marked {
		t.Errorf("announcement after the backlog was committed: pending %v, marked %v; want guarded", pending, marked)
	}
	checkCounters(t, r.e, map[string]uint64{"guarded": 1, "deferred": 1, "expect_created": 1, "errors": 0})
}
