package rules

import (
	"encoding/binary"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"
)

// Constants from the kernel UAPI headers that x/sys/unix does not carry.
const (
	// include/uapi/linux/netfilter/xt_NFQUEUE.h
	nfqFlagBypass = 0x01 // NFQ_FLAG_BYPASS: accept when no program listens
	xtNFQueueRev  = 3    // struct xt_NFQ_info_v3 { __u16 queuenum, queues_total, flags; }
	// include/uapi/linux/netfilter/nf_tables.h
	nftReg32Base    = 8 // NFT_REG32_00: first 32-bit register
	dynsetOpAdd     = 0 // NFT_DYNSET_OP_ADD
	dynsetOpUpdate  = 1 // NFT_DYNSET_OP_UPDATE
	dynsetOpDelete  = 2 // NFT_DYNSET_OP_DELETE
	ifNameSize      = 16
	protoTCP        = unix.IPPROTO_TCP
	tcpSportOffset  = 0
	tcpDportOffset  = 2
	ip4SaddrOffset  = 12
	ip6SaddrOffset  = 8
	expectSetName   = "expect"
	xlateMapName    = "xlate"
	portsSetName    = "ports"
	holdSetName     = "hold"
	guardSetName    = "guard"
	labelsChainName = "keep_labels"
	bareChainName   = "bare_ack"
	tcpFlagsOffset  = 13   // the byte with FIN (0x01), SYN (0x02), RST (0x04)
	tcpDoffOffset   = 12   // data offset in the high nibble, in 32-bit words
	tcpFinSynRst    = 0x07 // those three flags
	tcpFinSynRstAck = 0x17 // and ACK (0x10)
	tcpSyn          = 0x02
	tcpMinDoff      = 5 // a header without options
	tcpMaxDoff      = 15
	expectSetSizeNF = expectSetSize // script.go
	holdSetSizeNF   = holdSetSize
)

// tableObjs are the nftables objects of one family that Open and Close need.
type tableObjs struct {
	fam    family
	table  *nftables.Table
	expect *nftables.Set
	xlate  *nftables.Set
	hold   *nftables.Set
	guard  *nftables.Set
}

// netlinkFamily is what the netlink side needs to know of a family.
type netlinkFamily struct {
	table       nftables.TableFamily
	addrType    nftables.SetDatatype
	addrLen     uint32 // bytes of an address
	saddrOffset uint32 // of the source address in the network header; the destination follows
}

var (
	netlinkIPv4 = netlinkFamily{table: nftables.TableFamilyIPv4, addrType: nftables.TypeIPAddr, addrLen: 4, saddrOffset: ip4SaddrOffset}
	netlinkIPv6 = netlinkFamily{table: nftables.TableFamilyIPv6, addrType: nftables.TypeIP6Addr, addrLen: 16, saddrOffset: ip6SaddrOffset}
)

func (f family) nl() netlinkFamily {
	if f == familyIPv6 {
		return netlinkIPv6
	}
	return netlinkIPv4
}

func newTableObjs(name string, f family) *tableObjs {
	t := &nftables.Table{Name: name, Family: f.nl().table}
	at := f.nl().addrType
	return &tableObjs{
		fam:   f,
		table: t,
		expect: &nftables.Set{
			Table:         t,
			Name:          expectSetName,
			KeyType:       nftables.MustConcatSetType(at, at, nftables.TypeInetService),
			Concatenation: true,
			HasTimeout:    true,
			Dynamic:       true, // the rules delete from it
			Size:          expectSetSizeNF,
		},
		xlate: &nftables.Set{
			Table:         t,
			Name:          xlateMapName,
			IsMap:         true,
			KeyType:       nftables.MustConcatSetType(at, at, nftables.TypeInetService),
			DataType:      nftables.MustConcatSetType(at, nftables.TypeInetService),
			Concatenation: true,
			HasTimeout:    true,
		},
		hold: &nftables.Set{
			Table:         t,
			Name:          holdSetName,
			KeyType:       nftables.MustConcatSetType(at, at, nftables.TypeInetService, nftables.TypeInetService),
			Concatenation: true,
			Dynamic:       true, // the hold-mark rules add to it
			Size:          holdSetSizeNF,
		},
		guard: &nftables.Set{
			Table:      t,
			Name:       guardSetName,
			KeyType:    at,
			HasTimeout: true,
			Dynamic:    true, // the guard chains add to it
			Size:       expectSetSizeNF,
		},
	}
}

