package engine

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ftpct/ftpct/conntrack"
	"github.com/ftpct/ftpct/ctstate"
	"github.com/ftpct/ftpct/ftpparse"
	"github.com/ftpct/ftpct/rules"
)

// labelKernel is a fakeKernel that also keeps labels, as conntrack.Kernel
// does, and counts what it is asked.
type labelKernel struct {
	fakeKernel
	noRoom  bool // entries have no labels extension
	writes  int
	lookups int
}

func (k *labelKernel) Lookup(t conntrack.Tuple) (conntrack.Binding, error) {
	k.lookups++
	return k.fakeKernel.Lookup(t)
}

// SetResized makes the entry liberal also when it has no room for labels,
// as the kernel does (CTA_PROTOINFO is applied before CTA_LABELS).
func (k *labelKernel) SetResized(t conntrack.Tuple, l [conntrack.LabelsSize]byte) error {
	for i := range k.bindings {
		if k.bindings[i].Orig == t {
			k.bindings[i].Liberal = true
			if k.noRoom {
				return conntrack.ErrNoLabels
			}
			k.bindings[i].Labels = l
			k.writes++
			return nil
		}
	}
	return conntrack.ErrNoEntry
}

// holdingHoles is fakeHoles that also holds flows, as rules.Manager does.
type holdingHoles struct {
	fakeHoles
	held     map[rules.Flow]bool
	holdFail bool // Hold fails
}

func (h *holdingHoles) Hold(fs ...rules.Flow) error {
	if h.holdFail {
		return errors.New("injected hold failure")
	}
	if h.held == nil {
		h.held = map[rules.Flow]bool{}
	}
	for _, f := range fs {
		h.held[f] = true
	}
	return nil
}

func (h *holdingHoles) Release(fs ...rules.Flow) error {
	for _, f := range fs {
		delete(h.held, f)
	}
	return nil
}

func newPersistEngine(k *labelKernel, h *holdingHoles, log *bytes.Buffer) *Engine {
	cfg := Config{}
	if log != nil {
		cfg.Logger = slog.New(slog.NewTextHandler(log, nil))
	}
	e := New(cfg, k, h)
	e.Persist(k, h)
	e.now = func() time.Time { return time.Unix(1_700_000_000, 0) }
	return e
}

// masqLabelKernel is a kernel whose one entry is masqueradeBinding.
func masqLabelKernel() *labelKernel {
	return &labelKernel{fakeKernel: fakeKernel{bindings: []conntrack.Binding{masqueradeBinding}}}
}

// restarted is a new engine on k (the daemon restarted), holding in h,
// that adopted b's held flows as the daemon adopts what Reconcile kept.
func restarted(k *labelKernel, h *holdingHoles, b conntrack.Binding) *Engine {
	e := newPersistEngine(k, h, nil)
	e.Adopt(nil, []rules.Flow{ownerOf(b), flowOf(b.Reply)})
	return e
}

