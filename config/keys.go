package config

import (
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ftpct/ftpct/control"
	"github.com/ftpct/ftpct/engine"
	"github.com/ftpct/ftpct/rules"
)

// Settings are the daemon's settings, as its parts take them.
type Settings struct {
	Rules   rules.Config
	Engine  engine.Config
	Socket  string
	Install bool
	// RemoveOnExit: the daemon removes its rules on exit (by default they
	// stay for the next run; `ftpct uninstall` removes them).
	RemoveOnExit bool
	LogLevel     slog.Level
	// LogFormat is "text" or "json"; Metrics the Prometheus address
	// (host:port), "" for none.
	LogFormat string
	Metrics   string
	// Queues is the queues key as given (0: one per CPU); Rules.Queues is
	// what it resolves to.
	Queues int
	// GCPercent is the Go collector's heap growth target (GOGC) and
	// MemoryLimit its soft memory limit in bytes (GOMEMLIMIT, 0: none),
	// unless the environment sets them.
	GCPercent   int
	MemoryLimit int64
}

// DefaultGCPercent is the gc-percent key's default: the heap may grow to
// 1.5 times what is live before the collector runs (Go's own default, 100,
// lets it double). Measured in BENCHMARKS.md ("Memory").
const DefaultGCPercent = 50

// Defaults returns the settings used when neither file nor flag says otherwise.
func Defaults() Settings {
	r := rules.DefaultConfig()
	r.Queues = queuesFor(0)
	return Settings{Rules: r, Engine: engine.DefaultConfig(), Socket: control.DefaultSocket, Install: true, LogLevel: slog.LevelInfo, LogFormat: "text",
		GCPercent: DefaultGCPercent}
}

// maxQueues bounds --queues: one reader goroutine and socket buffer each.
const maxQueues = 256

// queuesFor is the number of queues the queues key n asks for: n, or one
// per CPU when n is 0.
func queuesFor(n int) uint16 {
	if n == 0 {
		n = min(runtime.NumCPU(), maxQueues)
	}
	return uint16(n)
}

// kind is the TOML type a key takes in the file.
type kind uint8

const (
	kindInt    kind = iota // TOML integer
	kindBool               // TOML boolean
	kindString             // TOML string
	kindPorts              // TOML array of integers
	kindMark               // TOML integer (0x… allowed) or string
)

func (k kind) String() string {
	switch k {
	case kindInt:
		return "an integer"
	case kindBool:
		return "true or false"
	case kindString:
		return "a string"
	case kindPorts:
		return "an array of port numbers"
	case kindMark:
		return "an integer"
	}
	return "?"
}

// Key is one setting: a key of the config file and the flag of the same name.
type Key struct {
	// Name is the file key and the flag name.
	Name string
	// Usage is the flag's help text; a `quoted` word names the value.
	Usage string
	// Live keys change on SIGHUP; the others need a restart.
	Live bool
	// Rules keys change what `ftpct rules` prints.
	Rules bool

	kind kind
	// set parses the flag text form and stores the value.
	set func(s *Settings, text string) error
	// get returns the value in the flag text form.
	get func(s *Settings) string
}

