// Package ftpparse recognises the FTP control-channel lines that announce a data
// connection and tells a NAT rewriter exactly which bytes to replace.
//
// Four announcements are understood, as the kernel's nf_conntrack_ftp does:
//
//	client → server   PORT h1,h2,h3,h4,p1,p2          (RFC 959)
//	client → server   EPRT |af|addr|port|             (RFC 2428)
//	server → client   227 ... h1,h2,h3,h4,p1,p2 ...   (RFC 959, scanned as RFC 1123 §4.1.2.6 advises)
//	server → client   229 ... (|||port|)              (RFC 2428)
//
// [ParseClient] and [ParseServer] take one line and return a [Match]: what was announced
// (address and port) and the byte range Start:End of the argument text. A rewriter
// replaces line[Start:End] with the bytes [AppendArg] produces for the translated
// address and port; everything outside the range (command name, reply text,
// parentheses, line terminator) stays as it was. [LineEnd] splits a segment payload
// into lines.
//
// The parser is deliberately stricter than the kernel helper wherever refusing is safe:
// a refused line is passed through unmodified and no pinhole is opened, so the worst
// outcome of strictness is a failed data connection, never an unintended hole.
// Malformed announcements (numbers above 255 or 65535, port 0, missing or extra fields,
// over-long numbers, zoned or family-mismatched EPRT addresses, …) yield an error that
// wraps [ErrMalformed].
//
// # Purity, allocations and concurrency
//
// The package imports only the standard library, has no platform-specific code and does
// no I/O. ParseClient, ParseServer, LineEnd and AppendArg (given a dst with at least
// [MaxArgLen] spare capacity) do not allocate; errors are pre-built package values.
// All functions are stateless and safe for concurrent use.
//
// # Buffer ownership
//
// A Match holds no reference to the parsed line: Start and End are offsets into the
// slice the caller passed, which the caller keeps owning and may reuse once it has
// used the offsets. AppendArg appends to the caller's dst and returns the extended
// slice, like strconv.AppendInt; it never retains dst.
package ftpparse
