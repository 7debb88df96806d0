package main

import (
	"bytes"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseReplyLine(t *testing.T) {
	tests := []struct {
		name     string
		line     string
		wantCode int
		wantMore bool
		wantErr  bool
	}{
		{name: "single", line: "200 PORT command successful.\r\n", wantCode: 200},
		{name: "multi-line start", line: "150-Here it comes\r\n", wantCode: 150, wantMore: true},
		{name: "bare code", line: "221\r\n", wantCode: 221},
		{name: "short", line: "20\n", wantErr: true},
		{name: "not a number", line: "abc hello\r\n", wantErr: true},
		{name: "out of range", line: "700 what\r\n", wantErr: true},
		{name: "bad separator", line: "200x\r\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, more, err := parseReplyLine(tt.line)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if code != tt.wantCode || more != tt.wantMore {
				t.Errorf("got (%d, %v), want (%d, %v)", code, more, tt.wantCode, tt.wantMore)
			}
		})
	}
}

func TestPortRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		ip   string
		port int
	}{
		{name: "lab client", ip: "10.0.1.2", port: 10000},
		{name: "high port", ip: "203.0.113.1", port: 65535},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line := portCmd(net.ParseIP(tt.ip), tt.port)
			ip, port, err := parsePort(strings.TrimSuffix(strings.TrimPrefix(line, "PORT "), "\r\n"))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(net.JoinHostPort(tt.ip, strconv.Itoa(tt.port)), net.JoinHostPort(ip.String(), strconv.Itoa(port))); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
	if _, _, err := parsePort("1,2,3,4,5"); err == nil {
		t.Error("parsePort accepted five numbers")
	}
	if _, _, err := parsePort("1,2,3,4,5,256"); err == nil {
		t.Error("parsePort accepted 256")
	}
}

