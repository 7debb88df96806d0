package rules

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Hole is one expected data connection: a SYN from Peer to Addr:Port (any
// source port) is let through once, and DNATed to To when To is valid.
type Hole struct {
	Peer    netip.Addr     // source address of the expected SYN (exact)
	Addr    netip.Addr     // its destination address as it arrives here (exact)
	Port    uint16         // its destination port (exact); any source port
	To      netip.AddrPort // if valid: DNAT the connection to this endpoint
	Timeout time.Duration  // kernel-side element timeout (millisecond resolution, rounded up)
	// Owner is the control connection that announced the hole (its
	// conntrack original tuple), kept with the element (its comment) so
	// that a restarted daemon can tell which holes a live session owns.
	// The zero Flow stores none.
	Owner Flow
	// Used tells Close that the kernel consumed the one-shot element (its
	// data connection arrived): only the DNAT mapping is left to delete.
	// Deleting the consumed element would fail the transaction (ENOENT),
	// and a failed nftables transaction waits for an RCU grace period
	// (about 15 ms here) while the manager's lock is held.
	Used bool
}

// normalize unmaps IPv4-mapped IPv6 addresses and checks that the hole can
// be expressed in one table family.
func (h Hole) normalize() (Hole, error) {
	bad := func(format string, a ...any) (Hole, error) {
		return h, fmt.Errorf("%w %v: %s", ErrInvalidHole, h, fmt.Sprintf(format, a...))
	}
	h.Peer = h.Peer.Unmap()
	h.Addr = h.Addr.Unmap()
	if !h.Peer.IsValid() || !h.Addr.IsValid() {
		return bad("peer and address are required")
	}
	if h.Peer.Is4() != h.Addr.Is4() {
		return bad("peer and address are of different families")
	}
	if h.Peer.Zone() != "" || h.Addr.Zone() != "" {
		return bad("zoned addresses are not supported")
	}
	if h.Port == 0 {
		return bad("port 0")
	}
	if h.To.IsValid() {
		h.To = netip.AddrPortFrom(h.To.Addr().Unmap(), h.To.Port())
		if h.To.Addr().Is4() != h.Addr.Is4() {
			return bad("DNAT target of a different family")
		}
		if h.To.Port() == 0 {
			return bad("DNAT target port 0")
		}
	}
	if h.Timeout <= 0 {
		return bad("timeout must be positive")
	}
	return h, nil
}

// String formats the hole for errors and logs.
func (h Hole) String() string {
	s := fmt.Sprintf("%v -> %v", h.Peer, netip.AddrPortFrom(h.Addr, h.Port))
	if h.To.IsValid() {
		s += fmt.Sprintf(" dnat %v", h.To)
	}
	return s
}

// timeoutDuration is the element timeout as the kernel takes it
// (NFTA_SET_ELEM_TIMEOUT, milliseconds), rounded up so that a positive
// timeout never becomes 0 (which would mean "never expires").
func (h Hole) timeoutDuration() time.Duration {
	ms := (h.Timeout + time.Millisecond - 1) / time.Millisecond
	return ms * time.Millisecond
}

// Each field of an nftables concatenation occupies a whole number of 32-bit
// registers (NFT_REG32_SIZE in include/uapi/linux/netfilter/nf_tables.h), so
// a 2-byte port is padded with 2 zero bytes in keys and data.
const regSize = 4

func padLen(n int) int { return (n + regSize - 1) / regSize * regSize }

// appendField appends b padded to a multiple of regSize.
func appendField(dst, b []byte) []byte {
	dst = append(dst, b...)
	for range padLen(len(b)) - len(b) {
		dst = append(dst, 0)
	}
	return dst
}

func appendPort(dst []byte, port uint16) []byte {
	return appendField(dst, binary.BigEndian.AppendUint16(nil, port))
}

// expectKey is the key of set "expect": saddr . daddr . dport.
func (h Hole) expectKey() []byte {
	b := make([]byte, 0, 2*16+regSize)
	b = appendField(b, h.Peer.AsSlice())
	b = appendField(b, h.Addr.AsSlice())
	return appendPort(b, h.Port)
}

// xlateValue is the data of map "xlate": address . port.
func (h Hole) xlateValue() []byte {
	b := make([]byte, 0, 16+regSize)
	b = appendField(b, h.To.Addr().AsSlice())
	return appendPort(b, h.To.Port())
}

// Flow is one direction of a TCP connection: a packet's source and
// destination as the divert chains see them (before NAT). For a control
// connection's owner it is the conntrack original tuple.
type Flow struct {
	Src, Dst netip.AddrPort
}

// String formats the flow as "SRC DST", the form ParseFlow reads and holes
// store as their owner (the element comment).
func (f Flow) String() string { return f.Src.String() + " " + f.Dst.String() }

// ParseFlow reads what Flow.String writes.
func ParseFlow(s string) (Flow, error) {
	src, dst, ok := strings.Cut(s, " ")
	if !ok {
		return Flow{}, fmt.Errorf("flow %q: want \"SRC DST\"", s)
	}
	a, err := netip.ParseAddrPort(src)
	if err != nil {
		return Flow{}, fmt.Errorf("flow %q: %w", s, err)
	}
	b, err := netip.ParseAddrPort(dst)
	if err != nil {
		return Flow{}, fmt.Errorf("flow %q: %w", s, err)
	}
	return Flow{Src: a, Dst: b}, nil
}

// normalize unmaps the addresses and checks that f fits one table family.
func (f Flow) normalize() (Flow, error) {
	f.Src = netip.AddrPortFrom(f.Src.Addr().Unmap(), f.Src.Port())
	f.Dst = netip.AddrPortFrom(f.Dst.Addr().Unmap(), f.Dst.Port())
	if !f.Src.IsValid() || !f.Dst.IsValid() || f.Src.Addr().Is4() != f.Dst.Addr().Is4() ||
		f.Src.Addr().Zone() != "" || f.Dst.Addr().Zone() != "" {
		return f, fmt.Errorf("%w: flow %v", ErrInvalidHole, f)
	}
	return f, nil
}

// holdKey is the key of set "hold": saddr . daddr . sport . dport.
func (f Flow) holdKey() []byte {
	b := make([]byte, 0, 2*16+2*regSize)
	b = appendField(b, f.Src.Addr().AsSlice())
	b = appendField(b, f.Dst.Addr().AsSlice())
	b = appendPort(b, f.Src.Port())
	return appendPort(b, f.Dst.Port())
}

// parseHoldKey reads a holdKey of an address family with n-byte addresses.
func parseHoldKey(k []byte, n int) (Flow, bool) {
	if len(k) != 2*n+2*regSize {
		return Flow{}, false
	}
	src, _ := netip.AddrFromSlice(k[:n])
	dst, _ := netip.AddrFromSlice(k[n : 2*n])
	return Flow{
		Src: netip.AddrPortFrom(src, binary.BigEndian.Uint16(k[2*n:])),
		Dst: netip.AddrPortFrom(dst, binary.BigEndian.Uint16(k[2*n+regSize:])),
	}, true
}

// parseExpectKey reads an expectKey into h's Peer, Addr and Port.
func parseExpectKey(k []byte, n int, h *Hole) bool {
	if len(k) != 2*n+regSize {
		return false
	}
	h.Peer, _ = netip.AddrFromSlice(k[:n])
	h.Addr, _ = netip.AddrFromSlice(k[n : 2*n])
	h.Port = binary.BigEndian.Uint16(k[2*n:])
	return true
}

// parseXlateValue reads an xlateValue.
func parseXlateValue(v []byte, n int) (netip.AddrPort, bool) {
	if len(v) != n+regSize {
		return netip.AddrPort{}, false
	}
	a, _ := netip.AddrFromSlice(v[:n])
	return netip.AddrPortFrom(a, binary.BigEndian.Uint16(v[n:])), true
}
