package rewrite

import (
	"encoding/binary"
	"fmt"

	"github.com/ftpct/ftpct/seqnum"
)

// MaxRecords is how many length changes a SeqAdj remembers individually. Records are folded
// into the base offset with Fold once the peer has acknowledged them; until then a full SeqAdj
// refuses new records (ErrFull), because folding an unacknowledged record would map the
// segments that still carry it, and their retransmissions, to the wrong place.
const MaxRecords = 64

// Record is one length change of a byte stream: the original bytes starting at original
// sequence number Pos were replaced so that the stream grew by Delta bytes (Delta < 0: shrank).
type Record struct {
	Pos   seqnum.Value
	Delta int32
}

// SeqAdj records the length changes made to ONE direction of a TCP connection, like the
// kernel's nf_conntrack_seqadj but with up to MaxRecords records instead of only the last
// one, so retransmissions of older rewritten segments map to the same wire sequence numbers.
// The caller folds records the peer has acknowledged (Fold), so the records kept are exactly
// the length changes a retransmission may still carry.
//
// The zero value means "no adjustment". SeqAdj is pointer-free and fixed-size: it may be
// copied, embedded in a session struct, and persisted with AppendBinary/UnmarshalBinary.
// It is not safe for concurrent use.
type SeqAdj struct {
	// base is the sum of the deltas of records folded out of recs by Fold (all of them before recs[0]).
	base int32
	// n is the number of used entries in recs, which are in increasing Pos order.
	n    uint8
	recs [MaxRecords]Record
}

// IsZero reports whether a makes no adjustment at all (nil counts as zero).
func (a *SeqAdj) IsZero() bool {
	return a == nil || (a.n == 0 && a.base == 0)
}

// Len returns the number of individually kept records.
func (a *SeqAdj) Len() int {
	if a == nil {
		return 0
	}
	return int(a.n)
}

// At returns the i-th kept record (0 = oldest). It panics if i is out of range, like a slice.
func (a *SeqAdj) At(i int) Record {
	return a.recs[:a.n][i]
}

// Base returns the summed delta of the records folded out by Fold.
func (a *SeqAdj) Base() int32 {
	if a == nil {
		return 0
	}
	return a.base
}

// Records returns a copy of the kept records, oldest first. It allocates: for debugging and
// tests, not for the packet path (use Len and At there).
func (a *SeqAdj) Records() []Record {
	if a == nil || a.n == 0 {
		return nil
	}
	return append([]Record(nil), a.recs[:a.n]...)
}

// Record notes that the original bytes starting at original sequence number pos were replaced
// so that the stream grew by delta bytes. Recording a position again with the same delta (a
// retransmission of the same rewritten segment) changes nothing; with another delta it returns
// ErrConflict. A position before the newest record that is not recorded returns ErrOutOfOrder,
// and a new record when MaxRecords are kept returns ErrFull (see Full). A zero delta records
// nothing. On error a is unchanged.
func (a *SeqAdj) Record(pos seqnum.Value, delta int32) error {
	for i := int(a.n) - 1; i >= 0; i-- {
		r := a.recs[i]
		if r.Pos == pos {
			if r.Delta != delta {
				return fmt.Errorf("record %d at seq %d, have %d: %w", delta, pos, r.Delta, ErrConflict)
			}
			return nil
		}
		if r.Pos.Before(pos) {
			break
		}
	}
	if a.n > 0 && !a.recs[a.n-1].Pos.Before(pos) {
		return fmt.Errorf("record at seq %d, newest at %d: %w", pos, a.recs[a.n-1].Pos, ErrOutOfOrder)
	}
	if delta == 0 {
		return nil
	}
	if a.n == MaxRecords {
		return fmt.Errorf("record at seq %d: %d kept: %w", pos, MaxRecords, ErrFull)
	}
	a.recs[a.n] = Record{Pos: pos, Delta: delta}
	a.n++
	return nil
}

// Full reports whether a keeps MaxRecords records, so that Record of a new position fails.
func (a *SeqAdj) Full() bool {
	return a != nil && a.n == MaxRecords
}