func TestPercentileMedian(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{name: "p50", got: float64(percentile(ds, 50)), want: 5},
		{name: "p99", got: float64(percentile(ds, 99)), want: 10},
		{name: "p0 is the minimum", got: float64(percentile(ds, 0)), want: 1},
		{name: "empty", got: float64(percentile(nil, 50)), want: 0},
		{name: "median odd", got: median([]float64{3, 1, 2}), want: 2},
		{name: "median even", got: median([]float64{4, 1, 3, 2}), want: 2.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}

func TestReport(t *testing.T) {
	in := `# round variant metric value
1 kernel storm.storm_port_per_s 30000
2 kernel storm.storm_port_per_s 32000
3 kernel storm.storm_port_per_s 10
1 ftpct storm.storm_port_per_s 2000
2 ftpct storm.storm_port_per_s 1800
3 ftpct storm.storm_port_per_s 1900
1 none noop.noop_p50_us 100
1 kernel noop.noop_p50_us 120
1 ftpct noop.noop_p50_us 180
1 queue noop.noop_p50_us 140
1 queue storm.storm_port_per_s 0
`
	ss, err := readSamples(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	// Each step adds its samples to those before.
	steps := []struct {
		name string
		add  []sample
		want []string
	}{
		{
			name: "kernel, ftpct, queue only, none",
			want: []string{
				"| announcement storm: PORT/s | 30000 | 1900 | 0 | — | 0.06 | — |",
				"| NOOP round trip under load: p50 (µs) | 120 | 180 | 140 | 100 | 1.50 | 1.29 |",
				"| … added per diverted packet: (RTT − no helper) / 2 (µs) | 10 | 40 | 20 |  | 4.00 | 2.00 |",
				"- storm.storm_port_per_s: 30000, 32000, 10 / 2000, 1800, 1900 / 0 / —",
			},
		},
		{
			name: "an ftpct of a base build: its column and ratio",
			add: []sample{{"1", "base", "noop.noop_p50_us", 200}, {"1", "ftpct", "noop.helper_cpu_us_per_rt", 30},
				{"1", "base", "noop.helper_cpu_us_per_rt", 40}},
			want: []string{
				"| load (median of rounds) | kernel helper | ftpct | queue only (NFQUEUE ceiling) | no helper (ceiling) | ftpct, base build | ftpct / kernel | ftpct / queue only | ftpct / base build |",
				"| NOOP round trip under load: p50 (µs) | 120 | 180 | 140 | 100 | 200 | 1.50 | 1.29 | 0.90 |",
				"| CPU of the helper's process per NOOP round trip (µs) | — | 30 | — | — | 40 | — | — | 0.75 |",
				"- noop.noop_p50_us: 120 / 180 / 140 / 100 / 200",
			},
		},
		{
			name: "the kernel helper with the queue: its column and two ratios",
			add: []sample{{"1", "kqueue", "noop.noop_p50_us", 160}, {"1", "kqueue", "storm.storm_port_per_s", 15000},
				{"1", "kqueue", "queue.packets", 500}, {"1", "queue", "queue.packets", 400}},
			want: []string{
				"| load (median of rounds) | kernel helper | ftpct | kernel helper + queue (NFQUEUE ceiling, sessions) | queue only (NFQUEUE ceiling) | no helper (ceiling) | ftpct, base build | ftpct / kernel | ftpct / queue only | kernel + queue / kernel | ftpct / kernel + queue | ftpct / base build |",
				"| announcement storm: PORT/s | 30000 | 1900 | 15000 | 0 | — | — | 0.06 | — | 0.50 | 0.13 | — |",
				"| NOOP round trip under load: p50 (µs) | 120 | 180 | 160 | 140 | 100 | 200 | 1.50 | 1.29 | 1.33 | 1.12 | 0.90 |",
				"| … added per diverted packet: (RTT − no helper) / 2 (µs) | 10 | 40 | 30 | 20 |  | 50 | 4.00 | 2.00 | 3.00 | 1.33 | 0.80 |",
				"Every round (kernel / ftpct / kernel + queue / queue only / none / base build):",
				"- queue.packets: — / — / 500 / 400 / — / —",
			},
		},
		{
			name: "the kernel helper with the queue at ftpct's fewest crossings: its column and two ratios",
			add:  []sample{{"1", "kqmin", "storm.storm_port_per_s", 20000}, {"1", "kqmin", "queue.packets", 450}},
			want: []string{
				"| load (median of rounds) | kernel helper | ftpct | kernel helper + queue (NFQUEUE ceiling, sessions) | kernel helper + queue at ftpct's fewest crossings (bound for ftpct) | queue only (NFQUEUE ceiling) | no helper (ceiling) | ftpct, base build | ftpct / kernel | ftpct / queue only | kernel + queue / kernel | ftpct / kernel + queue | kernel + queue (min) / kernel | ftpct / kernel + queue (min) | ftpct / base build |",
				"| announcement storm: PORT/s | 30000 | 1900 | 15000 | 20000 | 0 | — | — | 0.06 | — | 0.50 | 0.13 | 0.67 | 0.10 | — |",
				"- queue.packets: — / — / 500 / 450 / 400 / — / —",
			},
		},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			ss = append(ss, st.add...)
			var b bytes.Buffer
			report(&b, ss)
			for _, w := range st.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("report lacks %q:\n%s", w, b.String())
				}
			}
		})
	}
	if _, err := readSamples(strings.NewReader("1 kernel x\n")); err == nil {
		t.Error("readSamples accepted a line with three fields")
	}
}

func TestParseRange(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		from, to int
		wantErr  bool
	}{
		{name: "range", in: "2000-4999", from: 2000, to: 4999},
		{name: "one port", in: "40000-40000", from: 40000, to: 40000},
		{name: "privileged", in: "20-30", wantErr: true},
		{name: "reversed", in: "5000-4000", wantErr: true},
		{name: "past 65535", in: "65000-70000", wantErr: true},
		{name: "not a range", in: "abc", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r portRange
			err := parseRange(tt.in, &r)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			var got []int
			for p, ok := r.take(); ok; p, ok = r.take() {
				got = append(got, p)
			}
			if got[0] != tt.from || got[len(got)-1] != tt.to || len(got) != tt.to-tt.from+1 {
				t.Errorf("took %d..%d (%d ports), want %d..%d", got[0], got[len(got)-1], len(got), tt.from, tt.to)
			}
		})
	}
}
