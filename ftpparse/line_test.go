package ftpparse

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLineEnd(t *testing.T) {
	tests := []struct {
		name string
		in   string
		off  int
		want int
	}{
		{name: "empty", in: "", off: 0, want: -1},
		{name: "no newline", in: "PORT 1,2,3,4,5,6", off: 0, want: -1},
		{name: "CRLF", in: "NOOP\r\nPORT", off: 0, want: 6},
		{name: "LF", in: "NOOP\nPORT", off: 0, want: 5},
		{name: "second line", in: "NOOP\r\nPORT 1\r\n", off: 6, want: 14},
		{name: "offset at newline", in: "a\nb\n", off: 1, want: 2},
		{name: "offset past newline", in: "a\nb", off: 2, want: -1},
		{name: "offset at end", in: "a\n", off: 2, want: -1},
		{name: "offset beyond end", in: "a\n", off: 3, want: -1},
		{name: "negative offset", in: "a\n", off: -1, want: -1},
		{name: "bare CR is no line end", in: "a\rb", off: 0, want: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := LineEnd([]byte(tt.in), tt.off); got != tt.want {
				t.Errorf("LineEnd(%q, %d) = %d, want %d", tt.in, tt.off, got, tt.want)
			}
		})
	}
}

func TestLineEndSplitsSegment(t *testing.T) {
	p := []byte("NOOP\r\nPORT 10,0,0,1,4,1\r\n\r\nEPRT |1|10.0.0.1|1025|\nPAR")
	var lines []string
	off := 0
	for off < len(p) {
		end := LineEnd(p, off)
		if end < 0 {
			break
		}
		lines = append(lines, string(p[off:end]))
		off = end
	}
	want := []string{"NOOP\r\n", "PORT 10,0,0,1,4,1\r\n", "\r\n", "EPRT |1|10.0.0.1|1025|\n"}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("lines mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("PAR", string(p[off:])); diff != "" {
		t.Errorf("incomplete rest mismatch (-want +got):\n%s", diff)
	}
}

func TestSplitLine(t *testing.T) {
	type result struct {
		Content string
		LineLen int
	}
	tests := []struct {
		name string
		in   string
		want result
	}{
		{name: "CRLF", in: "abc\r\n", want: result{"abc", 5}},
		{name: "LF", in: "abc\n", want: result{"abc", 4}},
		{name: "CR only", in: "abc\r", want: result{"abc", 4}},
		{name: "none", in: "abc", want: result{"abc", 3}},
		{name: "empty", in: "", want: result{"", 0}},
		{name: "rest ignored", in: "abc\r\ndef\r\n", want: result{"abc", 5}},
		{name: "inner CR kept", in: "a\rb\r\n", want: result{"a\rb", 5}},
		{name: "only one CR stripped", in: "a\r\r\n", want: result{"a\r", 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, n := splitLine([]byte(tt.in))
			if diff := cmp.Diff(tt.want, result{string(c), n}); diff != "" {
				t.Errorf("splitLine(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestLineEndAllocs(t *testing.T) {
	p := []byte("NOOP\r\nPORT 10,0,0,1,4,1\r\n")
	if allocs := testing.AllocsPerRun(100, func() { _ = LineEnd(p, 0) }); allocs != 0 {
		t.Errorf("LineEnd: %v allocs per run, want 0", allocs)
	}
}

func BenchmarkLineEnd(b *testing.B) {
	p := []byte("RETR a/fairly/long/path/name/for/a/file/to/download.tar.gz\r\n")
	b.ReportAllocs()
	for b.Loop() {
		_ = LineEnd(p, 0)
	}
}