// kept are the sets whose elements outlive the daemon: an adopted table
// keeps them (see queueAdopt). Guard elements live seconds, but a data
// connection may still be on its way to one while ftpct restarts.
func (o *tableObjs) kept() []*nftables.Set {
	return []*nftables.Set{o.expect, o.xlate, o.hold, o.guard}
}

// nfqueueInfo encodes struct xt_NFQ_info_v3 in host byte order, padded to
// XT_ALIGN (8 bytes) as iptables sends it.
func nfqueueInfo(queue, total, flags uint16) []byte {
	b := make([]byte, 8)
	binary.NativeEndian.PutUint16(b[0:], queue)
	binary.NativeEndian.PutUint16(b[2:], total)
	binary.NativeEndian.PutUint16(b[4:], flags)
	return b
}

func ifname(s string) []byte {
	b := make([]byte, ifNameSize)
	copy(b, s)
	return b
}

func isTCP() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{protoTCP}},
	}
}

// divertRules: [iifname "lo" return] ; the hold-mark rule (holdOwnRule) ;
// the guard SYN rule ; saddr . daddr . sport . dport @hold NFQUEUE (no
// bypass) ; tcp dport @ports tcp flags & (fin|syn|rst) == 0
// jump bare_ack ; the same for tcp sport ; tcp dport @ports NFQUEUE bypass ;
// tcp sport @ports NFQUEUE bypass.
//
// Held flows are control connections whose stream ftpct resized: while no
// daemon reads the queue their packets are dropped (the sender retransmits
// them after the restart), since passing them unadjusted would corrupt the
// stream. The chains run before conntrack, where a connection's labels
// (ftpct's state) cannot be matched yet, hence the set. Every packet of a
// held flow is queued: its acknowledgements need mapping back.
//
// A flow not held has no sequence offset, so its bare acknowledgements (no
// payload, no SYN, FIN or RST) need nothing from ftpct: bare_ack (see
// bareRules) accepts them without queueing and returns the others.
func divertRules(cfg *Config, o *tableObjs, ports *nftables.Set, skipLoopback bool) [][]expr.Any {
	var rules [][]expr.Any
	if skipLoopback {
		rules = append(rules, []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname("lo")},
			&expr.Verdict{Kind: expr.VerdictReturn},
		})
	}
	info := xt.Unknown(nfqueueInfo(cfg.Queue, cfg.Queues, nfqFlagBypass))
	rules = append(rules, holdOwnRule(cfg, o), guardSynRule(o, &info))
	held := xt.Unknown(nfqueueInfo(cfg.Queue, cfg.Queues, 0))
	r := isTCP()
	r = append(r, loadFlow(o.fam)...)
	r = append(r,
		&expr.Lookup{SourceRegister: nftReg32Base, SetName: o.hold.Name, SetID: o.hold.ID},
		&expr.Target{Name: "NFQUEUE", Rev: xtNFQueueRev, Info: &held},
	)
	rules = append(rules, r)
	portOf := func(off uint32) []expr.Any {
		r := isTCP()
		return append(r,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2},
			&expr.Lookup{SourceRegister: 1, SetName: ports.Name, SetID: ports.ID},
		)
	}
	for _, off := range []uint32{tcpDportOffset, tcpSportOffset} {
		r := portOf(off)
		r = append(r,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: tcpFlagsOffset, Len: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{tcpFinSynRst}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0}},
			&expr.Verdict{Kind: expr.VerdictJump, Chain: bareChainName},
		)
		rules = append(rules, r)
	}
	for _, off := range []uint32{tcpDportOffset, tcpSportOffset} {
		r := isTCP()
		r = append(r,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2},
			&expr.Lookup{SourceRegister: 1, SetName: ports.Name, SetID: ports.ID},
			&expr.Target{Name: "NFQUEUE", Rev: xtNFQueueRev, Info: &info},
		)
		rules = append(rules, r)
	}
	return rules
}

