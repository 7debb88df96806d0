//go:build linux

package main

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"

	"github.com/ftpct/ftpct/rules"
)

// Constants from the kernel's UAPI headers, as the rules package uses them.
const (
	nfqFlagBypass   = 0x01 // NFQ_FLAG_BYPASS, include/uapi/linux/netfilter/xt_NFQUEUE.h
	xtNFQueueRev    = 3    // struct xt_NFQ_info_v3 { __u16 queuenum, queues_total, flags; }
	tcpFlagsOffset  = 13   // FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10
	tcpFinSynRstAck = 0x17
	tcpSyn          = 0x02
	ifNameSize      = 16
)

// holdAll puts, at the head of the divert chains (divert_pre, divert_out)
// of cfg's tables, rules that queue (with bypass, to the same queues) every
// TCP packet from or to a control port and every connection's first SYN
// (SYN without ACK): as if every control connection were in the hold set
// from its first packet, its bare acknowledgements included, and every peer
// in the guard set. That is at least every packet ftpct queues in
// bench/sidebyside.sh's loads: ftpct holds each control connection from its
// first rewritten PORT on, so that only the bare acknowledgements before it
// stay in the kernel, and its guard queues the data connections' first SYNs
// from a server it just sent a guarded PORT (after a storm, for the guard's
// timeout). In prerouting the rules skip iifname "lo", as the divert chain
// does: local traffic is diverted once, in output. Remove deletes them with
// the tables.
func holdAll(cfg rules.Config) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("hold all: %w", err)
	}
	fams := []nftables.TableFamily{nftables.TableFamilyIPv4}
	if cfg.IPv6 {
		fams = append(fams, nftables.TableFamilyIPv6)
	}
	for _, f := range fams {
		t := &nftables.Table{Name: cfg.Table, Family: f}
		for _, ch := range []struct {
			name string
			pre  bool
		}{{"divert_pre", true}, {"divert_out", false}} {
			for _, r := range holdAllRules(cfg, ch.pre) {
				// Inserted at the head: their order among themselves
				// does not matter, each ends in the queue.
				c.InsertRule(&nftables.Rule{Table: t, Chain: &nftables.Chain{Name: ch.name, Table: t}, Exprs: r})
			}
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("hold all: %w", err)
	}
	return nil
}

// holdAllRules: [iifname != "lo"] tcp flags & (fin|syn|rst|ack) == syn
// queue; [iifname != "lo"] tcp dport P queue; [iifname != "lo"] tcp sport P
// queue, for each control port P.
func holdAllRules(cfg rules.Config, pre bool) [][]expr.Any {
	info := make([]byte, 8)
	binary.NativeEndian.PutUint16(info[0:], cfg.Queue)
	binary.NativeEndian.PutUint16(info[2:], cfg.Queues)
	binary.NativeEndian.PutUint16(info[4:], nfqFlagBypass)
	head := func() []expr.Any {
		var r []expr.Any
		if pre {
			lo := make([]byte, ifNameSize)
			copy(lo, "lo")
			r = append(r,
				&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: lo})
		}
		return append(r,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}})
	}
	queue := func(r []expr.Any) []expr.Any {
		u := xt.Unknown(info)
		return append(r, &expr.Target{Name: "NFQUEUE", Rev: xtNFQueueRev, Info: &u})
	}
	syn := append(head(),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: tcpFlagsOffset, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{tcpFinSynRstAck}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{tcpSyn}})
	out := [][]expr.Any{queue(syn)}
	for _, p := range cfg.Ports {
		for _, off := range []uint32{0, 2} { // tcp sport, tcp dport
			r := append(head(),
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, p)})
			out = append(out, queue(r))
		}
	}
	return out
}
