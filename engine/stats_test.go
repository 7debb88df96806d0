package engine

import (
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ftpct/ftpct/counters"
)

func TestCounterDescriptions(t *testing.T) {
	descs := Counters()
	if err := counters.CheckAll(descs); err != nil {
		t.Fatal(err)
	}
	// The JSON names scripts use did not change.
	for _, name := range []string{"packets", "modified", "dropped", "not_tcp", "no_conntrack", "sessions", "sessions_open",
		"sessions_full", "lines", "commands", "malformed", "partial_lines", "held_lines", "line_overflow", "hold_abandoned",
		"held_carried", "rewrites", "rewrites_refused", "replays", "resends_completed", "out_of_order", "expect_created",
		"expect_used", "expect_expired", "expect_evicted", "expect_refused", "expect_pending", "tls_sessions", "errors"} {
		found := false
		for _, d := range descs {
			found = found || d.Name == name
		}
		if !found {
			t.Errorf("counter %q is gone", name)
		}
	}
	gauges := map[string]bool{}
	for _, d := range descs {
		if d.Kind == counters.Gauge {
			gauges[d.Name] = true
		}
	}
	if diff := cmp.Diff(map[string]bool{"sessions_open": true, "expect_pending": true, "watchers": true}, gauges); diff != "" {
		t.Errorf("gauges (-want +got):\n%s", diff)
	}
}

// Every counter of Stats reaches the snapshot and its values under its own name.
func TestSnapshotCopiesEveryCounter(t *testing.T) {
	e, _ := newTestEngine(masqueradeBinding)
	sv := reflect.ValueOf(&e.stats).Elem()
	want := counters.Values{}
	for i, d := range Counters() {
		v := uint64(0)
		if d.Kind == counters.Counter {
			v = uint64(1000 + i)
			sv.Field(i).Addr().Interface().(*atomic.Uint64).Store(v)
		}
		want = append(want, counters.Value{Desc: d, Value: v})
	}
	got := Values(e.Stats())
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("values (-want +got):\n%s", diff)
	}
	if e.Stats().Rewrites != sv.FieldByName("Rewrites").Addr().Interface().(*atomic.Uint64).Load() {
		t.Errorf("Snapshot.Rewrites does not mirror Stats.Rewrites")
	}
}

// Gauges are read from the engine's tables.
func TestSnapshotGauges(t *testing.T) {
	e, _ := newTestEngine(masqueradeBinding)
	w := e.NewWorker()
	w.Handle(build(t, masqC2S(1, 1, "PORT 10,0,1,2,156,64\r\n")))
	wt := e.Watch(1)
	defer wt.Close()
	st := e.Stats()
	got := map[string]uint64{}
	for _, v := range Values(st) {
		if v.Kind == counters.Gauge {
			got[v.Name] = v.Value
		}
	}
	if diff := cmp.Diff(map[string]uint64{"sessions_open": 1, "expect_pending": 1, "watchers": 1}, got); diff != "" {
		t.Errorf("gauges (-want +got):\n%s", diff)
	}
}
