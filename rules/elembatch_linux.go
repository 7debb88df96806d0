package rules

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// elemBatch builds nftables transactions of set-element adds and deletes
// and commits each with one write and, when it succeeds, one read: the
// committer's passes and the hold set's updates. It encodes what
// google/nftables' Conn.SetAddElements and SetDeleteElements encode (the
// same messages, attributes and flags; see elembatch_linux_test.go), into a
// buffer it keeps, and asks for an acknowledgement of the last message
// only, where google/nftables asks for and reads one per message. Everything
// else (install, remove, listing) stays with google/nftables.
//
// Not safe for concurrent use: the Manager calls it locked.
type elemBatch struct {
	sock elemSocket
	buf  []byte    // the transaction being built
	rbuf []byte    // a reply
	msgs []elemMsg // the element messages in buf
	seq  uint32    // the last sequence number used
	// begin is the sequence number of buf's NFNL_MSG_BATCH_BEGIN; 0 while
	// buf is empty.
	begin uint32
}

// elemSocket is the NETLINK_NETFILTER socket an elemBatch writes to: the
// kernel's (elemSocketLinux) or a test's.
type elemSocket interface {
	// send writes b as one datagram.
	send(b []byte) error
	// recv reads one datagram into b (truncated to len(b)).
	recv(b []byte) (int, error)
	close() error
}

// elemMsg is one element message of a transaction.
type elemMsg struct {
	off   int    // its offset in buf
	seq   uint32 // its sequence number
	del   bool   // NFT_MSG_DELSETELEM, else NFT_MSG_NEWSETELEM
	set   *nftables.Set
	elems []nftables.SetElement // the elements of the add or delete it is part of
	first int                   // the index in elems of its first element
}

// Sizes of the netlink framing (include/uapi/linux/netlink.h,
// include/uapi/linux/netfilter/nfnetlink.h).
const (
	nlmsgHdrLen = unix.SizeofNlMsghdr // struct nlmsghdr
	nfgenLen    = 4                   // struct nfgenmsg
	nlaHdrLen   = unix.SizeofNlAttr   // struct nlattr
	nlmsgErrLen = 4 + nlmsgHdrLen     // struct nlmsgerr: error, then the request's header
	// maxNLALen is the largest attribute (nla_len is 16 bits): a message's
	// element list is split into messages of the same set beyond it.
	maxNLALen = 0xffff
	// maxDataLen is the longest key or map data the kernel takes
	// (NFT_DATA_VALUE_MAXLEN, include/net/netfilter/nf_tables.h).
	maxDataLen = 64
	// maxCommentLen is the longest comment: its userdata TLV's length,
	// the NUL included, is one byte.
	maxCommentLen = 254
	// replyBufLen holds any reply: errors are capped (NETLINK_CAP_ACK)
	// and only their header and the extended-ack attributes are read.
	replyBufLen = 8192
)

func newElemBatch(sock elemSocket) *elemBatch {
	return &elemBatch{sock: sock, rbuf: make([]byte, replyBufLen)}
}

func align4(n int) int { return (n + 3) &^ 3 }

// add queues the adds of elems to s in the transaction, as
// nftables.Conn.SetAddElements does.
func (b *elemBatch) add(s *nftables.Set, elems []nftables.SetElement) error {
	return b.put(false, s, elems)
}

// del queues the deletes of elems from s in the transaction, as
// nftables.Conn.SetDeleteElements does.
func (b *elemBatch) del(s *nftables.Set, elems []nftables.SetElement) error {
	return b.put(true, s, elems)
}