// holdOwnRule: meta mark & HOLDMARK == HOLDMARK  add @hold { saddr . daddr
// . sport . dport }. ftpct gives a session's first resized packet back
// unmodified with the hold mark (NF_REPEAT): the kernel runs this chain
// again from its first rule, this rule holds the packet's own flow, and the
// hold rule below queues it to ftpct again, without bypass, the bit still
// set: so ftpct knows the flow is held, with no nftables commit. The bit
// stays until the verdict (the queue's, which clears it unless ftpct keeps
// it) or the packet's last hook (holdReverseRule).
func holdOwnRule(cfg *Config, o *tableObjs) []expr.Any {
	r := append(matchMark(cfg.HoldMark), isTCP()...)
	r = append(r, loadFlow(o.fam)...)
	return append(r,
		&expr.Dynset{SrcRegKey: nftReg32Base, SetName: o.hold.Name, SetID: o.hold.ID, Operation: dynsetOpAdd},
	)
}

// holdReverseRule: meta mark & HOLDMARK == HOLDMARK  add @hold { daddr .
// saddr . dport . sport }  meta mark set meta mark & ~HOLDMARK. At the last
// hook of a packet ftpct sent with the hold mark (the resized one), after
// NAT, its reverse flow is exactly the reply tuple as the divert chains see
// the peer's packets: held before the packet leaves, so the peer's
// acknowledgements of the resized bytes are queued and mapped. The bit is
// cleared.
func holdReverseRule(cfg *Config, o *tableObjs) []expr.Any {
	n, saddr := o.fam.nl().addrLen, o.fam.nl().saddrOffset
	p := nftReg32Base + 2*n/4
	r := append(matchMark(cfg.HoldMark), isTCP()...)
	return append(r,
		&expr.Payload{DestRegister: nftReg32Base, Base: expr.PayloadBaseNetworkHeader, Offset: saddr + n, Len: n},
		&expr.Payload{DestRegister: nftReg32Base + n/4, Base: expr.PayloadBaseNetworkHeader, Offset: saddr, Len: n},
		&expr.Payload{DestRegister: p, Base: expr.PayloadBaseTransportHeader, Offset: tcpDportOffset, Len: 2},
		&expr.Payload{DestRegister: p + 1, Base: expr.PayloadBaseTransportHeader, Offset: tcpSportOffset, Len: 2},
		&expr.Dynset{SrcRegKey: nftReg32Base, SetName: o.hold.Name, SetID: o.hold.ID, Operation: dynsetOpAdd},
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(^cfg.HoldMark), Xor: make([]byte, 4)},
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1, SourceRegister: true},
	)
}

// matchMark: meta mark & bits == bits.
func matchMark(bits uint32) []expr.Any {
	b := binaryutil.NativeEndian.PutUint32(bits)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: b, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b},
	}
}

// guardSynRule: tcp flags & (fin|syn|rst|ack) == syn, saddr @guard: to
// the queue (info, with bypass). The first SYN of a connection from a peer
// that was just sent an announcement goes to ftpct, which holds it until the
// announcement's hole is committed (its verdict did not wait for that).
func guardSynRule(o *tableObjs, info *xt.Unknown) []expr.Any {
	n, saddr := o.fam.nl().addrLen, o.fam.nl().saddrOffset
	r := isTCP()
	return append(r,
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: tcpFlagsOffset, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{tcpFinSynRstAck}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{tcpSyn}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: saddr, Len: n},
		&expr.Lookup{SourceRegister: 1, SetName: o.guard.Name, SetID: o.guard.ID},
		&expr.Target{Name: "NFQUEUE", Rev: xtNFQueueRev, Info: info},
	)
}

// guardRule: meta mark & MARK == MARK  update @guard { daddr timeout 5s }
// meta mark set meta mark & ~MARK. ftpct marks the packet that carries an
// announcement whose hole may not be committed yet (its verdict does not
// wait); at the packet's last hook (postrouting, or input when it is for
// this host), after NAT, its destination is the peer that will open the
// data connection, as the divert chains will see that connection's SYN.
// The element exists before the packet leaves: the peer cannot connect
// before it. The bit is cleared again.
func guardRule(cfg *Config, o *tableObjs) []expr.Any {
	n, saddr := o.fam.nl().addrLen, o.fam.nl().saddrOffset
	mark := binaryutil.NativeEndian.PutUint32(cfg.Mark)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mark, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: mark},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: saddr + n, Len: n},
		&expr.Dynset{SrcRegKey: 1, SetName: o.guard.Name, SetID: o.guard.ID, Operation: dynsetOpUpdate, Timeout: GuardTimeout},
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(^cfg.Mark), Xor: make([]byte, 4)},
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1, SourceRegister: true},
	}
}

