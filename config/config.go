package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/BurntSushi/toml"
)

// DefaultPath is the config file read unless --config names another.
const DefaultPath = "/etc/ftpct/ftpct.conf"

// Source says where a setting's value came from.
type Source uint8

const (
	FromDefault Source = iota
	FromFile
	FromFlag
)

func (s Source) String() string {
	switch s {
	case FromDefault:
		return "default"
	case FromFile:
		return "file"
	case FromFlag:
		return "flag"
	}
	return fmt.Sprintf("Source(%d)", uint8(s))
}

// Origin is where a key's effective value was set.
type Origin struct {
	Source Source
	File   string // FromFile only
	Line   int    // FromFile only
}

func (o Origin) String() string {
	if o.Source == FromFile {
		return fmt.Sprintf("file %s:%d", o.File, o.Line)
	}
	return o.Source.String()
}

// Config is an effective configuration: the settings and where each came from.
type Config struct {
	Settings
	// File is the config file that was read, "" when there was none.
	File   string
	origin map[string]Origin
}

// Origin returns where key name's value came from.
func (c *Config) Origin(name string) Origin { return c.origin[name] }

// Loader builds Configs from the defaults, a config file and the command
// line's flags, in that order of precedence (flags win). It keeps the flags so
// that Load can be called again (on SIGHUP) with the same command line.
type Loader struct {
	// Path is the config file; Explicit says it was named with --config,
	// so that a missing file is an error.
	Path     string
	Explicit bool
	flags    []flagValue
}

type flagValue struct {
	key  *Key
	text string
}

// NewLoader returns a Loader reading DefaultPath.
func NewLoader() *Loader { return &Loader{Path: DefaultPath} }

// Flags registers --config on fs, and a flag for each key that keep accepts
// (all keys when keep is nil). Flag values are checked as they are parsed.
func (l *Loader) Flags(fs *flag.FlagSet, keep func(*Key) bool) {
	fs.Func("config", "config `file` (default "+DefaultPath+"; a missing default file is fine, a missing named one is an error)", func(t string) error {
		l.Path, l.Explicit = t, true
		return nil
	})
	def := Defaults()
	for _, k := range Keys {
		if keep != nil && !keep(k) {
			continue
		}
		set := func(t string) error {
			scratch := Defaults()
			if err := k.Set(&scratch, t); err != nil {
				return err
			}
			l.flags = append(l.flags, flagValue{key: k, text: t})
			return nil
		}
		if k.IsBool() {
			fs.BoolFunc(k.Name, k.Usage, set)
			continue
		}
		fs.Func(k.Name, fmt.Sprintf("%s (default %s)", k.Usage, k.Text(&def)), set)
	}
}

// Load reads the file (if any) over the defaults and applies the flags.
func (l *Loader) Load() (*Config, error) {
	c := &Config{Settings: Defaults(), origin: make(map[string]Origin, len(Keys))}
	for _, k := range Keys {
		c.origin[k.Name] = Origin{Source: FromDefault}
	}
	if err := c.readFile(l.Path, l.Explicit); err != nil {
		return nil, err
	}
	for _, f := range l.flags {
		if err := f.key.Set(&c.Settings, f.text); err != nil {
			return nil, &KeyError{Key: f.key.Name, Err: err}
		}
		c.origin[f.key.Name] = Origin{Source: FromFlag}
	}
	if err := c.Rules.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadValue, err)
	}
	return c, nil
}

// fileValue decodes one top-level key of the file.
type fileValue struct {
	name string
	s    *Settings
	err  error // the outcome: nil when the value was stored
}

// errLocate is returned by every UnmarshalTOML call. The toml library
// answers an Unmarshaler's error with a ParseError carrying the key's
// position; that is how each key's line is learnt, whatever the outcome
// (recorded in fileValue.err).
var errLocate = errors.New("locate")

