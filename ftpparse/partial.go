package ftpparse

// Announcement line starts, as the parsers require them.
var (
	clientStarts = [...]string{"PORT ", "EPRT "}
	serverStarts = [...]string{"227 ", "229 "}
)

// MayAnnounce reports whether partial, the beginning of a line whose end has
// not arrived yet, can still become an announcement: a client's PORT or EPRT
// command (fromServer false) or a server's 227 or 229 reply (fromServer true).
// A caller holds back such a beginning until the line is complete, and passes
// any other partial line on at once. Allocation-free.
func MayAnnounce(partial []byte, fromServer bool) bool {
	starts := clientStarts[:]
	if fromServer {
		starts = serverStarts[:]
	}
	for _, s := range starts {
		n := min(len(partial), len(s))
		if equalFoldASCII(partial[:n], s[:n]) {
			return true
		}
	}
	return false
}

// equalFoldASCII compares b with the upper-case ASCII string s, ignoring the
// case of ASCII letters in b.
func equalFoldASCII(b []byte, s string) bool {
	for i := range len(b) {
		c := b[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