func labelsOf(t *testing.T, s ctstate.State) [conntrack.LabelsSize]byte {
	t.Helper()
	b, err := ctstate.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStateSurvivesRestart: the state a rewrite stores is what a new
// engine (a restarted daemon) needs to go on with the session: the
// retransmitted PORT is rewritten the same without counting its growth
// twice, and later segments and acks are mapped as before.
func TestStateSurvivesRestart(t *testing.T) {
	k := masqLabelKernel()
	h := &holdingHoles{}
	port1 := "PORT 10,0,1,2,156,64\r\n"     // 22 bytes
	port1w := "PORT 203,0,113,1,156,64\r\n" // 25 bytes: +3
	runSteps(t, newPersistEngine(k, h, nil).NewWorker(), []step{
		{"user", masqC2S(1000, 5000, "USER a\r\n"), got{Verdict: "accept", Seq: 1000, Ack: 5000, Payload: "USER a\r\n"}},
		{"PORT rewritten", masqC2S(1008, 5000, port1), got{Verdict: "accept-modified", Seq: 1008, Ack: 5000, Payload: port1w}},
		{"retransmitted", masqC2S(1008, 5000, port1), got{Verdict: "accept-modified", Seq: 1008, Ack: 5000, Payload: port1w}},
	})
	want := ctstate.State{Valid: [2]bool{true, false}, Dir: [2]ctstate.Adj{{Pos: 1013, Delta: 3, After: 3}}}
	if diff := cmp.Diff(labelsOf(t, want), k.bindings[0].Labels); diff != "" {
		t.Errorf("stored labels (-want +got):\n%s", diff)
	}
	if k.writes != 1 {
		t.Errorf("labels written %d times, want 1 (the retransmission changes nothing)", k.writes)
	}
	if !k.bindings[0].Liberal {
		t.Errorf("the resized connection's conntrack entry is not liberal")
	}
	reply := masqueradeBinding.Reply
	wantHeld := map[rules.Flow]bool{ownerOf(masqueradeBinding): true, flowOf(reply): true}
	if diff := cmp.Diff(wantHeld, h.held, cmp.Comparer(func(a, b rules.Flow) bool { return a == b })); diff != "" {
		t.Errorf("held flows (-want +got):\n%s", diff)
	}

	// A new engine: the daemon restarted. It learns the held session from
	// the kernel with its labels.
	h2 := &holdingHoles{} // a table made anew: nothing held
	e := restarted(k, h2, masqueradeBinding)
	if diff := cmp.Diff(wantHeld, h2.held, cmp.Comparer(func(a, b rules.Flow) bool { return a == b })); diff != "" {
		t.Errorf("held flows after the restore (-want +got):\n%s", diff)
	}
	runSteps(t, e.NewWorker(), []step{
		{"server's bare ack of the rewritten PORT mapped back", masqS2C(5000, 1033, ""), got{Verdict: "accept-modified", Seq: 5000, Ack: 1030}},
		{"PORT retransmitted after the restart: rewritten the same", masqC2S(1008, 5000, port1), got{Verdict: "accept-modified", Seq: 1008, Ack: 5000, Payload: port1w}},
		{"ack mapped back", masqS2C(5000, 1033, "200 ok\r\n"), got{Verdict: "accept-modified", Seq: 5000, Ack: 1030, Payload: "200 ok\r\n"}},
		{"next command shifted once", masqC2S(1030, 5008, "NOOP\r\n"), got{Verdict: "accept-modified", Seq: 1033, Ack: 5008, Payload: "NOOP\r\n"}},
		{"EPRT accumulates", masqC2S(1036, 5016, "EPRT |1|10.0.1.2|40002|\r\n"), got{Verdict: "accept-modified", Seq: 1039, Ack: 5016, Payload: "EPRT |1|203.0.113.1|40002|\r\n"}},
	})
	want = ctstate.State{Valid: [2]bool{true, false}, Dir: [2]ctstate.Adj{{Pos: 1041, Delta: 3, After: 6}}}
	if diff := cmp.Diff(labelsOf(t, want), k.bindings[0].Labels); diff != "" {
		t.Errorf("labels after the restart's rewrite (-want +got):\n%s", diff)
	}
	if st := e.Stats(); st.SessionsRestored != 1 || st.StateWrites != 1 {
		t.Errorf("persist stats %+v, want 1 restored, 1 write", st)
	}
}

// TestRestoreMakesLiberal: a restarted engine that learns a resized session
// whose conntrack entry is not liberal (a standby's entry: conntrackd
// replicates labels, not TCP flags) makes it liberal again with the same
// labels; an entry that is liberal already costs no write.
func TestRestoreMakesLiberal(t *testing.T) {
	st := ctstate.State{Valid: [2]bool{true, false}, Dir: [2]ctstate.Adj{{Pos: 1013, Delta: 3, After: 3}}}
	for _, tc := range []struct {
		name       string
		liberal    bool
		wantWrites int
	}{
		{name: "strict entry made liberal", liberal: false, wantWrites: 1},
		{name: "liberal entry left alone", liberal: true, wantWrites: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := masqueradeBinding
			b.Labels = labelsOf(t, st)
			b.Liberal = tc.liberal
			k := &labelKernel{fakeKernel: fakeKernel{bindings: []conntrack.Binding{b}}}
			e := restarted(k, &holdingHoles{}, b)
			if e.Stats().SessionsRestored != 1 {
				t.Fatalf("session not restored: %+v", e.Stats())
			}
			want := b
			want.Liberal = true
			if got := k.bindings[0]; got != want {
				t.Errorf("entry after the restore:\n got %+v\nwant %+v", got, want)
			}
			if k.writes != tc.wantWrites {
				t.Errorf("writes = %d, want %d", k.writes, tc.wantWrites)
			}
		})
	}
}

