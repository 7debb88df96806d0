package ftpparse

import (
	"errors"
	"fmt"
)

// ErrMalformed is wrapped by every error the parsers return: the line is a PORT, EPRT,
// 227 or 229 announcement whose argument cannot be trusted. Test with errors.Is; the
// wrapping text names the announcement and the fault, for logs only.
var ErrMalformed = errors.New("malformed announcement")

// fault is why an announcement was refused.
type fault uint8

const (
	faultNone     fault = iota
	faultMissing        // no argument / no numbers at all
	faultSyntax         // a byte that has no place there
	faultFields         // too few or too many fields
	faultEmpty          // an empty number
	faultDigits         // a number with too many digits
	faultRange          // a number above 255 (address byte) or 65535 (port)
	faultPortZero       // port 0
	faultDelim          // an EPRT/EPSV delimiter outside the allowed set
	faultAF             // EPRT address family other than 1 or 2
	faultFamily         // EPRT address text of the other family than af says
	faultZone           // EPRT IPv6 address with a %zone
	faultAddr           // EPRT address text that does not parse
	faultTrailing       // bytes after the argument where none may be
	faultParen          // 229 reply without "(" before or ")" after the delimiters
	faultTooLong        // line longer than MaxLineLen
	numFaults
)

var faultText = [numFaults]string{
	faultNone:     "no fault",
	faultMissing:  "missing argument",
	faultSyntax:   "unexpected character",
	faultFields:   "wrong number of fields",
	faultEmpty:    "empty number",
	faultDigits:   "too many digits",
	faultRange:    "number out of range",
	faultPortZero: "port 0",
	faultDelim:    "invalid delimiter",
	faultAF:       "unknown address family",
	faultFamily:   "address family mismatch",
	faultZone:     "IPv6 zone not allowed",
	faultAddr:     "bad address",
	faultTrailing: "trailing data",
	faultParen:    "missing parenthesis",
	faultTooLong:  "line too long",
}

// errTable holds one pre-built error per announcement kind and fault, so returning an
// error never allocates. Index with errOf.
var errTable = func() (t [numKinds][numFaults]error) {
	for k := KindPORT; k < numKinds; k++ {
		for f := faultMissing; f < numFaults; f++ {
			t[k][f] = fmt.Errorf("parse %s: %s: %w", k, faultText[f], ErrMalformed)
		}
	}
	return t
}()

// errOf returns the pre-built error for kind k and fault f.
func errOf(k Kind, f fault) error { return errTable[k][f] }
