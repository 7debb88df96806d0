package ftpparse

// ParseClient parses one client→server command line: the bytes of one line, with or
// without its trailing "\r\n" or "\n". Bytes after the first '\n' are ignored, so a
// caller may pass the rest of a segment starting at a line boundary.
//
// It recognises PORT and EPRT (command names case-insensitive) followed by exactly one
// space and the argument, with nothing after the argument but the line terminator.
// Any other command, or a longer command name starting with PORT/EPRT ("PORTX"), gives
// Match{Kind: KindNone} and a nil error. A PORT/EPRT with a missing or malformed argument
// gives the zero Match and an error wrapping ErrMalformed. PORT numbers have one to three
// digits and are at most 255; the EPRT delimiter is any byte 33..126 except digits and
// the bytes of address text ('.', ':', '%', hex letters); af 1 takes only a dotted quad,
// af 2 only zone-less IPv6 text (an IPv4-mapped address stays Is4In6 in Match.Addr).
//
// Leading whitespace is not accepted: " PORT 1,2,3,4,5,6" is KindNone. RFC 959 puts the
// command at the start of the line, the kernel helper matches only there, and a server
// that does not strip the blank would reject the command; opening a pinhole (or
// rewriting) for a command the server may not execute would serve no one.
func ParseClient(line []byte) (Match, error) {
	content, lineLen := splitLine(line)
	var k Kind
	switch {
	case hasCommand(content, 'p', 'o', 'r', 't'):
		k = KindPORT
	case hasCommand(content, 'e', 'p', 'r', 't'):
		k = KindEPRT
	default:
		return Match{}, nil
	}
	if len(content) > 4 {
		switch c := content[4]; {
		case isLetter(c):
			return Match{}, nil // a different, longer command name
		case c != ' ':
			return Match{}, errOf(k, faultSyntax)
		}
	}
	if lineLen > MaxLineLen {
		return Match{}, errOf(k, faultTooLong)
	}
	if len(content) <= 5 {
		return Match{}, errOf(k, faultMissing)
	}
	if k == KindPORT {
		return parsePORT(content, 5)
	}
	return parseEPRT(content, 5)
}

// ParseServer parses one server→client reply line (same line conventions as
// ParseClient). It recognises the reply codes 227 and 229 followed by a space, as the
// kernel helper does: "227-" and "229-" begin a multi-line reply whose text is not an
// announcement (RFC 959 §4.2), so they, and every other reply, give
// Match{Kind: KindNone} and a nil error.
//
// 227: the argument starts at the first digit after "227 " (RFC 1123 §4.1.2.6: the
// parenthesised form is common but not required, and some servers write
// "227 =h1,..."); it is h1,h2,h3,h4,p1,p2 and may be followed by anything but a comma
// or another digit.
//
// 229: RFC 2428 requires "(<d><d><d>port<d>)". The argument is taken at the first "("
// after "229 " (as the kernel does), must consist of three equal delimiters (any byte
// 33..126 but a digit, the kernel's rule), 1 to 5 digits, the same delimiter, and must be
// followed by ")". Unlike the kernel, which ignores it, the ")" is required.
func ParseServer(line []byte) (Match, error) {
	content, lineLen := splitLine(line)
	if len(content) < 4 || content[0] != '2' || content[1] != '2' || content[3] != ' ' {
		return Match{}, nil
	}
	var k Kind
	switch content[2] {
	case '7':
		k = KindPASV
	case '9':
		k = KindEPSV
	default:
		return Match{}, nil
	}
	if lineLen > MaxLineLen {
		return Match{}, errOf(k, faultTooLong)
	}
	if k == KindPASV {
		return parsePASV(content, 4)
	}
	return parseEPSV(content, 4)
}

// hasCommand reports whether b starts with the four-letter command a,b,c,d (lower case),
// compared case-insensitively.
func hasCommand(b []byte, c0, c1, c2, c3 byte) bool {
	return len(b) >= 4 && b[0]|0x20 == c0 && b[1]|0x20 == c1 && b[2]|0x20 == c2 && b[3]|0x20 == c3
}

func isLetter(c byte) bool { c |= 0x20; return c >= 'a' && c <= 'z' }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
