package nfq

import (
	"log/slog"
	"sync/atomic"
)

// Verdict is the fate of a queued packet.
type Verdict uint8

const (
	// Accept lets the packet continue (modified when a payload is given).
	Accept Verdict = iota
	// Drop drops it.
	Drop
	// Pending, returned by a Handler, sends no verdict now: the packet
	// waits in the kernel until Queue.Verdict gives it one by its ID.
	Pending
	// AcceptMark, returned by a Handler, accepts the packet (modified when
	// a payload is given) with Config.Mark's bits set in its packet mark
	// (skb->mark), its other bits kept: the verdict carries NFQA_MARK, the
	// packet's mark as queued (Packet.Mark) or Config.Mark. Queue.Verdict
	// refuses it: a deferred verdict does not know the packet's mark.
	AcceptMark
	// Repeat, returned by a Handler, gives the packet back unmodified
	// with Config.HoldMark's bits set in its mark, and the kernel runs the
	// hook entry that queued it again from its first rule (NF_REPEAT,
	// nf_reinject in net/netfilter/nf_queue.c). A payload is ignored.
	// Queue.Verdict refuses it.
	Repeat
	// AcceptHold is Accept with Config.HoldMark's bits set in the packet
	// mark (kept, for a packet queued with them). Queue.Verdict refuses it.
	AcceptHold
	// AcceptMarkHold is AcceptMark with Config.HoldMark's bits set too.
	// Queue.Verdict refuses it.
	AcceptMarkHold
)

func (v Verdict) String() string {
	switch v {
	case Drop:
		return "drop"
	case Pending:
		return "pending"
	case AcceptMark:
		return "accept-mark"
	case Repeat:
		return "repeat"
	case AcceptHold:
		return "accept-hold"
	case AcceptMarkHold:
		return "accept-mark-hold"
	}
	return "accept"
}

// Packet is one queued packet.
type Packet struct {
	ID uint32
	// Hook is the netfilter hook it was queued from (NF_INET_PRE_ROUTING=0,
	// LOCAL_IN=1, FORWARD=2, LOCAL_OUT=3, POST_ROUTING=4; include/uapi/linux/netfilter.h).
	Hook uint8
	// Mark is the packet's mark (skb->mark) when it was queued; the kernel
	// sends it (NFQA_MARK) only when it is not 0.
	Mark uint32
	// Data is the IP datagram, starting at the IP header.
	Data []byte
}

// Handler decides a packet's verdict. A non-nil payload replaces the packet.
// With Pending, the verdict is given later with Queue.Verdict; p.Data is
// valid only until the Handler returns.
type Handler func(p Packet) (Verdict, []byte)

// Config selects and sizes a queue.
type Config struct {
	// Num is the queue number (the NFQUEUE rule's --queue-num, or one
	// number of its --queue-balance range: open one Queue per number).
	Num uint16
	// MaxQueueLen is how many packets the kernel holds for us before it
	// drops (or, with a bypass rule and no reader, passes) new ones.
	// 0 means DefaultConfig's.
	MaxQueueLen uint32
	// ReadBuffer is the netlink socket's receive buffer in bytes (with
	// CAP_NET_ADMIN, beyond net.core.rmem_max). 0 means DefaultConfig's.
	ReadBuffer int
	// Mark holds the packet-mark bits an AcceptMark verdict sets.
	Mark uint32
	// HoldMark holds the packet-mark bits Repeat, AcceptHold and
	// AcceptMarkHold set. Every other verdict a Handler returns for a
	// packet queued with them clears them (its verdict carries NFQA_MARK
	// without them); a deferred one (Queue.Verdict) carries no mark and
	// leaves the packet's mark as it was queued.
	HoldMark uint32
	// Logger receives the queue's own complaints, once each (the counters
	// count every one); nil discards them.
	Logger *slog.Logger
	// Decided, when set, is called on the reader's goroutine once the
	// verdict a Handler returned (not Pending) is in line to be written,
	// before the next packet is handled: a Queue.Verdict it makes is
	// written after that verdict, so the kernel reinjects the packets in
	// that order.
	Decided func()
}

// DefaultConfig returns queue 21 sized for bursts of control traffic.
func DefaultConfig() Config {
	return Config{Num: 21, MaxQueueLen: 8192, ReadBuffer: 8 << 20}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MaxQueueLen == 0 {
		c.MaxQueueLen = d.MaxQueueLen
	}
	if c.ReadBuffer == 0 {
		c.ReadBuffer = d.ReadBuffer
	}
	return c
}

// Stats counts what the reader saw.
type Stats struct {
	Packets  atomic.Uint64
	Modified atomic.Uint64
	Dropped  atomic.Uint64
	// Marked counts AcceptMark and AcceptMarkHold verdicts.
	Marked atomic.Uint64
	// Repeated counts Repeat verdicts.
	Repeated atomic.Uint64
	// Deferred counts packets whose verdict the Handler left for later
	// (Pending), given with Queue.Verdict.
	Deferred atomic.Uint64
	// VerdictErrors counts verdicts that could not be sent or that the
	// kernel refused.
	VerdictErrors atomic.Uint64
	// Overruns counts ENOBUFS reports: the socket buffer overflowed and
	// the kernel dropped packets it could not queue to us (TCP retransmits
	// them). One report covers every packet lost until the reader caught
	// up; the kernel counts each (queue_user_dropped in
	// /proc/net/netfilter/nfnetlink_queue).
	Overruns atomic.Uint64
	// Malformed counts messages from the kernel that nfq could not read.
	// A packet whose message is unreadable gets no verdict from us: the
	// kernel drops it when the queue is closed.
	Malformed atomic.Uint64
}

// markFor returns the mark a verdict v of a packet queued with mark pmark
// sets, and whether it sets one: the packet's own bits, with Config.Mark's
// for AcceptMark(Hold), with HoldMark's for Repeat and Accept(Mark)Hold, and
// without HoldMark's otherwise.
func (c *Config) markFor(v Verdict, pmark uint32) (uint32, bool) {
	switch v {
	case Repeat, AcceptHold:
		return pmark | c.HoldMark, true
	case AcceptMarkHold:
		return pmark | c.Mark | c.HoldMark, true
	case AcceptMark:
		return pmark&^c.HoldMark | c.Mark, true
	case Accept:
		if pmark&c.HoldMark != 0 {
			return pmark &^ c.HoldMark, true
		}
	}
	return 0, false
}
