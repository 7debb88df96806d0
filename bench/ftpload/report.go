package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// percentile returns the p-th percentile (nearest rank) of ds; 0 if empty.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// median of vs (mean of the middle two for an even count); NaN if empty.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// row is one line of the report: a metric, how to label it, and whether it is
// a latency to show as an added delay over the no-helper run.
type row struct {
	metric string
	label  string
	added  bool // also print (variant - none) / 2: per diverted packet of a round trip
}

var rows = []row{
	{"storm.storm_port_per_s", "announcement storm: PORT/s", false},
	{"storm.helper_cpu_us_per_port", "CPU of the helper's process per PORT of the storm (µs)", false},
	{"conc.sessions_per_s", "concurrent active-mode sessions: sessions/s", false},
	{"conc.session_p50_ms", "concurrent sessions: session time p50 (ms)", false},
	{"conc.session_p99_ms", "concurrent sessions: session time p99 (ms)", false},
	{"conc.helper_cpu_us_per_session", "CPU of the helper's process per concurrent session (µs)", false},
	{"serial.session_p50_ms", "one session at a time: p50 (ms)", false},
	{"serial.session_p99_ms", "one session at a time: p99 (ms)", false},
	{"serial.helper_cpu_us_per_session", "CPU of the helper's process per session, one at a time (µs)", false},
	{"noop.noop_p50_us", "NOOP round trip under load: p50 (µs)", true},
	{"noop.noop_p99_us", "NOOP round trip under load: p99 (µs)", true},
	{"noop.noop_per_s", "NOOP round trips/s (the load)", false},
	{"noop.helper_cpu_us_per_rt", "CPU of the helper's process per NOOP round trip (µs)", false},
	{"reuse.sessions_ok", "check: sessions from one reused client port that worked (of 3)", false},
	{"mem.rss_base_kib", "ftpct resident memory, no sessions (KiB)", false},
	{"mem.rss_loaded_kib", "ftpct resident memory, idle sessions held (KiB)", false},
	{"mem.rss_per_session_bytes", "ftpct resident memory per idle session (bytes)", false},
	{"mem.idle_usable", "idle sessions still answering NOOP", false},
	{"queue.packets", "packets bench/qaccept accepted (queue only; kernel + queue)", false},
}

// column is one variant of bench/sidebyside.sh in the report.
type column struct {
	variant  string
	head     string // in the table's head
	short    string // in "Every round"
	optional bool   // shown only when measured
}

var columns = []column{
	{"kernel", "kernel helper", "kernel", false},
	{"ftpct", "ftpct", "ftpct", false},
	{"kqueue", "kernel helper + queue (NFQUEUE ceiling, sessions)", "kernel + queue", true},
	{"kqmin", "kernel helper + queue at ftpct's fewest crossings (bound for ftpct)", "kernel + queue (min)", true},
	{"queue", "queue only (NFQUEUE ceiling)", "queue only", false},
	{"none", "no helper (ceiling)", "none", false},
	{"base", "ftpct, base build", "base build", true},
}

// ratios are the columns of ratios, each shown when both its variants are
// columns.
var ratios = [][2]string{
	{"ftpct", "kernel"}, {"ftpct", "queue"},
	{"kqueue", "kernel"}, {"ftpct", "kqueue"},
	{"kqmin", "kernel"}, {"ftpct", "kqmin"},
	{"ftpct", "base"},
}

// columnHead names a variant in a ratio's head.
func columnHead(v string) string {
	switch v {
	case "queue":
		return "queue only"
	case "kqueue":
		return "kernel + queue"
	case "kqmin":
		return "kernel + queue (min)"
	case "base":
		return "base build"
	}
	return v
}

// sample is one measured value: "round variant metric value".
type sample struct {
	round   string
	variant string
	metric  string
	value   float64
}

func readSamples(r io.Reader) ([]sample, error) {
	var out []sample
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) != 4 {
			return nil, fmt.Errorf("line %d: want \"round variant metric value\": %q", n, sc.Text())
		}
		v, err := strconv.ParseFloat(f[3], 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, sample{f[0], f[1], f[2], v})
	}
	return out, sc.Err()
}

