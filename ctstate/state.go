package ctstate

import (
	"encoding/binary"
	"fmt"
)

// Size is the length of the encoding in bytes: the size of a conntrack
// entry's labels (NF_CT_LABELS_MAX_SIZE, include/net/netfilter/nf_conntrack_labels.h).
const Size = 16

// Formats this package writes (the first 4 bits of the labels).
const (
	// Version is the format of the newest length change of each direction.
	Version = 1
	// VersionSpan is the format of one direction whose stream carries more
	// than one change the peer has not acknowledged: its newest change and
	// its unacknowledged span (Adj.Span, Adj.Lump).
	VersionSpan = 2
)

// Limits of the encoding (two's complement fields).
const (
	// MaxOffset and MinOffset bound a direction's cumulative offset (20 bits).
	MaxOffset = 1<<19 - 1
	MinOffset = -1 << 19
	// MaxDelta and MinDelta bound one length change (8 bits).
	MaxDelta = 1<<7 - 1
	MinDelta = -1 << 7
	// MaxSpan bounds Adj.Span (16 bits).
	MaxSpan = 1<<16 - 1
	// MaxLump and MinLump bound Adj.Lump (14 bits): the sum of the length
	// changes of up to 64 rewrites (stream.MaxRecords) always fits.
	MaxLump = 1<<13 - 1
	MinLump = -1 << 13
)

// Adj is one direction's sequence adjustment, like the kernel's struct
// nf_ct_seqadj: the newest length change was made at original sequence number
// Pos and changed the stream's length by Delta bytes; After is the cumulative
// offset of every byte after it. Bytes up to Pos are shifted by After-Delta
// back to the previous change.
//
// Span and Lump describe the changes before the newest that the peer had not
// acknowledged when the state was stored (its sender may still resend
// them): the oldest starts Span bytes before Pos (From), and together they
// changed the length by Lump bytes, so bytes up to From (back to the newest
// acknowledged change) are shifted by Before()-Lump (FromOffset). Span 0:
// the newest change is the only one not acknowledged.
type Adj struct {
	Pos   uint32
	Delta int32
	After int32
	Span  uint32
	Lump  int32
}

// Before returns the offset that applies up to and including Pos.
func (a Adj) Before() int32 { return a.After - a.Delta }

// From returns the position of the oldest change not acknowledged.
func (a Adj) From() uint32 { return a.Pos - a.Span }

// FromOffset returns the offset that applies up to and including From.
func (a Adj) FromOffset() int32 { return a.Before() - a.Lump }

// Check reports whether a fits the encoding: a non-zero delta within
// [MinDelta, MaxDelta], an offset within [MinOffset, MaxOffset], a span
// within MaxSpan and a lump within [MinLump, MaxLump] (0 without a span).
func (a Adj) Check() error {
	if a.Delta == 0 || a.Delta < MinDelta || a.Delta > MaxDelta {
		return fmt.Errorf("delta %d: %w", a.Delta, ErrRange)
	}
	if a.After < MinOffset || a.After > MaxOffset {
		return fmt.Errorf("offset %d: %w", a.After, ErrRange)
	}
	if a.Span > MaxSpan || a.Lump < MinLump || a.Lump > MaxLump || (a.Span == 0 && a.Lump != 0) {
		return fmt.Errorf("span %d, lump %d: %w", a.Span, a.Lump, ErrRange)
	}
	return nil
}

// spanned reports whether a keeps a span (needs VersionSpan).
func (a Adj) spanned() bool { return a.Span != 0 }

// State is what ftpct keeps of one control connection: the adjustment of
// each direction (index 0: original, client to server; 1: reply), where
// Valid says that direction's stream was resized.
type State struct {
	Valid [2]bool
	Dir   [2]Adj
}

// IsZero reports whether s holds no adjustment.
func (s State) IsZero() bool { return !s.Valid[0] && !s.Valid[1] }