// TestUnreadableStatePassesUntouched: labels of another version are never
// read as state; the session passes untouched, with one log line, and the
// kernel is asked once.
func TestUnreadableStatePassesUntouched(t *testing.T) {
	b := masqueradeBinding
	b.Labels[0] = 0x2c // version 2
	k := &labelKernel{fakeKernel: fakeKernel{bindings: []conntrack.Binding{b}}}
	var log bytes.Buffer
	e := newPersistEngine(k, &holdingHoles{}, &log)
	port := "PORT 10,0,1,2,156,64\r\n"
	runSteps(t, e.NewWorker(), []step{
		{"PORT untouched", masqC2S(1000, 5000, port), got{Verdict: "accept", Seq: 1000, Ack: 5000, Payload: port}},
		{"again", masqC2S(1022, 5000, port), got{Verdict: "accept", Seq: 1022, Ack: 5000, Payload: port}},
		{"reply", masqS2C(5000, 1044, "200 ok\r\n"), got{Verdict: "accept", Seq: 5000, Ack: 1044, Payload: "200 ok\r\n"}},
	})
	if n := bytes.Count(log.Bytes(), []byte("cannot read")); n != 1 {
		t.Errorf("%d log lines about the unreadable state, want 1:\n%s", n, log.String())
	}
	if k.lookups != 1 || k.writes != 0 || k.bindings[0].Labels != b.Labels {
		t.Errorf("lookups %d writes %d labels %x; want 1, 0, unchanged", k.lookups, k.writes, k.bindings[0].Labels)
	}
	if st := e.Stats(); st.SessionsForeign != 1 {
		t.Errorf("sessions_foreign = %d, want 1", st.SessionsForeign)
	}
}

// TestUnpersistedSession: an entry without room for labels still gets its
// rewrites; it is counted and logged once.
func TestUnpersistedSession(t *testing.T) {
	k := &labelKernel{fakeKernel: fakeKernel{bindings: []conntrack.Binding{masqueradeBinding}}, noRoom: true}
	var log bytes.Buffer
	e := newPersistEngine(k, &holdingHoles{}, &log)
	runSteps(t, e.NewWorker(), []step{
		{"PORT rewritten", masqC2S(1000, 5000, "PORT 10,0,1,2,156,64\r\n"), got{Verdict: "accept-modified", Seq: 1000, Ack: 5000, Payload: "PORT 203,0,113,1,156,64\r\n"}},
		{"EPRT rewritten", masqC2S(1022, 5000, "EPRT |1|10.0.1.2|40002|\r\n"), got{Verdict: "accept-modified", Seq: 1025, Ack: 5000, Payload: "EPRT |1|203.0.113.1|40002|\r\n"}},
	})
	if st := e.Stats(); st.SessionsUnpersisted != 1 || st.StateErrors != 0 {
		t.Errorf("persist stats %+v, want 1 unpersisted, 0 errors", st)
	}
	if n := bytes.Count(log.Bytes(), []byte("cannot be persisted")); n != 1 {
		t.Errorf("%d log lines, want 1:\n%s", n, log.String())
	}
}