// report writes the medians over rounds as a markdown table, then every
// round's values.
func report(w io.Writer, samples []sample) {
	vals := map[[2]string][]float64{} // metric, variant
	seen := map[string]bool{}
	for _, s := range samples {
		k := [2]string{s.metric, s.variant}
		vals[k] = append(vals[k], s.value)
		seen[s.metric] = true
	}
	med := func(metric, variant string) float64 { return median(vals[[2]string{metric, variant}]) }
	all := slices.Clone(rows)
	var extra []string
	for m := range seen {
		if !slices.ContainsFunc(rows, func(r row) bool { return r.metric == m }) {
			extra = append(extra, m)
		}
	}
	slices.Sort(extra)
	for _, m := range extra {
		all = append(all, row{metric: m, label: m})
	}
	// The kernel helper with the queue (sidebyside.sh's kqueue and kqmin) and an
	// ftpct of another build (its FTPCT_BASE) get their own columns and
	// ratios when they were measured.
	measured := func(v string) bool {
		return slices.ContainsFunc(samples, func(s sample) bool { return s.variant == v })
	}
	var cols []column
	for _, c := range columns {
		if !c.optional || measured(c.variant) {
			cols = append(cols, c)
		}
	}
	var rs [][2]string // numerator, denominator
	for _, r := range ratios {
		if slices.ContainsFunc(cols, func(c column) bool { return c.variant == r[0] }) &&
			slices.ContainsFunc(cols, func(c column) bool { return c.variant == r[1] }) {
			rs = append(rs, r)
		}
	}
	head, sep := "| load (median of rounds) |", "|---|"
	for _, c := range cols {
		head, sep = head+" "+c.head+" |", sep+"---|"
	}
	for _, r := range rs {
		head, sep = head+" "+columnHead(r[0])+" / "+columnHead(r[1])+" |", sep+"---|"
	}
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, sep)
	// line writes one row: the value of each column (off subtracted and
	// halved when added), then the ratios (of the values less off).
	line := func(label, metric string, added bool) {
		off, div := 0.0, 1.0
		if added {
			off, div = med(metric, "none"), 2
		}
		fmt.Fprintf(w, "| %s |", label)
		for _, c := range cols {
			if added && c.variant == "none" {
				fmt.Fprint(w, "  |")
				continue
			}
			fmt.Fprintf(w, " %s |", num((med(metric, c.variant)-off)/div))
		}
		for _, r := range rs {
			fmt.Fprintf(w, " %s |", ratio(med(metric, r[0])-off, med(metric, r[1])-off))
		}
		fmt.Fprintln(w)
	}
	for _, r := range all {
		if !seen[r.metric] {
			continue
		}
		line(r.label, r.metric, false)
		if r.added && !math.IsNaN(med(r.metric, "none")) {
			line("… added per diverted packet: (RTT − no helper) / 2 (µs)", r.metric, true)
		}
	}
	fmt.Fprintln(w)
	var names []string
	for _, c := range cols {
		names = append(names, c.short)
	}
	fmt.Fprintf(w, "Every round (%s):\n", strings.Join(names, " / "))
	fmt.Fprintln(w)
	for _, r := range rows {
		if !seen[r.metric] {
			continue
		}
		var parts []string
		for _, c := range cols {
			var ss []string
			for _, x := range vals[[2]string{r.metric, c.variant}] {
				ss = append(ss, num(x))
			}
			if len(ss) == 0 {
				ss = []string{"—"}
			}
			parts = append(parts, strings.Join(ss, ", "))
		}
		fmt.Fprintf(w, "- %s: %s\n", r.metric, strings.Join(parts, " / "))
	}
}

// num formats a value with three significant figures at most ("—" for none).
func num(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "—"
	case math.Abs(v) >= 100 || v == math.Trunc(v):
		return strconv.FormatFloat(math.Round(v), 'f', -1, 64)
	case math.Abs(v) >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "—"
	}
	return strconv.FormatFloat(a/b, 'f', 2, 64)
}
