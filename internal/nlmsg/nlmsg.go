// Package nlmsg splits netlink datagrams into messages without allocating:
// the framing nfq and conntrack share where they read their sockets by
// hand (struct nlmsghdr and struct nlmsgerr, include/uapi/linux/netlink.h,
// in host byte order). Each caller passes the sentinel error its own
// errors wrap, so a malformed message stays that package's error.
package nlmsg

import (
	"encoding/binary"
	"fmt"
	"syscall"
)

// HdrLen is the length of a struct nlmsghdr.
const HdrLen = 16

// errLen is the length of struct nlmsgerr's int error, before the echoed
// request header.
const errLen = 4

// Header is a struct nlmsghdr.
type Header struct {
	Len   uint32
	Type  uint16
	Flags uint16
	Seq   uint32
	PID   uint32
}

// Next splits the first netlink message off datagram b: its header, its
// body (after the header, within its length) and what follows it. Its
// errors wrap malformed.
func Next(b []byte, malformed error) (h Header, body, rest []byte, err error) {
	if len(b) < HdrLen {
		return h, nil, nil, fmt.Errorf("%w: %d bytes left, short of a netlink header", malformed, len(b))
	}
	h = Header{
		Len:   binary.NativeEndian.Uint32(b[0:]),
		Type:  binary.NativeEndian.Uint16(b[4:]),
		Flags: binary.NativeEndian.Uint16(b[6:]),
		Seq:   binary.NativeEndian.Uint32(b[8:]),
		PID:   binary.NativeEndian.Uint32(b[12:]),
	}
	if h.Len < HdrLen || uint64(h.Len) > uint64(len(b)) {
		return h, nil, nil, fmt.Errorf("%w: netlink length %d with %d bytes read", malformed, h.Len, len(b))
	}
	next := min(Align4(int(h.Len)), len(b))
	return h, b[HdrLen:h.Len], b[next:], nil
}

// ParseError returns the errno carried by an NLMSG_ERROR body: 0 for an
// acknowledgement. Its error wraps malformed.
func ParseError(body []byte, malformed error) (syscall.Errno, error) {
	if len(body) < errLen {
		return 0, fmt.Errorf("%w: netlink error of %d bytes", malformed, len(body))
	}
	return syscall.Errno(-int32(binary.NativeEndian.Uint32(body))), nil
}

// Align4 rounds n up to netlink's 4-byte alignment (NLMSG_ALIGN, NLA_ALIGN).
func Align4(n int) int { return (n + 3) &^ 3 }
