package ftpparse

import (
	"net/netip"
	"strconv"
)

// This file handles the RFC 959 host-port form "h1,h2,h3,h4,p1,p2" shared by the PORT
// command and the 227 reply.

// parsePORT parses the PORT argument, which starts at content[at] and must run to the
// end of content.
func parsePORT(content []byte, at int) (Match, error) {
	addr, port, n, f := parseHostPort(content[at:])
	if f == faultNone {
		switch rest := content[at+n:]; {
		case len(rest) == 0:
		case rest[0] == ',':
			f = faultFields
		default:
			f = faultTrailing
		}
	}
	if f != faultNone {
		return Match{}, errOf(KindPORT, f)
	}
	return Match{Kind: KindPORT, Addr: addr, Port: port, Start: at, End: at + n}, nil
}

// parsePASV parses a 227 reply whose text starts at content[at]: the host-port starts at
// the first digit and may be followed by anything but a further field.
func parsePASV(content []byte, at int) (Match, error) {
	for at < len(content) && !isDigit(content[at]) {
		at++
	}
	if at == len(content) {
		return Match{}, errOf(KindPASV, faultMissing)
	}
	addr, port, n, f := parseHostPort(content[at:])
	if f == faultNone && at+n < len(content) && content[at+n] == ',' {
		f = faultFields
	}
	if f != faultNone {
		return Match{}, errOf(KindPASV, f)
	}
	return Match{Kind: KindPASV, Addr: addr, Port: port, Start: at, End: at + n}, nil
}

// parseHostPort parses "h1,h2,h3,h4,p1,p2" at the start of b: six decimal numbers of one
// to three digits (leading zeros allowed, as they are plain numbers), each at most 255,
// separated by single commas, with a port that is not 0. It returns the number of bytes
// consumed, up to and including the last digit of p2; the bytes after are the caller's
// business. The kernel accepted any digit count and (before 2026) values above 255;
// both are refused here.
func parseHostPort(b []byte) (addr netip.Addr, port uint16, n int, f fault) {
	var v [6]byte
	i := 0
	for field := range v {
		if field > 0 {
			if i == len(b) {
				return addr, 0, 0, faultFields
			}
			if b[i] != ',' {
				return addr, 0, 0, faultSyntax
			}
			i++
		}
		start, val := i, 0
		for i < len(b) && isDigit(b[i]) {
			if i-start == 3 {
				return addr, 0, 0, faultDigits
			}
			val = val*10 + int(b[i]-'0')
			i++
		}
		if i == start {
			if i == len(b) || b[i] == ',' {
				return addr, 0, 0, faultEmpty
			}
			return addr, 0, 0, faultSyntax
		}
		if val > 255 {
			return addr, 0, 0, faultRange
		}
		v[field] = byte(val)
	}
	port = uint16(v[4])<<8 | uint16(v[5])
	if port == 0 {
		return addr, 0, 0, faultPortZero
	}
	return netip.AddrFrom4([4]byte(v[:4])), port, i, faultNone
}

// appendHostPort appends "h1,h2,h3,h4,p1,p2" for the IPv4 address a.
func appendHostPort(dst []byte, a [4]byte, port uint16) []byte {
	for _, x := range a {
		dst = strconv.AppendUint(dst, uint64(x), 10)
		dst = append(dst, ',')
	}
	dst = strconv.AppendUint(dst, uint64(port>>8), 10)
	dst = append(dst, ',')
	return strconv.AppendUint(dst, uint64(port&0xff), 10)
}
