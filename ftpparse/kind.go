package ftpparse

import (
	"net/netip"
	"strconv"
)

// Kind is what a line announces.
type Kind uint8

const (
	KindNone Kind = iota // not an announcement (other command/reply): pass through
	KindPORT             // client: PORT h1,h2,h3,h4,p1,p2
	KindEPRT             // client: EPRT <d>af<d>addr<d>port<d>   (RFC 2428)
	KindPASV             // server: 227 reply, h1,h2,h3,h4,p1,p2 after the first digit
	KindEPSV             // server: 229 reply (... (<d><d><d>port<d>))
	numKinds
)

var kindNames = [numKinds]string{
	KindNone: "none",
	KindPORT: "PORT",
	KindEPRT: "EPRT",
	KindPASV: "PASV",
	KindEPSV: "EPSV",
}

// String returns "PORT", "EPRT", "PASV" (227), "EPSV" (229) or "none".
func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Carries reports whether an announcement of kind k can express addr, i.e. whether
// AppendArg with a Match of this kind writes anything for addr. PORT and 227 carry only
// IPv4 (an IPv4-mapped IPv6 address counts as IPv4); EPRT carries any valid address
// (a zone is dropped); 229 carries no address at all, so any addr will do.
func (k Kind) Carries(addr netip.Addr) bool {
	switch k {
	case KindPORT, KindPASV:
		return addr.Is4() || addr.Is4In6()
	case KindEPRT:
		return addr.IsValid()
	case KindEPSV:
		return true
	}
	return false
}

// Match is the result of parsing one line. Start/End is the byte range, within the line
// passed in, of the argument text a NAT rewriter replaces:
//
//	PORT:  "10,0,1,2,4,1"             (the six numbers, no surrounding spaces)
//	EPRT:  "|1|10.0.1.2|1025|"        (from the first delimiter to the last, inclusive)
//	227:   "10,0,1,2,4,1"             (the six numbers; parentheses, if any, stay outside the range)
//	229:   "|||1025|"                 (delimiters inclusive; parentheses outside)
//
// For KindNone, and whenever a parser returns an error, the Match is the zero value.
type Match struct {
	Kind Kind
	// Addr is the announced address; zero (invalid) for 229, which carries only a port.
	// For EPRT with af 2 it is exactly what the text says: "::ffff:10.0.0.1" stays an
	// IPv4-mapped IPv6 address (Is4In6), it is not unmapped.
	Addr       netip.Addr
	Port       uint16 // announced port, never 0
	Start, End int
	Delim      byte // EPRT/EPSV delimiter, 0 otherwise
}
