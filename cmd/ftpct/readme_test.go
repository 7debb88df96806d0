package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ftpct/ftpct/counters"
	"github.com/ftpct/ftpct/metrics"
)

var update = flag.Bool("update", false, "rewrite README.md's generated blocks: the counter table, the rules")

const (
	readmeBegin = "<!-- counters: generated from the definitions by `go test ./cmd/ftpct -run TestREADMECounters -update`; do not edit -->\n"
	readmeEnd   = "<!-- end of counters -->\n"
)

// countersTable is README.md's table of every value `ftpct stats` and
// /metrics show, made from their one definition.
func countersTable() string {
	var b strings.Builder
	b.WriteString("| `ftpct stats` | Prometheus | type | meaning |\n|---|---|---|---|\n")
	for _, d := range counterDescs() {
		fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s |\n", d.Name, d.Metric(), d.Kind, d.Help)
	}
	for _, d := range metrics.Docs() {
		name := "`" + d.Metric + "`"
		if d.Label != "" {
			name = "`" + d.Metric + "{" + d.Label + "}`"
		}
		fmt.Fprintf(&b, "| | %s | %s | %s |\n", name, d.Type, d.Help)
	}
	return b.String()
}

// The README's counter table is the definitions' (run with -update after
// changing one).
func TestREADMECounters(t *testing.T) {
	if err := counters.CheckAll(counterDescs()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "README.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i := strings.Index(readme, readmeBegin)
	j := strings.Index(readme, readmeEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the generated counter table between\n%s...\n%s", readmeBegin, readmeEnd)
	}
	got := readme[i+len(readmeBegin) : j]
	want := countersTable()
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(readme[:i+len(readmeBegin)]+want+readme[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's counter table differs from the definitions; run go test ./cmd/ftpct -run TestREADMECounters -update (-README +definitions):\n%s",
		cmp.Diff(got, want))
}