// check refuses what put cannot encode as google/nftables would, or what the
// kernel cannot take.
func check(s *nftables.Set, elems []nftables.SetElement) error {
	if s.Anonymous {
		return fmt.Errorf("%w: set %s is anonymous", ErrInvalidElement, s.Name)
	}
	for i := range elems {
		e := &elems[i]
		switch {
		case e.VerdictData != nil || e.IntervalEnd || len(e.KeyEnd) > 0:
			return fmt.Errorf("%w: element %d of %s: verdicts and intervals are not supported", ErrInvalidElement, i, s.Name)
		case len(e.Key) == 0 || len(e.Key) > maxDataLen:
			return fmt.Errorf("%w: element %d of %s: key of %d bytes", ErrInvalidElement, i, s.Name, len(e.Key))
		case len(e.Val) > maxDataLen:
			return fmt.Errorf("%w: element %d of %s: data of %d bytes", ErrInvalidElement, i, s.Name, len(e.Val))
		case len(e.Comment) > maxCommentLen:
			return fmt.Errorf("%w: element %d of %s: comment of %d bytes", ErrInvalidElement, i, s.Name, len(e.Comment))
		}
	}
	return nil
}

func (b *elemBatch) put(del bool, s *nftables.Set, elems []nftables.SetElement) error {
	if len(elems) == 0 {
		return nil
	}
	if err := check(s, elems); err != nil {
		return err
	}
	if b.begin == 0 {
		b.buf = b.buf[:0]
		b.msgs = b.msgs[:0]
		b.begin = b.batchMsg(unix.NFNL_MSG_BATCH_BEGIN)
	}
	typ := uint16(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSETELEM)
	if del {
		typ = unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_DELSETELEM
	}
	for first := 0; first < len(elems); {
		off, seq := b.header(typ, unix.NLM_F_REQUEST|unix.NLM_F_CREATE)
		b.buf = append(b.buf, byte(s.Table.Family), unix.NFNETLINK_V0, 0, 0)
		b.attrString(unix.NFTA_SET_ELEM_LIST_SET, s.Name)
		b.attrU32(unix.NFTA_SET_ELEM_LIST_SET_ID, s.ID)
		b.attrString(unix.NFTA_SET_ELEM_LIST_TABLE, s.Table.Name)
		list := b.nest(unix.NFTA_SET_ELEM_LIST_ELEMENTS)
		i := first
		for ; i < len(elems); i++ {
			// check bounds an element far below maxNLALen.
			if i > first && len(b.buf)-list+elemLen(s, &elems[i]) > maxNLALen {
				break
			}
			b.elem(uint16(i-first+1), s, &elems[i])
		}
		b.end(list)
		binary.NativeEndian.PutUint32(b.buf[off:], uint32(len(b.buf)-off))
		b.msgs = append(b.msgs, elemMsg{off: off, seq: seq, del: del, set: s, elems: elems, first: first})
		first = i
	}
	return nil
}

// header appends a netlink header (its length set by the caller) and
// returns its offset and sequence number. The port ID is 0: the kernel
// answers the sending socket whatever it says.
func (b *elemBatch) header(typ, flags uint16) (off int, seq uint32) {
	b.seq++
	if b.seq == 0 {
		b.seq++ // 0 means "no batch" in begin
	}
	off = len(b.buf)
	b.buf = binary.NativeEndian.AppendUint32(b.buf, 0)
	b.buf = binary.NativeEndian.AppendUint16(b.buf, typ)
	b.buf = binary.NativeEndian.AppendUint16(b.buf, flags)
	b.buf = binary.NativeEndian.AppendUint32(b.buf, b.seq)
	b.buf = binary.NativeEndian.AppendUint32(b.buf, 0)
	return off, b.seq
}

// batchMsg appends NFNL_MSG_BATCH_BEGIN or _END for the nftables subsystem
// and returns its sequence number.
func (b *elemBatch) batchMsg(typ uint16) uint32 {
	off, seq := b.header(typ, unix.NLM_F_REQUEST)
	b.buf = append(b.buf, unix.AF_UNSPEC, unix.NFNETLINK_V0)
	b.buf = binary.BigEndian.AppendUint16(b.buf, unix.NFNL_SUBSYS_NFTABLES)
	binary.NativeEndian.PutUint32(b.buf[off:], uint32(len(b.buf)-off))
	return seq
}