// bareRules are the rules of chain bare_ack, reached by a control packet
// without SYN, FIN or RST of a flow not held: for each TCP data offset d,
// "tcp doff d, the byte at transport header + 4d exists: return" (it
// carries payload: back to be queued); then accept (no payload: nothing to
// adjust, not queued). A payload load past the packet's end ends the rule
// (NFT_BREAK), so the test is exact; it uses the transport header base only,
// which every nf_tables kernel has (the inner header base, @ih, would need
// Linux 6.2).
func bareRules() [][]expr.Any {
	var rules [][]expr.Any
	for d := uint32(tcpMinDoff); d <= tcpMaxDoff; d++ {
		r := isTCP()
		r = append(r,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: tcpDoffOffset, Len: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0xf0}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(d << 4)}},
			// Loaded and masked to nothing: only the load's success counts.
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 4 * d, Len: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0}},
			&expr.Verdict{Kind: expr.VerdictReturn},
		)
		rules = append(rules, r)
	}
	return append(rules, []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}})
}

// loadTuple loads saddr . daddr . tcp dport into consecutive 32-bit
// registers starting at NFT_REG32_00.
func loadTuple(f family) []expr.Any {
	n, saddr := f.nl().addrLen, f.nl().saddrOffset
	return []expr.Any{
		&expr.Payload{DestRegister: nftReg32Base, Base: expr.PayloadBaseNetworkHeader, Offset: saddr, Len: n},
		&expr.Payload{DestRegister: nftReg32Base + n/4, Base: expr.PayloadBaseNetworkHeader, Offset: saddr + n, Len: n},
		&expr.Payload{DestRegister: nftReg32Base + 2*n/4, Base: expr.PayloadBaseTransportHeader, Offset: tcpDportOffset, Len: 2},
	}
}

// loadFlow loads saddr . daddr . tcp sport . tcp dport into consecutive
// 32-bit registers starting at NFT_REG32_00.
func loadFlow(f family) []expr.Any {
	n, saddr := f.nl().addrLen, f.nl().saddrOffset
	r := nftReg32Base + 2*n/4
	return []expr.Any{
		&expr.Payload{DestRegister: nftReg32Base, Base: expr.PayloadBaseNetworkHeader, Offset: saddr, Len: n},
		&expr.Payload{DestRegister: nftReg32Base + n/4, Base: expr.PayloadBaseNetworkHeader, Offset: saddr + n, Len: n},
		&expr.Payload{DestRegister: r, Base: expr.PayloadBaseTransportHeader, Offset: tcpSportOffset, Len: 2},
		&expr.Payload{DestRegister: r + 1, Base: expr.PayloadBaseTransportHeader, Offset: tcpDportOffset, Len: 2},
	}
}

// labelsRule: ct label set 127, in a chain nothing jumps to, so it never
// runs. Its existence is what matters: the kernel gives new conntrack entries
// a labels extension only while a rule that sets ct labels exists
// (nft_ct_set_init calls nf_connlabels_get), and ftpct keeps its per-session
// state in the control connection's labels.
func labelsRule() []expr.Any {
	bit := make([]byte, 16)
	bit[15] = 0x80 // bit 127, as nft encodes "ct label set 127"
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: bit},
		&expr.Ct{Key: expr.CtKeyLABELS, Register: 1, SourceRegister: true},
	}
}

// pinholeRule: ct state new  saddr . daddr . dport @expect  delete @expect {…}
// ct mark set ct mark or MARK.
func pinholeRule(cfg *Config, o *tableObjs) []expr.Any {
	r := []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitNEW), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
	r = append(r, isTCP()...)
	r = append(r, loadTuple(o.fam)...)
	r = append(r,
		&expr.Lookup{SourceRegister: nftReg32Base, SetName: o.expect.Name, SetID: o.expect.ID},
		&expr.Dynset{SrcRegKey: nftReg32Base, SetName: o.expect.Name, SetID: o.expect.ID, Operation: dynsetOpDelete},
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(^cfg.Mark), Xor: binaryutil.NativeEndian.PutUint32(cfg.Mark)},
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1, SourceRegister: true},
	)
	return r
}