// TestRewriteOutOfStoredRange: a rewrite that would move the offset past
// what the labels hold is refused: no rewrite, no hole.
func TestRewriteOutOfStoredRange(t *testing.T) {
	b := masqueradeBinding
	b.Labels = labelsOf(t, ctstate.State{Valid: [2]bool{true, false}, Dir: [2]ctstate.Adj{{Pos: 900, Delta: 3, After: ctstate.MaxOffset - 1}}})
	k := &labelKernel{fakeKernel: fakeKernel{bindings: []conntrack.Binding{b}}}
	h := &holdingHoles{}
	e := newPersistEngine(k, h, nil)
	port := "PORT 10,0,1,2,156,64\r\n"
	const off = ctstate.MaxOffset - 1
	runSteps(t, e.NewWorker(), []step{
		{"PORT refused", masqC2S(1000, 5000, port), got{Verdict: "accept-modified", Seq: uint32(1000 + off), Ack: 5000, Payload: port}},
	})
	if len(h.open) != 0 {
		t.Errorf("holes %v, want none", h.open)
	}
	st := e.Stats()
	if st.RewritesOutOfRange != 1 {
		t.Errorf("rewrites_out_of_range = %d, want 1", st.RewritesOutOfRange)
	}
	if e.Stats().ExpectRefused != 1 {
		t.Errorf("expect_refused = %d, want 1", e.Stats().ExpectRefused)
	}
}

// TestAdoptHoles: a hole left by an earlier run becomes a pending
// expectation of its owner's session (a newer PORT evicts it); one whose
// owner the kernel does not track is closed.
func TestAdoptHoles(t *testing.T) {
	k := masqLabelKernel()
	h := &holdingHoles{}
	e := newPersistEngine(k, h, nil)
	left := rules.Hole{Peer: server, Addr: gwPublic, Port: 40001, To: netip.AddrPortFrom(client, 40001), Timeout: 90 * time.Second, Owner: ownerOf(masqueradeBinding)}
	gone := rules.Hole{Peer: server, Addr: gwPublic, Port: 40009, Timeout: time.Minute,
		Owner: rules.Flow{Src: netip.MustParseAddrPort("10.0.1.9:1"), Dst: netip.MustParseAddrPort("203.0.113.2:21")}}
	if n := e.Adopt([]rules.Hole{left, gone}, nil); n != 1 {
		t.Fatalf("Adopt took %d holes, want 1", n)
	}
	xs := e.Expectations()
	if len(xs) != 1 || xs[0].Port != 40001 || xs[0].Kind != ftpparse.KindPORT || !xs[0].Expires.Equal(e.now().Add(90*time.Second)) {
		t.Fatalf("expectations %+v, want the adopted PORT hole expiring in 90s", xs)
	}
	if len(h.closed) != 1 || !strings.Contains(h.closed[0], "40009") {
		t.Errorf("closed %v, want the hole whose owner is gone", h.closed)
	}
	runSteps(t, e.NewWorker(), []step{
		{"newer PORT", masqC2S(1000, 5000, "PORT 10,0,1,2,156,66\r\n"), got{Verdict: "accept-modified", Seq: 1000, Ack: 5000, Payload: "PORT 203,0,113,1,156,66\r\n"}},
	})
	if xs := e.Expectations(); len(xs) != 1 || xs[0].Port != 40002 {
		t.Errorf("expectations %+v, want only the newer PORT's", xs)
	}
	if e.Stats().ExpectEvicted != 1 {
		t.Errorf("expect_evicted = %d, want 1", e.Stats().ExpectEvicted)
	}
}

