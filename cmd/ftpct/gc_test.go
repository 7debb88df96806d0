package main

import (
	"log/slog"
	"runtime/debug"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ftpct/ftpct/config"
)

// applyGC sets the collector from the settings unless the environment
// names a value; what it returns is what is in force.
func TestApplyGC(t *testing.T) {
	tests := []struct {
		name              string
		gogc, gomemlimit  string // environment
		percent           int
		limit             int64
		wantPercent       int
		wantLimit         int64
		wantText, wantMem string
	}{
		{name: "defaults", percent: config.DefaultGCPercent, wantPercent: config.DefaultGCPercent, wantLimit: noMemoryLimit, wantText: "50", wantMem: "0"},
		{name: "settings", percent: 25, limit: 256 << 20, wantPercent: 25, wantLimit: 256 << 20, wantText: "25", wantMem: "256MiB"},
		{name: "environment wins", gogc: "200", gomemlimit: "1GiB", percent: 25, limit: 256 << 20, wantPercent: -2, wantLimit: -2, wantText: "200", wantMem: "1GiB"},
	}
	oldPercent, oldLimit := debug.SetGCPercent(100), debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetGCPercent(oldPercent); debug.SetMemoryLimit(oldLimit) })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GOGC", tt.gogc)
			t.Setenv("GOMEMLIMIT", tt.gomemlimit)
			// A marker the environment cases must leave alone.
			debug.SetGCPercent(77)
			debug.SetMemoryLimit(77 << 20)
			if tt.wantPercent == -2 {
				tt.wantPercent, tt.wantLimit = 77, 77<<20
			}
			s := config.Defaults()
			s.GCPercent, s.MemoryLimit = tt.percent, tt.limit
			text, mem := applyGC(&s, slog.New(slog.DiscardHandler))
			percent := debug.SetGCPercent(100)
			limit := debug.SetMemoryLimit(-1)
			type state struct {
				Percent   int
				Limit     int64
				Text, Mem string
			}
			want := state{tt.wantPercent, tt.wantLimit, tt.wantText, tt.wantMem}
			got := state{percent, limit, text, mem}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
