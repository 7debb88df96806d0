package rewrite

import (
	"errors"
	"fmt"
)

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

	// ErrSplice means splices that are unsorted, overlapping, or outside the payload.
	ErrSplice = errors.New("rewrite: invalid splice")
	// ErrTooBig means the rewritten packet would exceed the IP length field (65535).
	ErrTooBig = errors.New("rewrite: rewritten packet too big")
	// ErrNoSeqMap means a splice changes the payload length but no SeqMap was given
	// for the direction, so later segments could not be mapped.
	ErrNoSeqMap = errors.New("rewrite: length-changing splice without a sequence map")
)

// Decode's errors: fixed values, so that rejecting a packet allocates nothing.
// Each wraps one of the sentinels above and says where decoding stopped.
var (
	errEmpty            = fmt.Errorf("decode: empty: %w", ErrShort)
	errVersion          = fmt.Errorf("decode: IP version: %w", ErrVersion)
	errIPv4Short        = fmt.Errorf("decode ipv4: shorter than a header: %w", ErrShort)
	errIPv4HeaderLen    = fmt.Errorf("decode ipv4: header length below 20: %w", ErrBadHeader)
	errIPv4TotalLen     = fmt.Errorf("decode ipv4: total length below the header length: %w", ErrBadHeader)
	errIPv4Truncated    = fmt.Errorf("decode ipv4: total length past the buffer: %w", ErrShort)
	errIPv4NotTCP       = fmt.Errorf("decode ipv4: protocol: %w", ErrNotTCP)
	errIPv4Fragment     = fmt.Errorf("decode ipv4: %w", ErrFragment)
	errIPv6Short        = fmt.Errorf("decode ipv6: shorter than a header: %w", ErrShort)
	errIPv6Jumbo        = fmt.Errorf("decode ipv6: payload length 0 (jumbogram or empty): %w", ErrBadHeader)
	errIPv6Truncated    = fmt.Errorf("decode ipv6: payload length past the buffer: %w", ErrShort)
	errIPv6TooManyExt   = fmt.Errorf("decode ipv6: more than 8 extension headers: %w", ErrBadHeader)
	errIPv6HopByHop     = fmt.Errorf("decode ipv6: hop-by-hop header not first: %w", ErrBadHeader)
	errIPv6Fragment     = fmt.Errorf("decode ipv6: %w", ErrFragment)
	errIPv6NotTCP       = fmt.Errorf("decode ipv6: next header: %w", ErrNotTCP)
	errIPv6ExtShort     = fmt.Errorf("decode ipv6: extension header past the payload: %w", ErrShort)
	errIPv6ExtTruncated = fmt.Errorf("decode ipv6: extension header length past the payload: %w", ErrShort)
	errTCPShort         = fmt.Errorf("decode tcp: shorter than a header: %w", ErrShort)
	errTCPDataOff       = fmt.Errorf("decode tcp: data offset: %w", ErrBadHeader)
)
