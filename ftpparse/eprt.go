package ftpparse

import (
	"bytes"
	"net/netip"
	"strconv"
)

// This file handles the RFC 2428 delimited forms shared by the EPRT command
// (<d>af<d>addr<d>port<d>) and the 229 reply (<d><d><d>port<d>).

// validEPSVDelim reports whether c may delimit a 229 argument: RFC 2428 allows ASCII
// 33..126; the kernel additionally excludes digits, which would run into the port.
func validEPSVDelim(c byte) bool { return c >= 33 && c <= 126 && !isDigit(c) }

// validEPRTDelim reports whether c may delimit an EPRT argument. Besides the 229 rule it
// excludes every byte that can occur in an address text ('.', ':', hex letters): RFC 2428
// forbids a delimiter that "coincides with a character needed to encode the network
// address", and such a delimiter would make the replacement text ambiguous once the
// address changes. Real clients use '|'.
func validEPRTDelim(c byte) bool {
	switch {
	case !validEPSVDelim(c), c == '.', c == ':', c == '%':
		return false
	case c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
		return false
	}
	return true
}

// parseEPRT parses the EPRT argument <d>af<d>addr<d>port<d>, which starts at content[at]
// and must run to the end of content. af is "1" (IPv4, dotted quad only) or "2" (IPv6,
// without zone; an IPv4-mapped address stays 4in6).
func parseEPRT(content []byte, at int) (Match, error) {
	addr, port, d, f := parseEPRTArg(content[at:])
	if f != faultNone {
		return Match{}, errOf(KindEPRT, f)
	}
	return Match{Kind: KindEPRT, Addr: addr, Port: port, Start: at, End: len(content), Delim: d}, nil
}

func parseEPRTArg(b []byte) (addr netip.Addr, port uint16, d byte, f fault) {
	d = b[0]
	if !validEPRTDelim(d) {
		return addr, 0, 0, faultDelim
	}
	rest := b[1:]
	var field [3][]byte // af, addr, port
	for i := range field {
		j := bytes.IndexByte(rest, d)
		if j < 0 {
			return addr, 0, 0, faultFields
		}
		field[i], rest = rest[:j], rest[j+1:]
	}
	if len(rest) != 0 {
		if bytes.IndexByte(rest, d) >= 0 {
			return addr, 0, 0, faultFields
		}
		return addr, 0, 0, faultTrailing
	}
	if len(field[0]) != 1 || (field[0][0] != '1' && field[0][0] != '2') {
		return addr, 0, 0, faultAF
	}
	text := field[1]
	if len(text) == 0 {
		return addr, 0, 0, faultAddr
	}
	colon := bytes.IndexByte(text, ':') >= 0
	var ok bool
	if field[0][0] == '1' {
		if colon {
			return addr, 0, 0, faultFamily
		}
		addr, ok = parseIPv4Text(text)
	} else {
		switch {
		case bytes.IndexByte(text, '%') >= 0:
			return addr, 0, 0, faultZone
		case !colon:
			return addr, 0, 0, faultFamily
		}
		addr, ok = parseIPv6Text(text)
	}
	if !ok {
		return netip.Addr{}, 0, 0, faultAddr
	}
	if port, f = parsePortText(field[2]); f != faultNone {
		return netip.Addr{}, 0, 0, f
	}
	return addr, port, d, faultNone
}

// parseEPSV parses a 229 reply whose text starts at content[at]: the argument follows the
// first "(" and must be followed by ")".
func parseEPSV(content []byte, at int) (Match, error) {
	open := bytes.IndexByte(content[at:], '(')
	if open < 0 {
		return Match{}, errOf(KindEPSV, faultParen)
	}
	start := at + open + 1
	b := content[start:]
	if len(b) < 3 {
		return Match{}, errOf(KindEPSV, faultFields)
	}
	d := b[0]
	if !validEPSVDelim(d) {
		return Match{}, errOf(KindEPSV, faultDelim)
	}
	if b[1] != d || b[2] != d {
		return Match{}, errOf(KindEPSV, faultSyntax)
	}
	j := bytes.IndexByte(b[3:], d)
	if j < 0 {
		return Match{}, errOf(KindEPSV, faultFields)
	}
	port, f := parsePortText(b[3 : 3+j])
	if f != faultNone {
		return Match{}, errOf(KindEPSV, f)
	}
	end := start + 3 + j + 1
	if end == len(content) || content[end] != ')' {
		return Match{}, errOf(KindEPSV, faultParen)
	}
	return Match{Kind: KindEPSV, Port: port, Start: start, End: end, Delim: d}, nil
}

// parsePortText parses a whole field as a TCP port: 1 to 5 decimal digits, 1..65535.
func parsePortText(b []byte) (uint16, fault) {
	switch {
	case len(b) == 0:
		return 0, faultEmpty
	case len(b) > 5:
		for _, c := range b {
			if !isDigit(c) {
				return 0, faultSyntax
			}
		}
		return 0, faultDigits
	}
	v := 0
	for _, c := range b {
		if !isDigit(c) {
			return 0, faultSyntax
		}
		v = v*10 + int(c-'0')
	}
	switch {
	case v > 65535:
		return 0, faultRange
	case v == 0:
		return 0, faultPortZero
	}
	return uint16(v), faultNone
}

// appendEPRT appends <d>af<d>addr<d>port<d>; addr must be valid.
func appendEPRT(dst []byte, d byte, addr netip.Addr, port uint16) []byte {
	if addr.Is4In6() {
		addr = addr.Unmap()
	}
	if addr.Is4() {
		dst = append(dst, d, '1', d)
	} else {
		dst = append(dst, d, '2', d)
		addr = addr.WithZone("")
	}
	dst = addr.AppendTo(dst)
	dst = append(dst, d)
	dst = strconv.AppendUint(dst, uint64(port), 10)
	return append(dst, d)
}

// appendEPSV appends <d><d><d>port<d>.
func appendEPSV(dst []byte, d byte, port uint16) []byte {
	dst = append(dst, d, d, d)
	dst = strconv.AppendUint(dst, uint64(port), 10)
	return append(dst, d)
}
