package config

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ftpct.conf")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// load parses args as `ftpct run` would and loads the file at path.
func load(t *testing.T, path string, explicit bool, args ...string) (*Config, error) {
	t.Helper()
	l := &Loader{Path: path, Explicit: explicit}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	l.Flags(fs, nil)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return l.Load()
}

func TestFileAndFlags(t *testing.T) {
	tests := []struct {
		name string
		file string
		args []string
		want func(s *Settings)
		// origins checked for these keys
		origins map[string]string
	}{
		{name: "empty file is the defaults", file: "", want: func(s *Settings) {},
			origins: map[string]string{"ports": "default", "max-expect": "default"}},
		{name: "every kind of key",
			file: "# comment\nports = [21, 2121]\nqueue = 7\nmark = 0x00400000\nhold-mark = 0x1\ntable = \"gw\"\nno-ipv6 = true\n" +
				"no-install-rules = true\nsocket = \"/run/x/y.sock\"\ntimeout = \"90s\"\nmax-per-session = 2\n" +
				"max-expect = 100\nmax-sessions = 10\nallow-low-ports = true\nlog-level = \"debug\"\n",
			want: func(s *Settings) {
				s.Rules.Ports = []uint16{21, 2121}
				s.Rules.Queue = 7
				s.Rules.Mark = 0x00400000
				s.Rules.HoldMark = 0x1
				s.Rules.Table = "gw"
				s.Rules.IPv6 = false
				s.Install = false
				s.Socket = "/run/x/y.sock"
				s.Engine.Timeout = 90 * time.Second
				s.Engine.PerSession = 2
				s.Engine.MaxExpect = 100
				s.Engine.MaxSessions = 10
				s.Engine.AllowLowPorts = true
				s.LogLevel = slog.LevelDebug
			},
			origins: map[string]string{"ports": "file FILE:2", "log-level": "file FILE:15", "queue": "file FILE:3"}},
		{name: "mark as a string", file: "mark = \"0x10\"\n", want: func(s *Settings) { s.Rules.Mark = 0x10 }},
		{name: "a multi-line array", file: "\nports = [\n  21,\n  2121,\n]\n", want: func(s *Settings) { s.Rules.Ports = []uint16{21, 2121} },
			origins: map[string]string{"ports": "file FILE:2"}},
		{name: "flags override the file", file: "max-expect = 100\nqueue = 7\n", args: []string{"--max-expect", "5", "--no-ipv6"},
			want:    func(s *Settings) { s.Engine.MaxExpect = 5; s.Rules.Queue = 7; s.Rules.IPv6 = false },
			origins: map[string]string{"max-expect": "flag", "queue": "file FILE:2", "no-ipv6": "flag"}},
		{name: "queues as given", file: "queues = 3\n", want: func(s *Settings) { s.Queues, s.Rules.Queues = 3, 3 },
			origins: map[string]string{"queues": "file FILE:1"}},
		{name: "queues 0 is one per CPU", file: "queues = 5\n", args: []string{"--queues", "0"},
			want:    func(s *Settings) { s.Queues, s.Rules.Queues = 0, uint16(runtime.NumCPU()) },
			origins: map[string]string{"queues": "flag"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.file)
			c, err := load(t, path, true, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			want := Defaults()
			tt.want(&want)
			if diff := cmp.Diff(want, c.Settings); diff != "" {
				t.Errorf("settings (-want +got):\n%s", diff)
			}
			for k, o := range tt.origins {
				o = strings.ReplaceAll(o, "FILE", path)
				if got := c.Origin(k).String(); got != o {
					t.Errorf("origin of %s = %q, want %q", k, got, o)
				}
			}
		})
	}
}