func (v *fileValue) UnmarshalTOML(data any) error {
	k := Lookup(v.name)
	if k == nil {
		v.err = ErrUnknownKey
		return errLocate
	}
	text, err := k.fromTOML(data)
	if err == nil {
		err = k.Set(v.s, text)
	}
	v.err = err
	return errLocate
}

func (c *Config) readFile(path string, explicit bool) error {
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !explicit:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: %w", path, ErrNoFile)
	case err != nil:
		return fmt.Errorf("config file: %w", err)
	}
	var raw map[string]toml.Primitive
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return &KeyError{File: path, Line: pe.Position.Line, Err: fmt.Errorf("%w: %s", ErrSyntax, pe.Message)}
		}
		return fmt.Errorf("%s: %w: %v", path, ErrSyntax, err)
	}
	c.File = path
	for _, key := range md.Keys() {
		if len(key) != 1 {
			continue // inside a table: the table's own key is reported
		}
		name := key[0]
		v := &fileValue{name: name, s: &c.Settings}
		line := 0
		var pe toml.ParseError
		if err := md.PrimitiveDecode(raw[name], v); errors.As(err, &pe) {
			line = pe.Position.Line
		} else if err != nil {
			v.err = err
		}
		if v.err != nil {
			return &KeyError{Key: name, File: path, Line: line, Err: v.err}
		}
		c.origin[name] = Origin{Source: FromFile, File: path, Line: line}
	}
	return nil
}

// Live returns c with the live keys that next changes taken from next (what
// a running daemon applies on SIGHUP), the names of the keys next wanted to
// change that need a restart (kept at c's value), and the names of the live
// keys that changed. Whatever is not a key stays as in c.
func (c *Config) Live(next *Config) (merged *Config, kept, changed []string) {
	m := &Config{Settings: c.Settings, File: next.File, origin: make(map[string]Origin, len(Keys))}
	m.Rules.Ports = append([]uint16(nil), c.Rules.Ports...)
	for _, k := range Keys {
		m.origin[k.Name] = c.origin[k.Name]
		text := k.Text(&next.Settings)
		if k.Text(&c.Settings) == text {
			m.origin[k.Name] = next.origin[k.Name]
			continue
		}
		if !k.Live {
			kept = append(kept, k.Name)
			continue
		}
		changed = append(changed, k.Name)
		// Cannot fail: the text came from a valid setting.
		_ = k.Set(&m.Settings, text)
		m.origin[k.Name] = next.origin[k.Name]
	}
	return m, kept, changed
}

// Write prints the effective configuration as a config file, each key
// followed by where its value came from.
func (c *Config) Write(w io.Writer) error {
	from := "no config file"
	if c.File != "" {
		from = "config file " + c.File
	}
	if _, err := fmt.Fprintf(w, "# ftpct effective configuration (%s)\n", from); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, k := range Keys {
		fmt.Fprintf(tw, "%s = %s\t# %s\n", k.Name, k.Literal(&c.Settings), c.origin[k.Name])
	}
	return tw.Flush()
}

// WriteDefaults prints a config file with every key commented out at its
// default value, each under its description: the file the package installs
// as /etc/ftpct/ftpct.conf (deploy/ftpct.conf).
func WriteDefaults(w io.Writer) error {
	def := Defaults()
	var b strings.Builder
	b.WriteString("# ftpct configuration (TOML). Every key is also a flag of `ftpct run` of the\n" +
		"# same name; a flag overrides the file. Shown here: the defaults.\n" +
		"# `ftpct check` prints the effective configuration; `systemctl reload ftpct`\n" +
		"# (SIGHUP) applies the keys marked \"live\" without a restart; the others\n" +
		"# need `systemctl restart ftpct`.\n")
	for _, k := range Keys {
		live := "restart"
		if k.Live {
			live = "live"
		}
		fmt.Fprintf(&b, "\n# %s (%s)\n#%s = %s\n", strings.ReplaceAll(k.Usage, "`", ""), live, k.Name, k.Literal(&def))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