// xlateRule: ct mark and MARK == MARK dnat to saddr . daddr . dport map @xlate.
func xlateRule(cfg *Config, o *tableObjs) []expr.Any {
	mark := binaryutil.NativeEndian.PutUint32(cfg.Mark)
	r := []expr.Any{
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mark, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: mark},
	}
	r = append(r, isTCP()...)
	r = append(r, loadTuple(o.fam)...)
	natFamily := uint32(unix.NFPROTO_IPV4)
	if o.fam == familyIPv6 {
		natFamily = unix.NFPROTO_IPV6
	}
	r = append(r,
		&expr.Lookup{SourceRegister: nftReg32Base, DestRegister: nftReg32Base, IsDestRegSet: true,
			SetName: o.xlate.Name, SetID: o.xlate.ID},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: natFamily,
			RegAddrMin: nftReg32Base, RegProtoMin: nftReg32Base + o.fam.nl().addrLen/4, Specified: true},
	)
	return r
}

// queueTable adds to conn's batch a fresh table: the reset of the table
// (add, delete, add) and every object in it. Nothing is sent.
func queueTable(conn *nftables.Conn, cfg *Config, o *tableObjs, note string) error {
	conn.AddTable(o.table)
	conn.DelTable(o.table)
	conn.AddTable(o.table)
	return queueObjects(conn, cfg, o, nil, nil, note)
}

// queueAdopt adds to conn's batch the adoption of the existing table o
// left by an earlier run: its chains and the sets it does not keep are
// deleted and everything is added again, while the kept sets (holes, their
// DNAT mappings, held flows) stay with their elements when their definition
// is the one this version uses. A kept set whose elements fit but whose
// flags differ (the hold set of a version before the hold mark, not
// dynamic: set flags cannot be changed) is deleted and made again with
// carry's elements for it, which the caller read (carried). One batch: the
// kernel applies it atomically.
func queueAdopt(conn *nftables.Conn, cfg *Config, o *tableObjs, chains []*nftables.Chain, sets []*nftables.Set, carry map[string][]nftables.SetElement, note string) error {
	conn.AddTable(o.table)
	// All flushed before any is deleted: a chain still jumped to cannot go.
	for _, c := range chains {
		conn.FlushChain(c)
	}
	// A chain that queueObjects makes again as it is stays: its rules are
	// replaced in this batch and, for a base chain, its hook stays
	// registered. Deleting a base chain unregisters its hook, and the
	// kernel then drops every packet that hook queued and that waits for
	// its verdict (the verdict fails with ENOENT): packets the new daemon
	// is already reading while it adopts the table.
	for _, c := range chains {
		if !wantedChain(c) {
			conn.DelChain(c)
		}
	}
	keep := map[string]bool{}
	for _, s := range sets {
		if s.Name == portsSetName && !s.IsMap && s.KeyType.Bytes == nftables.TypeInetService.Bytes {
			conn.FlushSet(s) // refilled from the configuration
			keep[s.Name] = true
			continue
		}
		if want := o.byName(s.Name); want != nil && sameSet(s, want) {
			keep[s.Name] = true
			continue
		}
		conn.DelSet(s)
	}
	return queueObjects(conn, cfg, o, keep, carry, note)
}

// carried reports whether the kernel's set have is one of o's kept sets
// whose elements a new set of the wanted definition can take over as they
// are (same key, no timeouts to lose) while have cannot stay: its
// elements are to be read and carried over (queueAdopt).
func (o *tableObjs) carried(have *nftables.Set) bool {
	want := o.byName(have.Name)
	if want == nil || sameSet(have, want) {
		return false
	}
	return have.KeyType.Bytes == want.KeyType.Bytes && !have.IsMap && !want.IsMap &&
		!have.HasTimeout && !want.HasTimeout
}

// chainSpec is a chain queueObjects makes: its hook, or none (a regular chain).
type chainSpec struct {
	typ  nftables.ChainType
	hook *nftables.ChainHook
	prio int
}

// wantedChains are the chains queueObjects makes, by name.
var wantedChains = map[string]chainSpec{
	labelsChainName: {},
	bareChainName:   {},
	"divert_pre":    {nftables.ChainTypeFilter, nftables.ChainHookPrerouting, prioRaw},
	"divert_out":    {nftables.ChainTypeFilter, nftables.ChainHookOutput, prioRaw},
	"pinhole_pre":   {nftables.ChainTypeFilter, nftables.ChainHookPrerouting, prioMangle},
	"pinhole_out":   {nftables.ChainTypeFilter, nftables.ChainHookOutput, prioMangle},
	"xlate_pre":     {nftables.ChainTypeNAT, nftables.ChainHookPrerouting, prioNAT},
	"guard_post":    {nftables.ChainTypeFilter, nftables.ChainHookPostrouting, prioGuard},
	"guard_in":      {nftables.ChainTypeFilter, nftables.ChainHookInput, prioGuard},
}