func TestFileErrors(t *testing.T) {
	tests := []struct {
		name     string
		file     string
		wantErr  error
		wantKey  string
		wantLine int
		wantText string
	}{
		{name: "unknown key", file: "ports = [21]\n\nmax-expects = 5\n", wantErr: ErrUnknownKey, wantKey: "max-expects", wantLine: 3},
		{name: "a table", file: "queue = 1\n[engine]\ntimeout = \"1m\"\n", wantErr: ErrUnknownKey, wantKey: "engine", wantLine: 2},
		{name: "max-expect 0", file: "max-expect = 0\n", wantErr: ErrBadValue, wantKey: "max-expect", wantLine: 1, wantText: "out of range 1.."},
		{name: "max-expect -1", file: "queue = 3\nmax-expect = -1\n", wantErr: ErrBadValue, wantKey: "max-expect", wantLine: 2},
		{name: "max-per-session 0", file: "max-per-session = 0\n", wantErr: ErrBadValue, wantKey: "max-per-session", wantLine: 1},
		{name: "max-sessions -5", file: "max-sessions = -5\n", wantErr: ErrBadValue, wantKey: "max-sessions", wantLine: 1},
		{name: "integer as a string", file: "max-expect = \"5\"\n", wantErr: ErrBadValue, wantKey: "max-expect", wantLine: 1, wantText: "want an integer, not a string"},
		{name: "ports not an array", file: "ports = 21\n", wantErr: ErrBadValue, wantKey: "ports", wantLine: 1},
		{name: "port zero", file: "ports = [21, 0]\n", wantErr: ErrBadValue, wantKey: "ports", wantLine: 1},
		{name: "port twice", file: "ports = [21, 21]\n", wantErr: ErrBadValue, wantKey: "ports", wantLine: 1, wantText: "twice"},
		{name: "port too large", file: "ports = [70000]\n", wantErr: ErrBadValue, wantKey: "ports", wantLine: 1},
		{name: "short timeout", file: "timeout = \"10ms\"\n", wantErr: ErrBadValue, wantKey: "timeout", wantLine: 1, wantText: "at least 1s"},
		{name: "timeout not a duration", file: "timeout = \"soon\"\n", wantErr: ErrBadValue, wantKey: "timeout", wantLine: 1},
		{name: "zero mark", file: "mark = 0\n", wantErr: ErrBadValue, wantKey: "mark", wantLine: 1},
		{name: "zero hold mark", file: "hold-mark = 0\n", wantErr: ErrBadValue, wantKey: "hold-mark", wantLine: 1},
		{name: "table keyword", file: "table = \"ip\"\n", wantErr: ErrBadValue, wantKey: "table", wantLine: 1},
		{name: "relative socket", file: "socket = \"x.sock\"\n", wantErr: ErrBadValue, wantKey: "socket", wantLine: 1},
		{name: "bad log level", file: "log-level = \"loud\"\n", wantErr: ErrBadValue, wantKey: "log-level", wantLine: 1},
		{name: "queue out of range", file: "queue = 65536\n", wantErr: ErrBadValue, wantKey: "queue", wantLine: 1},
		{name: "queues out of range", file: "queues = 257\n", wantErr: ErrBadValue, wantKey: "queues", wantLine: 1},
		{name: "queues negative", file: "\nqueues = -1\n", wantErr: ErrBadValue, wantKey: "queues", wantLine: 2},
		{name: "gc-percent 0", file: "gc-percent = 0\n", wantErr: ErrBadValue, wantKey: "gc-percent", wantLine: 1, wantText: "out of range 1..1000"},
		{name: "memory-limit unit", file: "memory-limit = \"2GB\"\n", wantErr: ErrBadValue, wantKey: "memory-limit", wantLine: 1, wantText: "not a size"},
		{name: "memory-limit negative", file: "memory-limit = \"-1MiB\"\n", wantErr: ErrBadValue, wantKey: "memory-limit", wantLine: 1},
		{name: "memory-limit as an integer", file: "memory-limit = 5\n", wantErr: ErrBadValue, wantKey: "memory-limit", wantLine: 1, wantText: "want a string"},
		{name: "syntax", file: "ports = [21\nqueue = 2\n", wantErr: ErrSyntax, wantLine: 2},
		{name: "duplicate key", file: "queue = 1\nqueue = 2\n", wantErr: ErrSyntax, wantLine: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.file)
			_, err := load(t, path, true)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			var ke *KeyError
			if !errors.As(err, &ke) {
				t.Fatalf("error %v is not a KeyError", err)
			}
			got := KeyError{Key: ke.Key, File: ke.File, Line: ke.Line}
			want := KeyError{Key: tt.wantKey, File: path, Line: tt.wantLine}
			if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b error) bool { return true })); diff != "" {
				t.Errorf("error %q (-want +got):\n%s", err, diff)
			}
			if !strings.Contains(err.Error(), tt.wantText) || !strings.HasPrefix(err.Error(), path+":") {
				t.Errorf("error %q: want it to start with %q and contain %q", err, path+":", tt.wantText)
			}
		})
	}
}

func TestMissingFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.conf")
	c, err := load(t, missing, false)
	if err != nil {
		t.Fatalf("missing default file: %v", err)
	}
	if c.File != "" {
		t.Errorf("File = %q, want none", c.File)
	}
	if _, err := load(t, missing, true); !errors.Is(err, ErrNoFile) {
		t.Errorf("missing explicit file: %v, want ErrNoFile", err)
	}
	// --config on the command line makes it explicit.
	l := NewLoader()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	l.Flags(fs, nil)
	if err := fs.Parse([]string{"--config", missing}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Load(); !errors.Is(err, ErrNoFile) {
		t.Errorf("--config missing: %v, want ErrNoFile", err)
	}
}

func TestFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "max-expect 0", args: []string{"--max-expect", "0"}, want: "out of range"},
		{name: "max-expect -1", args: []string{"--max-expect", "-1"}, want: "out of range"},
		{name: "max-per-session 0", args: []string{"--max-per-session", "0"}, want: "out of range"},
		{name: "max-sessions -5", args: []string{"--max-sessions", "-5"}, want: "out of range"},
		{name: "bad bool", args: []string{"--no-ipv6=maybe"}, want: "not true or false"},
		{name: "bad port", args: []string{"--ports", "21,x"}, want: `bad port "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, filepath.Join(t.TempDir(), "none"), false, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestLive(t *testing.T) {
	path := writeFile(t, "max-expect = 10\nqueue = 3\n")
	cur, err := load(t, path, true, "--log-level", "warn")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("max-expect = 20\nqueue = 4\nqueues = 3\ntable = \"other\"\nallow-low-ports = true\nlog-level = \"debug\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := &Loader{Path: path, Explicit: true, flags: []flagValue{{Lookup("log-level"), "warn"}}}
	next, err := l.Load()
	if err != nil {
		t.Fatal(err)
	}
	merged, kept, changed := cur.Live(next)
	if diff := cmp.Diff([]string{"queue", "queues", "table"}, kept); diff != "" {
		t.Errorf("kept (-want +got):\n%s", diff)
	}
	// log-level stays "warn": the flag still overrides the file.
	if diff := cmp.Diff([]string{"max-expect", "allow-low-ports"}, changed); diff != "" {
		t.Errorf("changed (-want +got):\n%s", diff)
	}
	want := cur.Settings
	want.Engine.MaxExpect = 20
	want.Engine.AllowLowPorts = true
	if diff := cmp.Diff(want, merged.Settings); diff != "" {
		t.Errorf("merged settings (-want +got):\n%s", diff)
	}
	if got := merged.Origin("queue").String(); got != "file "+path+":2" {
		t.Errorf("origin of kept queue = %q", got)
	}
}

func TestWriteRoundTrip(t *testing.T) {
	path := writeFile(t, "ports = [21, 2121]\nmark = 0x40\ntimeout = \"2m\"\n")
	c, err := load(t, path, true, "--max-expect", "7")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := c.Write(&out); err != nil {
		t.Fatal(err)
	}
	lines := map[string]string{}
	for _, line := range strings.Split(out.String(), "\n") {
		if v, from, ok := strings.Cut(line, "#"); ok && v != "" {
			lines[strings.TrimSpace(v)] = strings.TrimSpace(from)
		}
	}
	for value, from := range map[string]string{
		"ports = [21, 2121]": "file " + path + ":1",
		"mark = 0x00000040":  "file " + path + ":2",
		`timeout = "2m0s"`:   "file " + path + ":3",
		"max-expect = 7":     "flag",
		"queue = 21":         "default",
	} {
		if lines[value] != from {
			t.Errorf("output lacks %q # %s:\n%s", value, from, out.String())
		}
	}
	if n := strings.Count(out.String(), "\n"); n != len(Keys)+1 {
		t.Errorf("%d lines, want one per key plus a header:\n%s", n, out.String())
	}
	// The output is itself a config file giving the same settings.
	again, err := load(t, writeFile(t, out.String()), true)
	if err != nil {
		t.Fatalf("reading the output back: %v\n%s", err, out.String())
	}
	if diff := cmp.Diff(c.Settings, again.Settings); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestSourceString(t *testing.T) {
	for s, want := range map[Source]string{FromDefault: "default", FromFile: "file", FromFlag: "flag", 9: "Source(9)"} {
		if got := s.String(); got != want {
			t.Errorf("%d: %q, want %q", s, got, want)
		}
	}
}

var update = flag.Bool("update", false, "rewrite deploy/ftpct.conf")

// TestDefaultFile: the packaged config file lists every key at its default,
// and reads as the defaults once uncommented.
func TestDefaultFile(t *testing.T) {
	var b bytes.Buffer
	if err := WriteDefaults(&b); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "deploy", "ftpct.conf")
	if *update {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(b.String(), string(got)); diff != "" {
		t.Errorf("%s is not what WriteDefaults makes; run go test ./config -run TestDefaultFile -update (-want +got):\n%s", path, diff)
	}
	var un strings.Builder
	for _, line := range strings.Split(b.String(), "\n") {
		if k, _, ok := strings.Cut(strings.TrimPrefix(line, "#"), " = "); ok && Lookup(k) != nil {
			line = strings.TrimPrefix(line, "#")
		}
		un.WriteString(line + "\n")
	}
	c, err := load(t, writeFile(t, un.String()), true)
	if err != nil {
		t.Fatalf("uncommented defaults: %v\n%s", err, un.String())
	}
	if diff := cmp.Diff(Defaults(), c.Settings); diff != "" {
		t.Errorf("uncommented defaults (-want +got):\n%s", diff)
	}
	for _, k := range Keys {
		if c.Origin(k.Name).Source != FromFile {
			t.Errorf("key %s not in the file", k.Name)
		}
	}
}

// memory-limit takes GOMEMLIMIT's sizes and prints them back in the largest
// unit that divides them.
func TestMemoryLimitSizes(t *testing.T) {
	tests := []struct {
		name, in string
		want     int64
		text     string
		wantErr  bool
	}{
		{name: "none", in: "0", want: 0, text: "0"},
		{name: "bytes", in: "1000", want: 1000, text: "1000B"},
		{name: "bytes with B", in: "1536B", want: 1536, text: "1536B"},
		{name: "KiB", in: "3KiB", want: 3 << 10, text: "3KiB"},
		{name: "MiB", in: "256MiB", want: 256 << 20, text: "256MiB"},
		{name: "MiB written in KiB", in: "2048KiB", want: 2 << 20, text: "2MiB"},
		{name: "GiB", in: " 2GiB ", want: 2 << 30, text: "2GiB"},
		{name: "TiB", in: "1TiB", want: 1 << 40, text: "1TiB"},
		{name: "decimal units refused", in: "2GB", wantErr: true},
		{name: "fraction refused", in: "1.5GiB", wantErr: true},
		{name: "empty", in: "", wantErr: true},
		{name: "negative", in: "-1", wantErr: true},
		{name: "overflow", in: "9000000TiB", wantErr: true},
	}
	k := Lookup("memory-limit")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Defaults()
			err := k.Set(&s, tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrBadValue) {
					t.Fatalf("Set(%q) = %v, want ErrBadValue", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := struct {
				N    int64
				Text string
			}{s.MemoryLimit, k.Text(&s)}
			want := struct {
				N    int64
				Text string
			}{tt.want, tt.text}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Set(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

// TestMarksOverlap: mark and hold-mark are checked together once both are
// set, whatever their order: the default hold-mark's bit as mark fails
// until hold-mark moves.
func TestMarksOverlap(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		args    []string
		wantErr string
	}{
		{name: "mark on the default hold-mark", file: "mark = 0x00200000\n", wantErr: "hold-mark 0x00200000 overlaps mark 0x00200000"},
		{name: "hold-mark on the default mark", args: []string{"--hold-mark", "0x00100000"}, wantErr: "hold-mark 0x00100000 overlaps mark 0x00100000"},
		{name: "moved apart", file: "mark = 0x00200000\nhold-mark = 0x00100000\n"},
		{name: "moved apart, flag after file", file: "hold-mark = 0x4\n", args: []string{"--mark", "0x00200000"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, writeFile(t, tc.file), true, tc.args...)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("load: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrBadValue) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("load: %v, want ErrBadValue with %q", err, tc.wantErr)
			}
		})
	}
}
