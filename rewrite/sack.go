package rewrite

import (
	"encoding/binary"

	"github.com/ftpct/ftpct/seqnum"
)

// TCP option kinds (RFC 9293, RFC 2018).
const (
	optEOL  = 0
	optNOP  = 1
	optSACK = 5
)

// SACKBlock is one SACK option block: the peer holds bytes [Left, Right).
type SACKBlock struct {
	Left, Right seqnum.Value
}

// sackAt reports the position of the next well-formed SACK option in the TCP options opts
// at or after i: the offset of its first block and its block count. It returns n == 0 when
// there is none. The walk stops at EOL or at a malformed option length, like a receiver would.
func sackAt(opts []byte, i int) (first, n, next int) {
	for i < len(opts) {
		switch kind := opts[i]; kind {
		case optEOL:
			return 0, 0, len(opts)
		case optNOP:
			i++
			continue
		default:
			if i+1 >= len(opts) {
				return 0, 0, len(opts)
			}
			l := int(opts[i+1])
			if l < 2 || i+l > len(opts) {
				return 0, 0, len(opts)
			}
			if kind == optSACK && l >= 10 && (l-2)%8 == 0 {
				return i + 2, (l - 2) / 8, i + l
			}
			i += l
		}
	}
	return 0, 0, len(opts)
}

// adjustSACK maps every SACK block edge in the TCP options opts with other.UnmapAck. With
// write false it only reports whether any edge would change.
func adjustSACK(opts []byte, other SeqMap, write bool) (changed bool) {
	for i := 0; i < len(opts); {
		first, n, next := sackAt(opts, i)
		for e := first; e < first+8*n; e += 4 {
			w := seqnum.Value(binary.BigEndian.Uint32(opts[e:]))
			m := other.UnmapAck(w)
			if m != w {
				changed = true
				if !write {
					return true
				}
				binary.BigEndian.PutUint32(opts[e:], uint32(m))
			}
		}
		i = next
	}
	return changed
}

// AppendSACKBlocks appends the SACK blocks of the decoded packet in b to dst and returns it.
// It allocates only if dst lacks capacity (a packet carries at most 4 blocks).
func AppendSACKBlocks(dst []SACKBlock, b []byte, p *Packet) []SACKBlock {
	opts := b[p.TCPOff+tcpMinHeader : p.PayloadOff]
	for i := 0; i < len(opts); {
		first, n, next := sackAt(opts, i)
		for e := first; e < first+8*n; e += 8 {
			dst = append(dst, SACKBlock{
				Left:  seqnum.Value(binary.BigEndian.Uint32(opts[e:])),
				Right: seqnum.Value(binary.BigEndian.Uint32(opts[e+4:])),
			})
		}
		i = next
	}
	return dst
}
