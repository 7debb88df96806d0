package ftpparse

import "net/netip"

// The address parsers below accept exactly what netip.ParseAddr accepts for a dotted-quad
// IPv4 and a zone-less IPv6 address, but work on bytes without converting to a string,
// so they never allocate (netip.ParseAddr allocates its error values).

// parseIPv4Text parses a dotted quad: four decimal fields 0..255 of one to three digits,
// no leading zeros (which some stacks read as octal).
func parseIPv4Text(b []byte) (netip.Addr, bool) {
	var a [4]byte
	if !parseIPv4Into(b, &a) {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(a), true
}

func parseIPv4Into(b []byte, a *[4]byte) bool {
	i := 0
	for field := range a {
		if field > 0 {
			if i == len(b) || b[i] != '.' {
				return false
			}
			i++
		}
		start, val := i, 0
		for i < len(b) && isDigit(b[i]) {
			if i-start == 3 || (i > start && b[start] == '0') {
				return false
			}
			val = val*10 + int(b[i]-'0')
			i++
		}
		if i == start || val > 255 {
			return false
		}
		a[field] = byte(val)
	}
	return i == len(b)
}

// parseIPv6Text parses an IPv6 address in RFC 4291 §2.2 text form (hex groups of one to
// four digits, at most one "::", optionally a dotted quad in the last 32 bits), without
// a zone. It mirrors netip's parser.
func parseIPv6Text(s []byte) (netip.Addr, bool) {
	var ip [16]byte
	ellipsis := -1 // position of "::" in ip
	if len(s) >= 2 && s[0] == ':' && s[1] == ':' {
		ellipsis = 0
		s = s[2:]
		if len(s) == 0 {
			return netip.IPv6Unspecified(), true
		}
	}
	i := 0
	for i < 16 {
		off, acc := 0, 0
		for ; off < len(s); off++ {
			v, ok := hexVal(s[off])
			if !ok {
				break
			}
			if off == 4 {
				return netip.Addr{}, false
			}
			acc = acc<<4 | v
		}
		if off == 0 {
			return netip.Addr{}, false
		}
		if off < len(s) && s[off] == '.' {
			if (ellipsis < 0 && i != 12) || i+4 > 16 {
				return netip.Addr{}, false
			}
			if !parseIPv4Into(s, (*[4]byte)(ip[i:i+4])) {
				return netip.Addr{}, false
			}
			s = nil
			i += 4
			break
		}
		ip[i], ip[i+1] = byte(acc>>8), byte(acc)
		i += 2
		s = s[off:]
		if len(s) == 0 {
			break
		}
		if s[0] != ':' || len(s) == 1 {
			return netip.Addr{}, false
		}
		s = s[1:]
		if s[0] == ':' {
			if ellipsis >= 0 {
				return netip.Addr{}, false
			}
			ellipsis = i
			s = s[1:]
			if len(s) == 0 {
				break
			}
		}
	}
	if len(s) != 0 {
		return netip.Addr{}, false
	}
	if i < 16 {
		if ellipsis < 0 {
			return netip.Addr{}, false
		}
		n := 16 - i
		copy(ip[ellipsis+n:], ip[ellipsis:i])
		clear(ip[ellipsis : ellipsis+n])
	} else if ellipsis >= 0 {
		return netip.Addr{}, false // "::" must stand for at least one group
	}
	return netip.AddrFrom16(ip), true
}

func hexVal(c byte) (int, bool) {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0'), true
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10, true
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10, true
	}
	return 0, false
}