// attr appends an attribute of typ holding data, padded.
func (b *elemBatch) attr(typ uint16, data []byte) {
	b.buf = binary.NativeEndian.AppendUint16(b.buf, uint16(nlaHdrLen+len(data)))
	b.buf = binary.NativeEndian.AppendUint16(b.buf, typ)
	b.buf = append(b.buf, data...)
	b.pad()
}

func (b *elemBatch) pad() {
	for len(b.buf)%4 != 0 {
		b.buf = append(b.buf, 0)
	}
}

// attrString appends a NUL-terminated string attribute.
func (b *elemBatch) attrString(typ uint16, s string) {
	b.buf = binary.NativeEndian.AppendUint16(b.buf, uint16(nlaHdrLen+len(s)+1))
	b.buf = binary.NativeEndian.AppendUint16(b.buf, typ)
	b.buf = append(b.buf, s...)
	b.buf = append(b.buf, 0)
	b.pad()
}

func (b *elemBatch) attrU32(typ uint16, v uint32) {
	b.buf = binary.NativeEndian.AppendUint16(b.buf, nlaHdrLen+4)
	b.buf = binary.NativeEndian.AppendUint16(b.buf, typ)
	b.buf = binary.BigEndian.AppendUint32(b.buf, v)
}

func (b *elemBatch) attrU64(typ uint16, v uint64) {
	b.buf = binary.NativeEndian.AppendUint16(b.buf, nlaHdrLen+8)
	b.buf = binary.NativeEndian.AppendUint16(b.buf, typ)
	b.buf = binary.BigEndian.AppendUint64(b.buf, v)
}

// nest opens a nested attribute of typ; end closes it.
func (b *elemBatch) nest(typ uint16) int {
	off := len(b.buf)
	b.buf = binary.NativeEndian.AppendUint16(b.buf, 0)
	b.buf = binary.NativeEndian.AppendUint16(b.buf, typ|unix.NLA_F_NESTED)
	return off
}

func (b *elemBatch) end(off int) {
	binary.NativeEndian.PutUint16(b.buf[off:], uint16(len(b.buf)-off))
}

// elem appends element e of s as the n-th of a list, with the attributes,
// in the order, google/nftables' Set.makeElemList gives them: the key, the
// timeout (a set with timeouts, an element with one), the map data, the
// comment (userdata).
func (b *elemBatch) elem(n uint16, s *nftables.Set, e *nftables.SetElement) {
	el := b.nest(n)
	key := b.nest(unix.NFTA_SET_ELEM_KEY)
	b.attr(unix.NFTA_DATA_VALUE, e.Key)
	b.end(key)
	if s.HasTimeout && e.Timeout != 0 {
		b.attrU64(unix.NFTA_SET_ELEM_TIMEOUT, uint64(e.Timeout.Milliseconds()))
	}
	if len(e.Val) > 0 {
		data := b.nest(unix.NFTA_SET_ELEM_DATA)
		b.attr(unix.NFTA_DATA_VALUE, e.Val)
		b.end(data)
	}
	if len(e.Comment) > 0 {
		// userdata.AppendString's TLV, without its allocations.
		b.buf = binary.NativeEndian.AppendUint16(b.buf, uint16(nlaHdrLen+2+len(e.Comment)+1))
		b.buf = binary.NativeEndian.AppendUint16(b.buf, unix.NFTA_SET_ELEM_USERDATA)
		b.buf = append(b.buf, byte(userdata.NFTNL_UDATA_SET_ELEM_COMMENT), byte(len(e.Comment)+1))
		b.buf = append(b.buf, e.Comment...)
		b.buf = append(b.buf, 0)
		b.pad()
	}
	b.end(el)
}

// elemLen is how many bytes elem appends for e.
func elemLen(s *nftables.Set, e *nftables.SetElement) int {
	n := nlaHdrLen + 2*nlaHdrLen + align4(len(e.Key))
	if s.HasTimeout && e.Timeout != 0 {
		n += nlaHdrLen + 8
	}
	if len(e.Val) > 0 {
		n += 2*nlaHdrLen + align4(len(e.Val))
	}
	if len(e.Comment) > 0 {
		n += nlaHdrLen + align4(2+len(e.Comment)+1)
	}
	return n
}