// Fold merges the records with Pos strictly before upTo into the base offset and returns how
// many it merged. The caller passes a position the peer has acknowledged (in original
// sequence space) that lies inside no rewritten range: segments starting at or after upTo map
// exactly as before, and no new data can start before it. A retransmission of acknowledged
// bytes from before upTo (its acknowledgement was lost on the way to the sender) is mapped
// with the whole base, so it ends at or before the mapped upTo: inside what the receiver
// already has, which it discards, answering with the acknowledgement the sender missed.
func (a *SeqAdj) Fold(upTo seqnum.Value) int {
	if a == nil {
		return 0
	}
	k := 0
	for k < int(a.n) && a.recs[k].Pos.Before(upTo) {
		a.base += a.recs[k].Delta
		k++
	}
	if k > 0 {
		copy(a.recs[:], a.recs[k:a.n])
		a.n -= uint8(k)
		clear(a.recs[a.n:])
	}
	return k
}

// Offset returns the total delta that applies to a segment whose first byte has ORIGINAL
// sequence number s: the base plus the deltas of the records with Pos strictly before s. A
// segment starting at or before a record's Pos contains that replaced range itself, so only
// the earlier records shift it (the caller re-applies the edit to it).
func (a *SeqAdj) Offset(s seqnum.Value) int32 {
	if a == nil {
		return 0
	}
	off := a.base
	for i := 0; i < int(a.n); i++ {
		r := a.recs[i]
		if !r.Pos.Before(s) {
			break
		}
		off += r.Delta
	}
	return off
}

// MapSeq maps an original sequence number of this direction to the wire: s + Offset(s).
func (a *SeqAdj) MapSeq(s seqnum.Value) seqnum.Value {
	return s.Add(a.Offset(s))
}

// UnmapAck converts a sequence number acknowledged by the peer (an ack or a SACK edge, in the
// rewritten wire space of this direction) back to the original space: it finds the newest
// record whose wire position (Pos plus the offset before it) is strictly before w and
// subtracts the cumulative delta up to and including it. Folded records always count.
func (a *SeqAdj) UnmapAck(w seqnum.Value) seqnum.Value {
	if a == nil {
		return w
	}
	before := a.base // cumulative delta before record i
	cum := a.base    // cumulative delta of the newest record that applies
	for i := 0; i < int(a.n); i++ {
		r := a.recs[i]
		if !r.Pos.Add(before).Before(w) {
			break
		}
		before += r.Delta
		cum = before
	}
	return w.Add(-cum)
}

// binaryVersion is the first byte of the AppendBinary encoding.
const binaryVersion = 1

// AppendBinary appends a stable encoding of a to b: version (1 byte), record count (1 byte),
// base (4 bytes, big endian), then per record Pos and Delta (4 bytes each, big endian).
// It implements encoding.BinaryAppender.
func (a *SeqAdj) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, binaryVersion, a.n)
	b = binary.BigEndian.AppendUint32(b, uint32(a.base))
	for _, r := range a.recs[:a.n] {
		b = binary.BigEndian.AppendUint32(b, uint32(r.Pos))
		b = binary.BigEndian.AppendUint32(b, uint32(r.Delta))
	}
	return b, nil
}

// MarshalBinary returns the AppendBinary encoding of a.
func (a *SeqAdj) MarshalBinary() ([]byte, error) {
	return a.AppendBinary(make([]byte, 0, 6+8*int(a.n)))
}

// UnmarshalBinary decodes the AppendBinary encoding into a. It rejects data that could not
// have been produced by Record (unsorted positions, zero deltas, too many records).
func (a *SeqAdj) UnmarshalBinary(b []byte) error {
	if len(b) < 6 || b[0] != binaryVersion {
		return fmt.Errorf("seqadj header: %w", ErrCorrupt)
	}
	n := int(b[1])
	if n > MaxRecords || len(b) != 6+8*n {
		return fmt.Errorf("seqadj with %d records in %d bytes: %w", n, len(b), ErrCorrupt)
	}
	var v SeqAdj
	v.base = int32(binary.BigEndian.Uint32(b[2:]))
	v.n = uint8(n)
	for i := range n {
		r := Record{
			Pos:   seqnum.Value(binary.BigEndian.Uint32(b[6+8*i:])),
			Delta: int32(binary.BigEndian.Uint32(b[10+8*i:])),
		}
		if r.Delta == 0 || (i > 0 && !v.recs[i-1].Pos.Before(r.Pos)) {
			return fmt.Errorf("seqadj record %d: %w", i, ErrCorrupt)
		}
		v.recs[i] = r
	}
	*a = v
	return nil
}
