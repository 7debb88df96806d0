package engine

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ftpct/ftpct/conntrack"
	"github.com/ftpct/ftpct/rules"
)

// fakeCommitter keeps what is submitted; the test commits it (as the
// committer's goroutine would) with commit.
type fakeCommitter struct {
	subs    []submitted
	stopped bool
	hurried int // Hurry calls
	// submitted counts Submits; covered is submitted at the last Hurry.
	submitted, covered int
}

func (c *fakeCommitter) Hurry() { c.hurried, c.covered = c.hurried+1, c.submitted }

type submitted struct {
	ops  []rules.Op
	done func(rules.Result)
}

func (c *fakeCommitter) Submit(done func(rules.Result), ops ...rules.Op) error {
	if c.stopped {
		return rules.ErrClosed
	}
	c.subs = append(c.subs, submitted{ops: append([]rules.Op(nil), ops...), done: done})
	c.submitted++
	return nil
}

// commit completes the oldest submission with r.
func (c *fakeCommitter) commit(t *testing.T, r rules.Result) {
	t.Helper()
	if len(c.subs) == 0 {
		t.Fatal("nothing submitted")
	}
	s := c.subs[0]
	c.subs = c.subs[1:]
	s.done(r)
}

// given is a decision given later, to the VerdictFunc.
type given struct {
	ID  uint64
	Got got
}

type deferredRig struct {
	e     *Engine
	w     *Worker
	c     *fakeCommitter
	in    map[uint64][]byte
	given []given
}

func newDeferredRig(t *testing.T, cfg Config) *deferredRig {
	r := &deferredRig{c: &fakeCommitter{}, in: map[uint64][]byte{}}
	r.e, _ = newTestEngine(masqueradeBinding)
	r.e.Reload(cfg)
	r.e.Defer(r.c, func(id uint64, d Decision, out []byte) {
		r.given = append(r.given, given{ID: id, Got: inspect(t, d, r.in[id], bytes.Clone(out))})
	})
	r.w = r.e.NewWorker()
	return r
}

// handle hands packet id to the worker; pending reports DecisionPending.
func (r *deferredRig) handle(t *testing.T, id uint64, s seg) (g got, pending bool) {
	t.Helper()
	r.in[id] = build(t, s)
	d, out := r.w.HandleID(id, r.in[id])
	if d == DecisionPending {
		return got{}, true
	}
	return inspect(t, d, r.in[id], out), false
}

