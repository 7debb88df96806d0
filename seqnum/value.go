// Package seqnum is TCP sequence-number arithmetic, in the manner of gVisor's
// tcpip/seqnum: a Value wraps around modulo 2^32 (RFC 9293 section 3.4), so
// two values are compared by their signed distance, never with < or >.
//
// The package has no state, needs no privileges and never allocates.
package seqnum

// Value is a TCP sequence number.
type Value uint32

// Size is a length in sequence space (a number of bytes).
type Size uint32

// Before reports whether v comes before w (int32(v-w) < 0).
func (v Value) Before(w Value) bool { return int32(v-w) < 0 }

// After reports whether v comes after w (int32(v-w) > 0).
func (v Value) After(w Value) bool { return int32(v-w) > 0 }

// Add returns v moved by n bytes (n may be negative), wrapping around.
func (v Value) Add(n int32) Value { return v + Value(n) }

// Diff returns the signed distance v-w, valid while |v-w| < 2^31.
func (v Value) Diff(w Value) int32 { return int32(v - w) }

// InRange reports whether a <= v < b.
func (v Value) InRange(a, b Value) bool { return !v.Before(a) && v.Before(b) }

// Range is the half-open stretch [Start, End) of sequence space.
type Range struct {
	Start, End Value
}

// RangeOf returns the range of n bytes from start.
func RangeOf(start Value, n int) Range { return Range{Start: start, End: start.Add(int32(n))} }

// Len returns the number of bytes in r.
func (r Range) Len() Size { return Size(r.End - r.Start) }

// Empty reports whether r holds no byte.
func (r Range) Empty() bool { return !r.Start.Before(r.End) }

// Contains reports whether v lies in r.
func (r Range) Contains(v Value) bool { return v.InRange(r.Start, r.End) }

// Overlaps reports whether r and o share at least one byte.
func (r Range) Overlaps(o Range) bool {
	return r.Start.Before(o.End) && o.Start.Before(r.End) && !r.Empty() && !o.Empty()
}

// Covers reports whether every byte of o lies in r.
func (r Range) Covers(o Range) bool { return !o.Start.Before(r.Start) && !o.End.After(r.End) }
