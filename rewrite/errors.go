package rewrite

import "errors"

// Sentinel errors. Callers compare with errors.Is; functions wrap them with context.
var (
	// ErrShort means the buffer ends before a header or the length its IP header announces.
	ErrShort = errors.New("rewrite: packet too short")
	// ErrVersion means the IP version nibble is neither 4 nor 6.
	ErrVersion = errors.New("rewrite: not an IPv4 or IPv6 packet")
	// ErrNotTCP means the upper-layer protocol is not TCP (or hidden behind an unsupported header).
	ErrNotTCP = errors.New("rewrite: not a TCP packet")
	// ErrFragment means an IPv4 fragment (MF set or offset != 0) or an IPv6 fragment header.
	ErrFragment = errors.New("rewrite: fragmented packet")
	// ErrBadHeader means a header field is inconsistent (IHL, data offset, lengths, jumbogram).
	ErrBadHeader = errors.New("rewrite: malformed header")

	// ErrOutOfOrder means SeqAdj.Record got a position before its newest record that it has not
	// recorded (or that was already folded into the base offset).
	ErrOutOfOrder = errors.New("rewrite: sequence adjustment out of order")
	// ErrFull means SeqAdj.Record got a new position while MaxRecords records are kept.
	ErrFull = errors.New("rewrite: sequence adjustment records full")
	// ErrConflict means SeqAdj.Record got an already recorded position with a different delta.
	ErrConflict = errors.New("rewrite: sequence adjustment conflicts with recorded one")

	// ErrEdit means edits that are unsorted, overlapping, or outside the payload.
	ErrEdit = errors.New("rewrite: invalid edit")
	// ErrTooBig means the rewritten packet would exceed the IP length field (65535).
	ErrTooBig = errors.New("rewrite: rewritten packet too big")
	// ErrNoSeqAdj means an edit changes the payload length but no SeqAdj was given to record it.
	ErrNoSeqAdj = errors.New("rewrite: length-changing edit without a SeqAdj")
	// ErrCorrupt means SeqAdj.UnmarshalBinary got data it cannot decode.
	ErrCorrupt = errors.New("rewrite: corrupt SeqAdj encoding")
)
