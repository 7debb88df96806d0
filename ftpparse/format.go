package ftpparse

import "net/netip"

// MaxArgLen is the longest text AppendArg produces:
// "|2|ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff|65535|". A dst with this much spare
// capacity makes AppendArg allocation-free.
const MaxArgLen = 49

// AppendArg appends to dst the argument text for announcing addr:port in the same syntax
// as m (m.Kind and m.Delim), i.e. exactly what should replace line[m.Start:m.End]:
//
//	PORT, 227: "h1,h2,h3,h4,p1,p2" (addr must be IPv4 or IPv4-mapped IPv6)
//	EPRT:      "<d>1<d>a.b.c.d<d>port<d>" for IPv4 and IPv4-mapped IPv6 addresses,
//	           "<d>2<d>ipv6<d>port<d>" (RFC 5952 form, zone dropped) otherwise
//	229:       "<d><d><d>port<d>" (addr is ignored)
//
// The delimiter is m.Delim, or '|' if m.Delim is not one the parser would accept.
// If m.Kind cannot express addr (see Kind.Carries), or is KindNone, dst is returned
// unchanged: check Carries first. A port of 0 is written as given, although the parser
// refuses it. Allocation-free when dst has MaxArgLen spare capacity.
func AppendArg(dst []byte, m Match, addr netip.Addr, port uint16) []byte {
	if !m.Kind.Carries(addr) {
		return dst
	}
	switch m.Kind {
	case KindPORT, KindPASV:
		return appendHostPort(dst, addr.Unmap().As4(), port)
	case KindEPRT:
		d := m.Delim
		if !validEPRTDelim(d) {
			d = '|'
		}
		return appendEPRT(dst, d, addr, port)
	case KindEPSV:
		d := m.Delim
		if !validEPSVDelim(d) {
			d = '|'
		}
		return appendEPSV(dst, d, port)
	}
	return dst
}
