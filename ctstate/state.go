package ctstate

import (
	"encoding/binary"
	"fmt"
)

// Size is the length of the encoding in bytes: the size of a conntrack
// entry's labels (NF_CT_LABELS_MAX_SIZE, include/net/netfilter/nf_conntrack_labels.h).
const Size = 16

// Version is the format this package writes (the first 4 bits).
const Version = 1

// Limits of the encoding (two's complement fields).
const (
	// MaxOffset and MinOffset bound a direction's cumulative offset (20 bits).
	MaxOffset = 1<<19 - 1
	MinOffset = -1 << 19
	// MaxDelta and MinDelta bound one length change (8 bits).
	MaxDelta = 1<<7 - 1
	MinDelta = -1 << 7
)

// Adj is one direction's sequence adjustment, like the kernel's struct
// nf_ct_seqadj: the newest length change was made at original sequence number
// Pos and changed the stream's length by Delta bytes; After is the cumulative
// offset of every byte after it. Bytes up to Pos are shifted by After-Delta.
type Adj struct {
	Pos   uint32
	Delta int32
	After int32
}

// Before returns the offset that applies up to and including Pos.
func (a Adj) Before() int32 { return a.After - a.Delta }

// Check reports whether a fits the encoding: a non-zero delta within
// [MinDelta, MaxDelta] and an offset within [MinOffset, MaxOffset].
func (a Adj) Check() error {
	if a.Delta == 0 || a.Delta < MinDelta || a.Delta > MaxDelta {
		return fmt.Errorf("delta %d: %w", a.Delta, ErrRange)
	}
	if a.After < MinOffset || a.After > MaxOffset {
		return fmt.Errorf("offset %d: %w", a.After, ErrRange)
	}
	return nil
}

// State is what ftpct keeps of one control connection: the adjustment of
// each direction (index 0: original, client to server; 1: reply), where
// Valid says that direction's stream was resized.
type State struct {
	Valid [2]bool
	Dir   [2]Adj
}

// IsZero reports whether s holds no adjustment.
func (s State) IsZero() bool { return !s.Valid[0] && !s.Valid[1] }

// Layout of the 128 bits, most significant first:
//
//	bits 127..124  version (1)
//	bit  123       original direction valid
//	bit  122       reply direction valid
//	bits 121..120  reserved, 0
//	bits 119..60   original direction: Pos (32), After (20), Delta (8)
//	bits  59..0    reply direction, same layout
//
// A direction that is not valid has all its bits 0. All zero labels are the
// zero State (no state written yet).
const (
	dirBits    = 60
	posBits    = 32
	offsetBits = 20
	deltaBits  = 8
	validShift = 122 - 64 // bit 122 in the high word, reply; +1 for original
)

// Encode returns the labels for s. It fails with ErrRange when a valid
// direction does not fit; a direction that is not valid must be zero.
func Encode(s State) ([Size]byte, error) {
	var out [Size]byte
	hi := uint64(Version) << 60
	var fields [2]uint64
	for d := range 2 {
		if !s.Valid[d] {
			if s.Dir[d] != (Adj{}) {
				return out, fmt.Errorf("direction %d not valid but set: %w", d, ErrRange)
			}
			continue
		}
		a := s.Dir[d]
		if err := a.Check(); err != nil {
			return out, fmt.Errorf("direction %d: %w", d, err)
		}
		hi |= 1 << (validShift + 1 - d)
		fields[d] = uint64(a.Pos)<<(offsetBits+deltaBits) |
			(uint64(uint32(a.After))&(1<<offsetBits-1))<<deltaBits |
			uint64(uint8(int8(a.Delta)))
	}
	if s.IsZero() {
		return out, nil // nothing to keep: all zero, as the kernel starts
	}
	// Original: bits 119..60 = high word bits 55..0 and low word bits 63..60.
	hi |= fields[0] >> 4
	lo := fields[0]<<60 | fields[1]
	binary.BigEndian.PutUint64(out[0:], hi)
	binary.BigEndian.PutUint64(out[8:], lo)
	return out, nil
}

// Decode reads labels written by Encode. All-zero labels give the zero
// State. Another version gives ErrVersion; bits this version never sets, or
// a field that Encode would refuse, give ErrCorrupt. On error the returned
// State is the zero value: nothing is ever half read.
func Decode(b [Size]byte) (State, error) {
	hi := binary.BigEndian.Uint64(b[0:])
	lo := binary.BigEndian.Uint64(b[8:])
	if hi == 0 && lo == 0 {
		return State{}, nil
	}
	if v := hi >> 60; v != Version {
		return State{}, fmt.Errorf("version %d: %w", v, ErrVersion)
	}
	if hi>>(validShift-2)&3 != 0 {
		return State{}, fmt.Errorf("reserved bits set: %w", ErrCorrupt)
	}
	var s State
	fields := [2]uint64{(hi&(1<<56-1))<<4 | lo>>60, lo & (1<<dirBits - 1)}
	for d := range 2 {
		f := fields[d]
		if hi>>(validShift+1-d)&1 == 0 {
			if f != 0 {
				return State{}, fmt.Errorf("direction %d not valid but set: %w", d, ErrCorrupt)
			}
			continue
		}
		a := Adj{
			Pos:   uint32(f >> (offsetBits + deltaBits)),
			After: signExtend(f>>deltaBits&(1<<offsetBits-1), offsetBits),
			Delta: int32(int8(uint8(f))),
		}
		if err := a.Check(); err != nil {
			return State{}, fmt.Errorf("direction %d: %w", d, ErrCorrupt)
		}
		s.Valid[d] = true
		s.Dir[d] = a
	}
	if s.IsZero() {
		return State{}, fmt.Errorf("version set without a direction: %w", ErrCorrupt)
	}
	return s, nil
}

// signExtend reads the low n bits of v as a two's complement number.
func signExtend(v uint64, n uint) int32 {
	shift := 64 - n
	return int32(int64(v<<shift) >> shift)
}