// Layout of the 128 bits, most significant first, format Version (1):
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
//
// Format VersionSpan (2) holds exactly one valid direction, with a span:
//
//	bits 127..124  version (2)
//	bits 123..122  valid bits as above, exactly one set
//	bits 121..120  reserved, 0
//	bits 119..60   the valid direction: Pos (32), After (20), Delta (8)
//	bits  59..44   its Span (16, not 0)
//	bits  43..30   its Lump (14)
//	bits  29..0    reserved, 0
//
// Both directions with a span do not fit in 128 bits: Encode refuses them
// (the caller stores them without spans, see package engine).
const (
	dirBits    = 60
	posBits    = 32
	offsetBits = 20
	deltaBits  = 8
	spanBits   = 16
	lumpBits   = 14
	validShift = 122 - 64 // bit 122 in the high word, reply; +1 for original
)

// errTwoSpans: both directions keep a span, which the labels cannot hold.
var errTwoSpans = fmt.Errorf("spans in both directions: %w", ErrRange)

func dirField(a Adj) uint64 {
	return uint64(a.Pos)<<(offsetBits+deltaBits) |
		(uint64(uint32(a.After))&(1<<offsetBits-1))<<deltaBits |
		uint64(uint8(int8(a.Delta)))
}

func readDir(f uint64) Adj {
	return Adj{
		Pos:   uint32(f >> (offsetBits + deltaBits)),
		After: signExtend(f>>deltaBits&(1<<offsetBits-1), offsetBits),
		Delta: int32(int8(uint8(f))),
	}
}

// Encode returns the labels for s. It fails with ErrRange when a valid
// direction does not fit, or both directions keep a span; a direction that
// is not valid must be zero.
func Encode(s State) ([Size]byte, error) {
	var out [Size]byte
	version := uint64(Version)
	spanDir := -1
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
		if a.spanned() {
			if spanDir >= 0 || s.Valid[1-d] {
				return out, errTwoSpans
			}
			spanDir, version = d, VersionSpan
		}
		fields[d] = dirField(a)
	}
	if s.IsZero() {
		return out, nil // nothing to keep: all zero, as the kernel starts
	}
	hi := version << 60
	for d := range 2 {
		if s.Valid[d] {
			hi |= 1 << (validShift + 1 - d)
		}
	}
	var lo uint64
	if spanDir >= 0 {
		a := s.Dir[spanDir]
		f := fields[spanDir]
		hi |= f >> 4
		lo = f<<60 | uint64(a.Span)<<(dirBits-spanBits) |
			(uint64(uint32(a.Lump))&(1<<lumpBits-1))<<(dirBits-spanBits-lumpBits)
	} else {
		// Original: bits 119..60 = high word bits 55..0 and low word bits 63..60.
		hi |= fields[0] >> 4
		lo = fields[0]<<60 | fields[1]
	}
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
	v := hi >> 60
	if v != Version && v != VersionSpan {
		return State{}, fmt.Errorf("version %d: %w", v, ErrVersion)
	}
	if hi>>(validShift-2)&3 != 0 {
		return State{}, fmt.Errorf("reserved bits set: %w", ErrCorrupt)
	}
	if v == VersionSpan {
		return decodeSpan(hi, lo)
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
		a := readDir(f)
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

// decodeSpan reads format VersionSpan.
func decodeSpan(hi, lo uint64) (State, error) {
	var d int
	switch hi >> validShift & 3 {
	case 2:
		d = 0
	case 1:
		d = 1
	default:
		return State{}, fmt.Errorf("span format without exactly one direction: %w", ErrCorrupt)
	}
	if lo&(1<<(dirBits-spanBits-lumpBits)-1) != 0 {
		return State{}, fmt.Errorf("reserved bits set: %w", ErrCorrupt)
	}
	a := readDir((hi&(1<<56-1))<<4 | lo>>60)
	a.Span = uint32(lo >> (dirBits - spanBits) & (1<<spanBits - 1))
	a.Lump = signExtend(lo>>(dirBits-spanBits-lumpBits)&(1<<lumpBits-1), lumpBits)
	if err := a.Check(); err != nil || !a.spanned() {
		return State{}, fmt.Errorf("direction %d: %w", d, ErrCorrupt)
	}
	var s State
	s.Valid[d] = true
	s.Dir[d] = a
	return s, nil
}

// signExtend reads the low n bits of v as a two's complement number.
func signExtend(v uint64, n uint) int32 {
	shift := 64 - n
	return int32(int64(v<<shift) >> shift)
}
