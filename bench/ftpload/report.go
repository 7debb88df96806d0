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
	{"serial.session_p50_ms", "one session at a time: p50 (ms)", false},
	{"serial.session_p99_ms", "one session at a time: p99 (ms)", false},
	{"noop.noop_p50_us", "NOOP round trip under load: p50 (µs)", true},
	{"noop.noop_p99_us", "NOOP round trip under load: p99 (µs)", true},
	{"noop.noop_per_s", "NOOP round trips/s (the load)", false},
	{"noop.helper_cpu_us_per_rt", "CPU of the helper's process per NOOP round trip (µs)", false},
	{"reuse.sessions_ok", "check: sessions from one reused client port that worked (of 3)", false},
	{"mem.rss_base_kib", "ftpct resident memory, no sessions (KiB)", false},
	{"mem.rss_loaded_kib", "ftpct resident memory, idle sessions held (KiB)", false},
	{"mem.rss_per_session_bytes", "ftpct resident memory per idle session (bytes)", false},
	{"mem.idle_usable", "idle sessions still answering NOOP", false},
	{"queue.packets", "packets the queue-only program accepted", false},
}

var variants = []string{"kernel", "ftpct", "queue", "none"}

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
	// An ftpct of another build (sidebyside.sh's FTPCT_BASE) gets its own
	// column and ratio when it was measured.
	withBase := slices.ContainsFunc(samples, func(s sample) bool { return s.variant == "base" })
	head, sep := "| load (median of rounds) | kernel helper | ftpct | queue only (NFQUEUE ceiling) | no helper (ceiling) |", "|---|---|---|---|---|"
	if withBase {
		head, sep = head+" ftpct, base build |", sep+"---|"
	}
	head, sep = head+" ftpct / kernel | ftpct / queue only |", sep+"---|---|"
	if withBase {
		head, sep = head+" ftpct / base build |", sep+"---|"
	}
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, sep)
	// line writes one row: the values of the variants, then the ratios.
	line := func(label string, k, f, q, n, b, fk, fq, fb string) {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |", label, k, f, q, n)
		if withBase {
			fmt.Fprintf(w, " %s |", b)
		}
		fmt.Fprintf(w, " %s | %s |", fk, fq)
		if withBase {
			fmt.Fprintf(w, " %s |", fb)
		}
		fmt.Fprintln(w)
	}
	for _, r := range all {
		if !seen[r.metric] {
			continue
		}
		k, f, q, n, b := med(r.metric, "kernel"), med(r.metric, "ftpct"), med(r.metric, "queue"), med(r.metric, "none"), med(r.metric, "base")
		line(r.label, num(k), num(f), num(q), num(n), num(b), ratio(f, k), ratio(f, q), ratio(f, b))
		if r.added && !math.IsNaN(n) {
			line("… added per diverted packet: (RTT − no helper) / 2 (µs)", num((k-n)/2), num((f-n)/2), num((q-n)/2), "",
				num((b-n)/2), ratio(f-n, k-n), ratio(f-n, q-n), ratio(f-n, b-n))
		}
	}
	fmt.Fprintln(w)
	names := "kernel / ftpct / queue only / none"
	vs := variants
	if withBase {
		names += " / base build"
		vs = append(slices.Clone(vs), "base")
	}
	fmt.Fprintf(w, "Every round (%s):\n", names)
	fmt.Fprintln(w)
	for _, r := range rows {
		if !seen[r.metric] {
			continue
		}
		var parts []string
		for _, v := range vs {
			var ss []string
			for _, x := range vals[[2]string{r.metric, v}] {
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