func TestDeferredVerdicts(t *testing.T) {
	port1 := "PORT 10,0,1,2,156,64\r\n"     // 22 bytes
	port1w := "PORT 203,0,113,1,156,64\r\n" // 25 bytes: +3
	port2 := "PORT 10,0,1,2,156,65\r\n"     // 22 bytes
	port2w := "PORT 203,0,113,1,156,65\r\n" // 25 bytes: +3
	type packet struct {
		id      uint64
		in      seg
		pending bool // decided later
		want    got  // when decided at once
	}
	type commit struct {
		err       error
		wantOps   []rules.OpKind // of the submission committed
		wantGiven []given        // decisions given by this commit
	}
	tests := []struct {
		name     string
		cfg      Config
		stopped  bool // the committer no longer takes work
		packets  []packet
		commits  []commit
		want     map[string]uint64 // counters after the commits
		wantRefs int               // expectations pending at the end
	}{
		{
			name:    "announcement waits for its hole",
			packets: []packet{{id: 1, in: masqC2S(1016, 5008, port1), pending: true}},
			commits: []commit{{wantOps: []rules.OpKind{rules.OpOpen},
				wantGiven: []given{{1, got{Verdict: "accept-modified", Seq: 1016, Ack: 5008, Payload: port1w}}}}},
			want:     map[string]uint64{"expect_created": 1, "expect_refused": 0, "deferred": 1, "modified": 1},
			wantRefs: 1,
		},
		{
			name:    "failed commit refuses and passes the original",
			packets: []packet{{id: 1, in: masqC2S(1016, 5008, port1), pending: true}},
			commits: []commit{{err: errors.New("injected"), wantOps: []rules.OpKind{rules.OpOpen},
				wantGiven: []given{{1, got{Verdict: "accept", Seq: 1016, Ack: 5008, Payload: port1}}}}},
			want: map[string]uint64{"expect_created": 0, "expect_refused": 1, "errors": 1, "modified": 0},
		},
		{
			// The rewrite of the refused PORT was forgotten: the next
			// command is not shifted.
			name: "after a failed commit the flow is not shifted",
			packets: []packet{
				{id: 1, in: masqC2S(1016, 5008, port1), pending: true},
				{id: 2, in: masqC2S(1038, 5008, "LIST\r\n"), pending: true},
			},
			commits: []commit{{err: errors.New("injected"), wantOps: []rules.OpKind{rules.OpOpen},
				wantGiven: []given{
					{1, got{Verdict: "accept", Seq: 1016, Ack: 5008, Payload: port1}},
					{2, got{Verdict: "accept", Seq: 1038, Ack: 5008, Payload: "LIST\r\n"}},
				}}},
			want: map[string]uint64{"expect_refused": 1, "deferred": 2},
		},
		{
			// A later packet of the flow waits behind the announcement
			// and is sent after it, shifted by its rewrite; the other
			// direction is not held up.
			name: "flow order kept, other direction goes on",
			packets: []packet{
				{id: 1, in: masqC2S(1016, 5008, port1), pending: true},
				{id: 2, in: masqC2S(1038, 5008, "LIST\r\n"), pending: true},
				{id: 3, in: masqS2C(5008, 1016, "150 x\r\n"), want: got{Verdict: "accept", Seq: 5008, Ack: 1016, Payload: "150 x\r\n"}},
			},
			commits: []commit{{wantOps: []rules.OpKind{rules.OpOpen},
				wantGiven: []given{
					{1, got{Verdict: "accept-modified", Seq: 1016, Ack: 5008, Payload: port1w}},
					{2, got{Verdict: "accept-modified", Seq: 1041, Ack: 5008, Payload: "LIST\r\n"}},
				}}},
			want:     map[string]uint64{"expect_created": 1, "deferred": 2},
			wantRefs: 1,
		},
		{
			// A queued announcement waits for its own hole in turn; the
			// session's limit of one evicts the first hole in the
			// transaction that opens the second.
			name: "queued announcement waits in turn, eviction in its batch",
			cfg:  Config{PerSession: 1},
			packets: []packet{
				{id: 1, in: masqC2S(1016, 5008, port1), pending: true},
				{id: 2, in: masqC2S(1038, 5008, port2), pending: true},
			},
			commits: []commit{
				{wantOps: []rules.OpKind{rules.OpOpen},
					wantGiven: []given{{1, got{Verdict: "accept-modified", Seq: 1016, Ack: 5008, Payload: port1w}}}},
				{wantOps: []rules.OpKind{rules.OpClose, rules.OpOpen},
					wantGiven: []given{{2, got{Verdict: "accept-modified", Seq: 1041, Ack: 5008, Payload: port2w}}}},
			},
			want:     map[string]uint64{"expect_created": 2, "expect_evicted": 1, "deferred": 3},
			wantRefs: 1,
		},
		{
			// ftpct is stopping: dropped for its sender to retransmit
			// to the next daemon.
			name:     "committer stopped: refused and dropped at once",
			stopped:  true,
			packets:  []packet{{id: 1, in: masqC2S(1016, 5008, port1), want: got{Verdict: "drop"}}},
			want:     map[string]uint64{"expect_created": 0, "expect_refused": 1, "deferred": 0, "dropped": 1, "modified": 0},
			wantRefs: 0,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newDeferredRig(t, tc.cfg)
			r.c.stopped = tc.stopped
			for _, p := range tc.packets {
				g, pending := r.handle(t, p.id, p.in)
				if pending != p.pending {
					t.Fatalf("packet %d: pending %v, want %v", p.id, pending, p.pending)
				}
				if !pending {
					if diff := cmp.Diff(p.want, g); diff != "" {
						t.Fatalf("packet %d (-want +got):\n%s", p.id, diff)
					}
				}
				if r.c.covered != r.c.submitted {
					t.Fatalf("packet %d: submitted and waits, but the committer was not hurried", p.id)
				}
			}
			if len(r.given) != 0 {
				t.Fatalf("decisions given before any commit: %v", r.given)
			}
			for i, c := range tc.commits {
				var kinds []rules.OpKind
				if len(r.c.subs) > 0 {
					for _, op := range r.c.subs[0].ops {
						kinds = append(kinds, op.Kind)
					}
				}
				if diff := cmp.Diff(c.wantOps, kinds); diff != "" {
					t.Errorf("commit %d: operations (-want +got):\n%s", i, diff)
				}
				r.given = nil
				r.c.commit(t, rules.Result{Err: c.err})
				if r.c.covered != r.c.submitted {
					t.Errorf("commit %d: a packet that waited behind submitted without hurrying the committer", i)
				}
				if diff := cmp.Diff(c.wantGiven, r.given); diff != "" {
					t.Errorf("commit %d: decisions given (-want +got):\n%s", i, diff)
				}
			}
			if len(r.c.subs) != 0 {
				t.Errorf("%d submissions left uncommitted", len(r.c.subs))
			}
			vals := map[string]uint64{}
			for _, v := range Values(r.e.Stats()) {
				vals[v.Name] = v.Value
			}
			for k, want := range tc.want {
				if vals[k] != want {
					t.Errorf("%s = %d, want %d", k, vals[k], want)
				}
			}
			if got := len(r.e.Expectations()); got != tc.wantRefs {
				t.Errorf("%d expectations pending, want %d", got, tc.wantRefs)
			}
			if n := r.e.async.n.Load(); n != 0 {
				t.Errorf("%d flows still waiting", n)
			}
		})
	}
}

