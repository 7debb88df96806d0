package ftpparse

import "bytes"

// MaxLineLen is the longest announcement line accepted, counting its "\r\n". RFC 959 sets
// no limit; the longest well-formed PORT or EPRT line is about 60 bytes and real 227/229
// replies are well under 100, so a longer announcement is refused (not scanned).
// Lines that are not announcements are not subject to it.
const MaxLineLen = 512

// LineEnd returns the index just past the next '\n' at or after off in b, or -1 if there
// is none (or off is outside 0..len(b)). Iterate over the lines of a segment payload
// with:
//
//	for off := 0; off < len(p); {
//		end := LineEnd(p, off)
//		if end < 0 { /* incomplete last line p[off:] */ break }
//		line := p[off:end]
//		off = end
//	}
func LineEnd(b []byte, off int) int {
	if off < 0 || off > len(b) {
		return -1
	}
	i := bytes.IndexByte(b[off:], '\n')
	if i < 0 {
		return -1
	}
	return off + i + 1
}

// splitLine returns the content of the first line of b, without its terminator ("\r\n",
// "\n" or a lone trailing "\r"), and the length of that line including the terminator.
// Bytes after the first '\n' are not part of the line.
func splitLine(b []byte) (content []byte, lineLen int) {
	lineLen = len(b)
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		lineLen = i + 1
		b = b[:i]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b, lineLen
}