// Keys are all settings, in the order `ftpct check` prints them.
var Keys = []*Key{
	{Name: "ports", Usage: "FTP control `ports` to divert (as a flag: comma-separated)", Rules: true, kind: kindPorts,
		set: func(s *Settings, t string) error { return setPorts(&s.Rules, t) },
		get: func(s *Settings) string { return portsText(s.Rules.Ports) }},
	{Name: "queue", Usage: "NFQUEUE `number`", Rules: true, kind: kindInt,
		set: func(s *Settings, t string) error {
			return setInt(t, 0, 65535, func(n int) { s.Rules.Queue = uint16(n) })
		},
		get: func(s *Settings) string { return strconv.Itoa(int(s.Rules.Queue)) }},
	{Name: "queues", Usage: "how many NFQUEUEs to read (`n` numbers from queue on), one worker each; the kernel spreads control connections over them by address hash; 0: one per CPU", Rules: true, kind: kindInt,
		set: func(s *Settings, t string) error {
			return setInt(t, 0, maxQueues, func(n int) { s.Queues, s.Rules.Queues = n, queuesFor(n) })
		},
		get: func(s *Settings) string { return strconv.Itoa(s.Queues) }},
	{Name: "mark", Usage: "conntrack mark `bit(s)` set on data connections ftpct lets in", Rules: true, kind: kindMark,
		set: func(s *Settings, t string) error {
			n, err := strconv.ParseUint(t, 0, 32)
			if err != nil {
				return fmt.Errorf("%w: %q is not a 32-bit number (decimal or 0x…)", ErrBadValue, t)
			}
			if n == 0 {
				// Its overlap with hold-mark is checked once both are set (Load).
				return fmt.Errorf("%w: mark must not be 0", ErrBadValue)
			}
			s.Rules.Mark = uint32(n)
			return nil
		},
		get: func(s *Settings) string { return fmt.Sprintf("0x%08x", s.Rules.Mark) }},
	{Name: "hold-mark", Usage: "packet mark `bit(s)` with which ftpct holds a control connection it resizes, in the packet path (reserved to ftpct; must not overlap mark)", Rules: true, kind: kindMark,
		set: func(s *Settings, t string) error {
			n, err := strconv.ParseUint(t, 0, 32)
			if err != nil {
				return fmt.Errorf("%w: %q is not a 32-bit number (decimal or 0x…)", ErrBadValue, t)
			}
			if n == 0 {
				return fmt.Errorf("%w: hold-mark must not be 0", ErrBadValue)
			}
			s.Rules.HoldMark = uint32(n)
			return nil
		},
		get: func(s *Settings) string { return fmt.Sprintf("0x%08x", s.Rules.HoldMark) }},
	{Name: "table", Usage: "`name` of ftpct's own nftables tables (ip and ip6)", Rules: true, kind: kindString,
		set: func(s *Settings, t string) error {
			r := rules.DefaultConfig()
			r.Table = t
			if err := r.Validate(); err != nil {
				return fmt.Errorf("%w: %v", ErrBadValue, err)
			}
			s.Rules.Table = t
			return nil
		},
		get: func(s *Settings) string { return s.Rules.Table }},
	{Name: "no-ipv6", Usage: "do not divert IPv6 control connections", Rules: true, kind: kindBool,
		set: func(s *Settings, t string) error { return setBool(t, func(b bool) { s.Rules.IPv6 = !b }) },
		get: func(s *Settings) string { return strconv.FormatBool(!s.Rules.IPv6) }},
	{Name: "no-install-rules", Usage: "install no rules: the operator adds what 'ftpct rules' prints", kind: kindBool,
		set: func(s *Settings, t string) error { return setBool(t, func(b bool) { s.Install = !b }) },
		get: func(s *Settings) string { return strconv.FormatBool(!s.Install) }},
	{Name: "remove-on-exit", Usage: "remove the installed rules on exit instead of leaving them for the next run (resized sessions then break, pending holes close)", kind: kindBool,
		set: func(s *Settings, t string) error { return setBool(t, func(b bool) { s.RemoveOnExit = b }) },
		get: func(s *Settings) string { return strconv.FormatBool(s.RemoveOnExit) }},
	{Name: "socket", Usage: "control socket `path`", kind: kindString,
		set: func(s *Settings, t string) error {
			if t == "" || !strings.HasPrefix(t, "/") {
				return fmt.Errorf("%w: %q is not an absolute path", ErrBadValue, t)
			}
			s.Socket = t
			return nil
		},
		get: func(s *Settings) string { return s.Socket }},
	{Name: "timeout", Usage: "how long an expected data connection may take to arrive (a `duration`, at least 1s)", Live: true, kind: kindString,
		set: func(s *Settings, t string) error {
			d, err := time.ParseDuration(t)
			if err != nil {
				return fmt.Errorf("%w: %q is not a duration (e.g. 5m, 90s)", ErrBadValue, t)
			}
			if d < time.Second {
				return fmt.Errorf("%w: %v: must be at least 1s", ErrBadValue, d)
			}
			s.Engine.Timeout = d
			return nil
		},
		get: func(s *Settings) string { return s.Engine.Timeout.String() }},
	{Name: "max-per-session", Usage: "pending expectations per control connection (`n` >= 1); a new one replaces the oldest", Live: true, kind: kindInt,
		set: func(s *Settings, t string) error { return setInt(t, 1, 1<<20, func(n int) { s.Engine.PerSession = n }) },
		get: func(s *Settings) string { return strconv.Itoa(s.Engine.PerSession) }},
	{Name: "max-expect", Usage: "pending expectations altogether (`n` >= 1); more are refused", Live: true, kind: kindInt,
		set: func(s *Settings, t string) error { return setInt(t, 1, 1<<24, func(n int) { s.Engine.MaxExpect = n }) },
		get: func(s *Settings) string { return strconv.Itoa(s.Engine.MaxExpect) }},
	{Name: "max-sessions", Usage: "control connections tracked (`n` >= 1); more pass untouched", Live: true, kind: kindInt,
		set: func(s *Settings, t string) error {
			return setInt(t, 1, 1<<24, func(n int) { s.Engine.MaxSessions = n })
		},
		get: func(s *Settings) string { return strconv.Itoa(s.Engine.MaxSessions) }},
	{Name: "allow-low-ports", Usage: "allow holes to privileged ports (< 1024); the kernel helper does, ftpct does not by default", Live: true, kind: kindBool,
		set: func(s *Settings, t string) error { return setBool(t, func(b bool) { s.Engine.AllowLowPorts = b }) },
		get: func(s *Settings) string { return strconv.FormatBool(s.Engine.AllowLowPorts) }},
	{Name: "log-level", Usage: "log `level`: debug, info, warn or error", Live: true, kind: kindString,
		set: func(s *Settings, t string) error {
			var l slog.Level
			if !slices.Contains([]string{"debug", "info", "warn", "error"}, strings.ToLower(t)) || l.UnmarshalText([]byte(t)) != nil {
				return fmt.Errorf("%w: %q: want debug, info, warn or error", ErrBadValue, t)
			}
			s.LogLevel = l
			return nil
		},
		get: func(s *Settings) string { return strings.ToLower(s.LogLevel.String()) }},
	{Name: "log-format", Usage: "log lines as `text` or json (the audit lines too)", kind: kindString,
		set: func(s *Settings, t string) error {
			if t != "text" && t != "json" {
				return fmt.Errorf("%w: %q: want text or json", ErrBadValue, t)
			}
			s.LogFormat = t
			return nil
		},
		get: func(s *Settings) string { return s.LogFormat }},
	{Name: "metrics", Usage: "serve Prometheus metrics at http://`host:port`/metrics (off when empty)", kind: kindString,
		set: func(s *Settings, t string) error {
			if t != "" {
				if _, _, err := net.SplitHostPort(t); err != nil {
					return fmt.Errorf("%w: %q is not host:port (e.g. 127.0.0.1:9821)", ErrBadValue, t)
				}
			}
			s.Metrics = t
			return nil
		},
		get: func(s *Settings) string { return s.Metrics }},
	{Name: "gc-percent", Usage: "Go collector target: the heap grows by this `percent` of what is live before it is collected (GOGC; 1..1000, less memory for more CPU); the environment variable GOGC overrides it", Live: true, kind: kindInt,
		set: func(s *Settings, t string) error { return setInt(t, 1, 1000, func(n int) { s.GCPercent = n }) },
		get: func(s *Settings) string { return strconv.Itoa(s.GCPercent) }},
	{Name: "memory-limit", Usage: "soft limit of the Go runtime's memory (GOMEMLIMIT), a `size` such as 256MiB or 1GiB: the collector works harder near it, it never refuses work; 0: none; the environment variable GOMEMLIMIT overrides it", Live: true, kind: kindString,
		set: func(s *Settings, t string) error {
			n, err := parseSize(t)
			if err != nil {
				return err
			}
			s.MemoryLimit = n
			return nil
		},
		get: func(s *Settings) string { return formatSize(s.MemoryLimit) }},
}