// discard drops the transaction being built.
func (b *elemBatch) discard() { b.begin = 0 }

// commit sends the transaction (nothing when it is empty) and waits for
// the kernel's answer. nfnetlink runs the whole batch inside the write
// (nfnetlink_rcv_batch, net/netfilter/nfnetlink.c): it processes every
// message, records an error for each failing one and an acknowledgement
// for each that asked for one, commits the batch only if none failed
// (else aborts it whole), and then sends those replies in message order.
// So the last message's reply (its error, or the acknowledgement only it
// asks for) comes last, after every error of the batch; an error naming
// the batch begin (no permission; also out of memory and a failed commit,
// which the tests do not provoke) ends it too. The integration tests
// (elembatch_integration_linux_test.go) check this on the running kernel.
// Replies of an earlier transaction left unread (one that ended at its
// batch begin's error) are recognised by their sequence numbers and
// skipped.
// A rejected transaction's error joins one *elemError per failing message,
// each naming its element when the kernel says which (extended ack).
func (b *elemBatch) commit() error {
	if b.begin == 0 {
		return nil
	}
	begin := b.begin
	b.begin = 0
	last := &b.msgs[len(b.msgs)-1]
	flags := binary.NativeEndian.Uint16(b.buf[last.off+6:])
	binary.NativeEndian.PutUint16(b.buf[last.off+6:], flags|unix.NLM_F_ACK)
	b.batchMsg(unix.NFNL_MSG_BATCH_END)
	if err := b.sock.send(b.buf); err != nil {
		return fmt.Errorf("send nftables transaction: %w", err)
	}
	var errs []error
	for {
		n, err := b.sock.recv(b.rbuf)
		if err != nil {
			return errors.Join(append(errs, fmt.Errorf("read nftables transaction's answer: %w", err))...)
		}
		done := false
		for p := b.rbuf[:n]; len(p) >= nlmsgHdrLen; {
			l := int(binary.NativeEndian.Uint32(p))
			typ := binary.NativeEndian.Uint16(p[4:])
			flags := binary.NativeEndian.Uint16(p[6:])
			seq := binary.NativeEndian.Uint32(p[8:])
			if l < nlmsgHdrLen {
				break
			}
			msg := p[:min(l, len(p))]
			p = p[min(align4(l), len(p)):]
			// Not this transaction's: left by an earlier one that
			// ended at its batch begin's error.
			if seq-begin > last.seq-begin || typ != unix.NLMSG_ERROR || len(msg) < nlmsgHdrLen+4 {
				continue
			}
			if code := int32(binary.NativeEndian.Uint32(msg[nlmsgHdrLen:])); code != 0 {
				errs = append(errs, b.replyErr(begin, seq, unix.Errno(-code), msg, flags))
				done = done || seq == begin
			}
			done = done || seq == last.seq
		}
		if done {
			if len(errs) == 1 {
				return errs[0]
			}
			return errors.Join(errs...)
		}
	}
}

// elemError is the kernel's refusal of one element message of a
// transaction: an add to or delete from Set, and, when the kernel said
// which (Elem >= 0), the element at fault, Elem indexing the elements
// given to add or del.
type elemError struct {
	Del  bool
	Set  string
	Elem int    // -1: the kernel named no element
	Key  []byte // Elem's key
	Msg  string // the kernel's extended-ack message, if any
	Err  unix.Errno
}

func (e *elemError) Error() string {
	var sb strings.Builder
	if e.Del {
		sb.WriteString("delete from ")
	} else {
		sb.WriteString("add to ")
	}
	sb.WriteString(e.Set)
	if e.Elem >= 0 {
		fmt.Fprintf(&sb, ", element %d (key %s)", e.Elem, hex.EncodeToString(e.Key))
	}
	sb.WriteString(": ")
	if e.Msg != "" {
		sb.WriteString(e.Msg + ": ")
	}
	sb.WriteString(e.Err.Error())
	return sb.String()
}

