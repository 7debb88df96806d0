package counters

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Kind says how a value behaves over time.
type Kind uint8

const (
	// Counter only grows (from the daemon's start).
	Counter Kind = iota
	// Gauge is a current amount that goes up and down.
	Gauge
)

func (k Kind) String() string {
	switch k {
	case Counter:
		return "counter"
	case Gauge:
		return "gauge"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// MarshalText implements encoding.TextMarshaler.
func (k Kind) MarshalText() ([]byte, error) {
	if k > Gauge {
		return nil, fmt.Errorf("%w: %d", ErrKind, uint8(k))
	}
	return []byte(k.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *Kind) UnmarshalText(b []byte) error {
	switch string(b) {
	case "counter":
		*k = Counter
	case "gauge":
		*k = Gauge
	default:
		return fmt.Errorf("%w: %q", ErrKind, b)
	}
	return nil
}

// Desc describes one counter or gauge.
type Desc struct {
	// Name is the snake_case name `ftpct stats` shows; the Prometheus
	// metric is "ftpct_" + Name (+ "_total" for a counter).
	Name string `json:"name"`
	Kind Kind   `json:"kind"`
	// Help is its one line of meaning.
	Help string `json:"help"`
}

// Metric returns the Prometheus metric name of d.
func (d Desc) Metric() string {
	if d.Kind == Counter {
		return "ftpct_" + d.Name + "_total"
	}
	return "ftpct_" + d.Name
}

// Check reports what is wrong with d's description, if anything.
func (d Desc) Check() error {
	switch {
	case d.Name == "":
		return fmt.Errorf("%w: no name", ErrDesc)
	case strings.Trim(d.Name, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" || strings.HasPrefix(d.Name, "_"):
		return fmt.Errorf("%w: name %q is not snake_case", ErrDesc, d.Name)
	case strings.TrimSpace(d.Help) == "":
		return fmt.Errorf("%w: %s has no help text", ErrDesc, d.Name)
	case strings.ContainsAny(d.Help, "\n|"):
		return fmt.Errorf("%w: help of %s must be one line without '|'", ErrDesc, d.Name)
	case d.Kind > Gauge:
		return fmt.Errorf("%w: %s: %v", ErrKind, d.Name, d.Kind)
	}
	return nil
}

// CheckAll checks every description and that no name is used twice.
func CheckAll(descs []Desc) error {
	seen := make(map[string]bool, len(descs))
	for _, d := range descs {
		if err := d.Check(); err != nil {
			return err
		}
		if seen[d.Name] {
			return fmt.Errorf("%w: %s defined twice", ErrDesc, d.Name)
		}
		seen[d.Name] = true
	}
	return nil
}

// Value is a described value at one point in time.
type Value struct {
	Desc
	Value uint64 `json:"value"`
}

// Values is an ordered list of values. Its JSON form (what the control
// socket carries) keeps the descriptions; Flat gives the flat
// {"name": value} object of `ftpct stats --json`.
type Values []Value

// Get returns the value called name, and whether there is one.
func (vs Values) Get(name string) (uint64, bool) {
	for _, v := range vs {
		if v.Name == name {
			return v.Value, true
		}
	}
	return 0, false
}

// Flat returns vs as one JSON object {"name": value, ...}, in vs's order.
func (vs Values) Flat() Flat { return Flat(vs) }

// Flat marshals as a flat JSON object of names and values, in order.
type Flat []Value

// MarshalJSON implements json.Marshaler.
func (f Flat) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, v := range f {
		if i > 0 {
			b.WriteByte(',')
		}
		name, err := json.Marshal(v.Name)
		if err != nil {
			return nil, err
		}
		b.Write(name)
		b.WriteByte(':')
		b.WriteString(strconv.FormatUint(v.Value, 10))
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
