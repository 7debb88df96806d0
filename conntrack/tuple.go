package conntrack

import (
	"fmt"
	"net/netip"
)

// Tuple is one direction of a TCP connection as the kernel's conntrack sees it.
type Tuple struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
}

// Reverse returns the tuple of the opposite direction, without translation.
func (t Tuple) Reverse() Tuple {
	return Tuple{Src: t.Dst, Dst: t.Src, SrcPort: t.DstPort, DstPort: t.SrcPort}
}

// Key returns the packed map key of t.
func (t Tuple) Key() FlowKey { return MakeKey(t.Src, t.Dst, t.SrcPort, t.DstPort) }

func (t Tuple) String() string {
	return fmt.Sprintf("%s -> %s", netip.AddrPortFrom(t.Src, t.SrcPort), netip.AddrPortFrom(t.Dst, t.DstPort))
}

// FlowKey is a packed, pointer-free key of one direction of a flow. IPv4
// addresses are stored IPv4-mapped, so one key type serves both families.
type FlowKey struct {
	Src, Dst         [16]byte
	SrcPort, DstPort uint16
}

// MakeKey builds a FlowKey without allocating.
func MakeKey(src, dst netip.Addr, sport, dport uint16) FlowKey {
	return FlowKey{Src: src.As16(), Dst: dst.As16(), SrcPort: sport, DstPort: dport}
}

// Binding is what the kernel's conntrack table knows of a control connection:
// the original tuple (client to server, as the client sent it) and the reply
// tuple (server to client, as the server sends it). Where they are not each
// other's reverse, the connection is translated.
type Binding struct {
	Orig, Reply Tuple
	// Mark is the connection's conntrack mark.
	Mark uint32
	// Labels are the connection's conntrack labels (all zero when none is
	// set or the entry has none); ftpct keeps its state there (ctstate).
	Labels [LabelsSize]byte
	// Liberal: conntrack's TCP window tracking of the connection is
	// liberal in both directions (IP_CT_TCP_FLAG_BE_LIBERAL), as ftpct
	// makes every control connection it resized (Kernel.SetResized).
	Liberal bool
}

// Translated reports whether NAT changes any address or port of the connection.
func (b Binding) Translated() bool { return b.Orig.Reverse() != b.Reply }