// wantedChain reports whether c is a chain queueObjects makes again with
// the same type, hook and priority (or both regular), so it can stay.
func wantedChain(c *nftables.Chain) bool {
	w, ok := wantedChains[c.Name]
	if !ok {
		return false
	}
	if w.hook == nil || c.Hooknum == nil || c.Priority == nil {
		return w.hook == nil && c.Hooknum == nil
	}
	return c.Type == w.typ && *c.Hooknum == *w.hook && int(*c.Priority) == w.prio
}

func (o *tableObjs) byName(name string) *nftables.Set {
	for _, s := range o.kept() {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// sameSet reports whether the kernel's set have can hold want's elements.
func sameSet(have, want *nftables.Set) bool {
	return have.KeyType.Bytes == want.KeyType.Bytes && have.IsMap == want.IsMap &&
		have.HasTimeout == want.HasTimeout && have.Dynamic == want.Dynamic &&
		(!want.IsMap || have.DataType.Bytes == want.DataType.Bytes)
}

// queueObjects adds the table's sets (but those in keep, which exist; with
// carry's elements for those made again), chains and rules to conn's batch.
// note, if not empty, is the labels rule's comment (see createdNote).
func queueObjects(conn *nftables.Conn, cfg *Config, o *tableObjs, keep map[string]bool, carry map[string][]nftables.SetElement, note string) error {
	ports := &nftables.Set{Table: o.table, Name: portsSetName, KeyType: nftables.TypeInetService}
	elems := make([]nftables.SetElement, len(cfg.Ports))
	for i, p := range cfg.Ports {
		elems[i] = nftables.SetElement{Key: binary.BigEndian.AppendUint16(nil, p)}
	}
	if keep[portsSetName] {
		if err := conn.SetAddElements(ports, elems); err != nil {
			return err
		}
	} else if err := conn.AddSet(ports, elems); err != nil {
		return err
	}
	for _, s := range o.kept() {
		// AddSet allocates a fresh batch ID per call; reset so that a
		// second Install on the same Manager gets new IDs too. A kept set
		// is referred to by name (ID 0).
		s.ID = 0
		if keep[s.Name] {
			continue
		}
		if err := conn.AddSet(s, carry[s.Name]); err != nil {
			return err
		}
	}

	accept := nftables.ChainPolicyAccept
	chain := func(name string) *nftables.Chain {
		w := wantedChains[name]
		p := nftables.ChainPriority(w.prio)
		return conn.AddChain(&nftables.Chain{Name: name, Table: o.table, Type: w.typ,
			Hooknum: w.hook, Priority: &p, Policy: &accept})
	}
	add := func(c *nftables.Chain, rules ...[]expr.Any) {
		for _, r := range rules {
			conn.AddRule(&nftables.Rule{Table: o.table, Chain: c, Exprs: r})
		}
	}
	lr := &nftables.Rule{Table: o.table, Chain: conn.AddChain(&nftables.Chain{Name: labelsChainName, Table: o.table}), Exprs: labelsRule()}
	if note != "" {
		lr.UserData = userdata.AppendString(nil, userdata.TypeComment, note)
	}
	conn.AddRule(lr)
	// Before the divert chains that jump to it.
	bare := conn.AddChain(&nftables.Chain{Name: bareChainName, Table: o.table})
	add(bare, bareRules()...)
	add(chain("divert_pre"), divertRules(cfg, o, ports, true)...)
	add(chain("divert_out"), divertRules(cfg, o, ports, false)...)
	add(chain("pinhole_pre"), pinholeRule(cfg, o))
	add(chain("pinhole_out"), pinholeRule(cfg, o))
	add(chain("xlate_pre"), xlateRule(cfg, o))
	add(chain("guard_post"), guardRule(cfg, o), holdReverseRule(cfg, o))
	add(chain("guard_in"), guardRule(cfg, o), holdReverseRule(cfg, o))
	return nil
}