func (e *elemError) Unwrap() error { return e.Err }

// replyErr is the error of reply msg (its flags given) to the message with
// sequence number seq of the transaction that began with begin.
func (b *elemBatch) replyErr(begin, seq uint32, errno unix.Errno, msg []byte, flags uint16) error {
	i := int(seq - b.msgs[0].seq)
	if seq == begin || i < 0 || i >= len(b.msgs) {
		return fmt.Errorf("nftables transaction: %w", errno)
	}
	m := b.msgs[i]
	e := &elemError{Del: m.del, Set: m.set.Name, Elem: -1, Err: errno}
	offs, text, ok := ackTLVs(msg, flags)
	e.Msg = text
	if ok {
		if j := b.elemAt(m, offs); j >= 0 {
			e.Elem = m.first + j
			e.Key = append([]byte(nil), m.elems[e.Elem].Key...)
		}
	}
	return e
}

// ackTLVs reads the extended acknowledgement of an error reply
// (NLMSGERR_ATTR_OFFS, the offset of the attribute at fault in the request,
// and NLMSGERR_ATTR_MSG; include/uapi/linux/netlink.h).
func ackTLVs(msg []byte, flags uint16) (offs uint32, text string, ok bool) {
	if flags&unix.NLM_F_ACK_TLVS == 0 || len(msg) < nlmsgHdrLen+nlmsgErrLen {
		return 0, "", false
	}
	p := msg[nlmsgHdrLen+nlmsgErrLen:]
	if flags&unix.NLM_F_CAPPED == 0 {
		// The request follows, whole.
		rl := int(binary.NativeEndian.Uint32(msg[nlmsgHdrLen+4:]))
		if rl < nlmsgHdrLen || align4(rl-nlmsgHdrLen) > len(p) {
			return 0, "", false
		}
		p = p[align4(rl-nlmsgHdrLen):]
	}
	for len(p) >= nlaHdrLen {
		l := int(binary.NativeEndian.Uint16(p))
		typ := binary.NativeEndian.Uint16(p[2:]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if l < nlaHdrLen || l > len(p) {
			break
		}
		d := p[nlaHdrLen:l]
		switch {
		case typ == unix.NLMSGERR_ATTR_OFFS && len(d) == 4:
			offs, ok = binary.NativeEndian.Uint32(d), true
		case typ == unix.NLMSGERR_ATTR_MSG:
			text = strings.TrimRight(string(d), "\x00")
		}
		p = p[min(align4(l), len(p)):]
	}
	return offs, text, ok
}

// elemAt is the index, in message m, of the element whose attribute is at
// offs from the message's start; -1 if none is.
func (b *elemBatch) elemAt(m elemMsg, offs uint32) int {
	msg := b.buf[m.off:]
	msg = msg[:binary.NativeEndian.Uint32(msg)]
	p := msg[nlmsgHdrLen+nfgenLen:]
	for len(p) >= nlaHdrLen {
		l := int(binary.NativeEndian.Uint16(p))
		if l < nlaHdrLen || l > len(p) {
			return -1
		}
		if binary.NativeEndian.Uint16(p[2:])&^unix.NLA_F_NESTED == unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			base := len(msg) - len(p) + nlaHdrLen
			q := p[nlaHdrLen:l]
			for j := 0; len(q) >= nlaHdrLen; j++ {
				el := int(binary.NativeEndian.Uint16(q))
				if el < nlaHdrLen || el > len(q) {
					return -1
				}
				if int(offs) == base {
					return j
				}
				base += align4(el)
				q = q[min(align4(el), len(q)):]
			}
			return -1
		}
		p = p[min(align4(l), len(p)):]
	}
	return -1
}

// close closes the socket.
func (b *elemBatch) close() error { return b.sock.close() }