// TestResizeNeedsHold: the divert chains queue the bare acknowledgements of
// held flows only, so a packet that resizes a session's stream leaves
// rewritten only once the session is held; when holding fails it leaves as
// it came (the rewrite is forgotten), and the next resize tries again.
func TestResizeNeedsHold(t *testing.T) {
	k := masqLabelKernel()
	h := &holdingHoles{holdFail: true}
	e := newPersistEngine(k, h, nil)
	w := e.NewWorker()
	port1 := "PORT 10,0,1,2,156,64\r\n"
	port2, port2w := "PORT 10,0,1,2,156,65\r\n", "PORT 203,0,113,1,156,65\r\n"
	runSteps(t, w, []step{
		{"not held: sent as it came", masqC2S(1000, 5000, port1), got{Verdict: "accept", Seq: 1000, Ack: 5000, Payload: port1}},
		{"its ack needs no mapping", masqS2C(5000, 1022, "200 ok\r\n"), got{Verdict: "accept", Seq: 5000, Ack: 1022, Payload: "200 ok\r\n"}},
	})
	if len(h.held) != 0 || k.writes != 0 {
		t.Fatalf("held %v, %d label writes; want none", h.held, k.writes)
	}
	if st := e.Stats(); st.StateErrors != 1 || st.Errors != 1 {
		t.Errorf("state_errors %d errors %d, want 1 1", st.StateErrors, st.Errors)
	}
	h.holdFail = false
	runSteps(t, w, []step{
		{"held now: rewritten", masqC2S(1022, 5008, port2), got{Verdict: "accept-modified", Seq: 1022, Ack: 5008, Payload: port2w}},
		{"ack mapped back", masqS2C(5008, 1047, ""), got{Verdict: "accept-modified", Seq: 5008, Ack: 1044}},
	})
	if len(h.held) != 2 || k.writes != 1 {
		t.Errorf("held %v, %d label writes; want both directions held, 1 write", h.held, k.writes)
	}
}

// TestDeferredResizeNeedsHold: with holes committed off the packet path, a
// session's first resize is decided once its hole is committed, and its
// flows are held in the same transaction (then only its labels are
// written). If that transaction fails, the announcement is refused, its
// packet leaves as it came and the rewrite is forgotten.
func TestDeferredResizeNeedsHold(t *testing.T) {
	port1 := "PORT 10,0,1,2,156,64\r\n"
	port1w := "PORT 203,0,113,1,156,64\r\n"
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("fail=%v", fail), func(t *testing.T) {
			r := newDeferredRig(t, Config{})
			k := masqLabelKernel()
			h := &holdingHoles{holdFail: true} // a Hold of its own would fail
			r.e.Persist(k, h)
			if _, pending := r.handle(t, 1, masqC2S(1016, 5008, port1)); !pending {
				t.Fatal("the announcement did not wait for its hole")
			}
			var kinds []rules.OpKind
			for _, op := range r.c.subs[0].ops {
				kinds = append(kinds, op.Kind)
			}
			if diff := cmp.Diff([]rules.OpKind{rules.OpOpen, rules.OpHold, rules.OpHold}, kinds); diff != "" {
				t.Errorf("operations (-want +got):\n%s", diff)
			}
			var err error
			want := []given{{1, got{Verdict: "accept-modified", Seq: 1016, Ack: 5008, Payload: port1w}}}
			next := got{Verdict: "accept-modified", Seq: 1041, Ack: 5008, Payload: "LIST\r\n"}
			writes, refused := 1, uint64(0)
			if fail {
				err = errors.New("injected")
				want = []given{{1, got{Verdict: "accept", Seq: 1016, Ack: 5008, Payload: port1}}}
				next = got{Verdict: "accept", Seq: 1038, Ack: 5008, Payload: "LIST\r\n"}
				writes, refused = 0, 1
			}
			r.c.commit(t, rules.Result{Err: err})
			if diff := cmp.Diff(want, r.given); diff != "" {
				t.Errorf("decisions given (-want +got):\n%s", diff)
			}
			g, pending := r.handle(t, 2, masqC2S(1038, 5008, "LIST\r\n"))
			if diff := cmp.Diff(next, g); pending || diff != "" {
				t.Errorf("next command (pending %v) (-want +got):\n%s", pending, diff)
			}
			if st := r.e.Stats(); st.StateErrors != 0 || st.ExpectRefused != refused || k.writes != writes || len(h.held) != 0 {
				t.Errorf("state_errors %d expect_refused %d, %d label writes, held %v; want 0 %d %d none", st.StateErrors, st.ExpectRefused, k.writes, h.held, refused, writes)
			}
		})
	}
}