// sizeUnits are the suffixes parseSize takes, as GOMEMLIMIT does
// (runtime/debug.SetMemoryLimit), largest first.
var sizeUnits = []struct {
	suffix string
	shift  uint
}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}

// parseSize parses a size in bytes: an integer with an optional suffix B,
// KiB, MiB, GiB or TiB. "0" is no limit.
func parseSize(t string) (int64, error) {
	t = strings.TrimSpace(t)
	num, shift := t, uint(0)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			num, shift = strings.TrimSuffix(t, u.suffix), u.shift
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: %q is not a size (e.g. 0, 512MiB, 2GiB)", ErrBadValue, t)
	}
	if n > (1<<62)>>shift {
		return 0, fmt.Errorf("%w: %q is too large", ErrBadValue, t)
	}
	return n << shift, nil
}

// formatSize writes n in the largest unit that divides it.
func formatSize(n int64) string {
	if n == 0 {
		return "0"
	}
	for _, u := range sizeUnits {
		if n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// Lookup returns the key called name, or nil.
func Lookup(name string) *Key {
	for _, k := range Keys {
		if k.Name == name {
			return k
		}
	}
	return nil
}

// Set parses text (the flag form) into s.
func (k *Key) Set(s *Settings, text string) error { return k.set(s, text) }

// Text returns s's value of k in the flag form.
func (k *Key) Text(s *Settings) string { return k.get(s) }

// IsBool reports whether k is a boolean (a flag without value).
func (k *Key) IsBool() bool { return k.kind == kindBool }

// Literal returns s's value of k as a TOML value.
func (k *Key) Literal(s *Settings) string {
	t := k.get(s)
	switch k.kind {
	case kindString:
		return strconv.Quote(t)
	case kindPorts:
		return "[" + strings.ReplaceAll(t, ",", ", ") + "]"
	}
	return t
}

// fromTOML turns a decoded TOML value into the flag text form, checking its type.
func (k *Key) fromTOML(v any) (string, error) {
	bad := fmt.Errorf("%w: want %s, not %s", ErrBadValue, k.kind, tomlType(v))
	switch k.kind {
	case kindInt:
		if n, ok := v.(int64); ok {
			return strconv.FormatInt(n, 10), nil
		}
	case kindMark:
		switch n := v.(type) {
		case int64:
			if n < 0 {
				return "", fmt.Errorf("%w: %d is negative", ErrBadValue, n)
			}
			return strconv.FormatInt(n, 10), nil
		case string:
			return n, nil
		}
	case kindBool:
		if b, ok := v.(bool); ok {
			return strconv.FormatBool(b), nil
		}
	case kindString:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case kindPorts:
		list, ok := v.([]any)
		if !ok {
			return "", bad
		}
		parts := make([]string, len(list))
		for i, e := range list {
			n, ok := e.(int64)
			if !ok {
				return "", fmt.Errorf("%w: want %s, found %s in it", ErrBadValue, k.kind, tomlType(e))
			}
			parts[i] = strconv.FormatInt(n, 10)
		}
		return strings.Join(parts, ","), nil
	}
	return "", bad
}

func tomlType(v any) string {
	switch v.(type) {
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a date"
	}
	return fmt.Sprintf("%T", v)
}

// setInt parses an integer within [min, max] and stores it with store.
func setInt(t string, min, max int, store func(int)) error {
	n, err := strconv.Atoi(strings.TrimSpace(t))
	if err != nil {
		return fmt.Errorf("%w: %q is not an integer", ErrBadValue, t)
	}
	if n < min || n > max {
		return fmt.Errorf("%w: %d is out of range %d..%d", ErrBadValue, n, min, max)
	}
	store(n)
	return nil
}

// setBool parses a boolean and stores it with store.
func setBool(t string, store func(bool)) error {
	b, err := strconv.ParseBool(t)
	if err != nil {
		return fmt.Errorf("%w: %q is not true or false", ErrBadValue, t)
	}
	store(b)
	return nil
}

func setPorts(r *rules.Config, t string) error {
	var out []uint16
	for _, f := range strings.Split(t, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("%w: bad port %q", ErrBadValue, f)
		}
		if slices.Contains(out, uint16(n)) {
			return fmt.Errorf("%w: port %d given twice", ErrBadValue, n)
		}
		out = append(out, uint16(n))
	}
	r.Ports = out
	return nil
}

func portsText(p []uint16) string {
	s := make([]string, len(p))
	for i, v := range p {
		s[i] = strconv.Itoa(int(v))
	}
	return strings.Join(s, ",")
}