// Every path that takes an expectation out of the table with a hole to
// close hands its key back once the close is submitted (expect.Table.Closed):
// a key kept longer would move or refuse later announcements of its port.
func TestClosedKeysHandedBack(t *testing.T) {
	t.Run("announcements wait", func(t *testing.T) { testClosedKeysHandedBack(t, false) })
	t.Run("guarded", func(t *testing.T) { testClosedKeysHandedBack(t, true) })
}

func testClosedKeysHandedBack(t *testing.T, guarded bool) {
	r := newDeferredRig(t, Config{})
	if guarded {
		r.e.Guard([]uint16{21})
	}
	closing := func(step string) {
		t.Helper()
		if n := r.e.exps.Closing(); n != 0 {
			t.Errorf("after %s: %d keys still wait for their close", step, n)
		}
	}
	port := func(p int) string { return fmt.Sprintf("PORT 10,0,1,2,%d,%d\r\n", p>>8, p&0xff) }
	seq := uint32(1016)
	announce := func(p int) {
		t.Helper()
		// Guarded, the packet leaves at once (the test engine holds no
		// session first: it persists nothing).
		if _, pending := r.handle(t, uint64(p), masqC2S(seq, 5008, port(p))); !pending && !guarded {
			t.Fatalf("PORT %d decided at once, want it to wait for its hole", p)
		}
		seq += uint32(len(port(p)))
		r.c.commit(t, rules.Result{})
	}
	announce(40000)
	announce(40001) // evicts 40000: closed in the same submission
	closing("an eviction")
	r.e.DataConnection(conntrack.Binding{
		Orig:  conntrack.Tuple{Src: server, Dst: gwPublic, SrcPort: 20, DstPort: 40001},
		Reply: conntrack.Tuple{Src: client, Dst: server, SrcPort: 40001, DstPort: 20},
	})
	closing("a data connection (its DNAT mapping)")
	r.c.commit(t, rules.Result{})
	announce(40002)
	s, _, ok := r.e.sessions.Lookup(masqueradeBinding.Orig.Key())
	if !ok {
		t.Fatal("no session")
	}
	r.e.end(s)
	closing("the session's end")
	var kinds []rules.OpKind
	for _, sub := range r.c.subs {
		for _, op := range sub.ops {
			kinds = append(kinds, op.Kind)
		}
	}
	if diff := cmp.Diff([]rules.OpKind{rules.OpClose}, kinds); diff != "" {
		t.Errorf("submitted by the session's end (-want +got):\n%s", diff)
	}
}
