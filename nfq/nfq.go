package nfq

import (
	"errors"
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
)

func (v Verdict) String() string {
	if v == Drop {
		return "drop"
	}
	return "accept"
}

// Packet is one queued packet.
type Packet struct {
	ID uint32
	// Hook is the netfilter hook it was queued from (NF_INET_PRE_ROUTING=0,
	// LOCAL_IN=1, FORWARD=2, LOCAL_OUT=3, POST_ROUTING=4; include/uapi/linux/netfilter.h).
	Hook uint8
	// Data is the IP datagram, starting at the IP header.
	Data []byte
}

// Handler decides a packet's verdict. A non-nil payload replaces the packet.
type Handler func(p Packet) (Verdict, []byte)

// Config selects and sizes a queue.
type Config struct {
	// Num is the queue number (the NFQUEUE rule's --queue-num).
	Num uint16
	// MaxQueueLen is how many packets the kernel holds for us before it
	// drops (or, with a bypass rule and no reader, passes) new ones.
	MaxQueueLen uint32
	// ReadBuffer is the netlink socket's receive buffer in bytes.
	ReadBuffer int
	// Logger receives the library's own complaints; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns queue 21 sized for bursts of control traffic.
func DefaultConfig() Config {
	return Config{Num: 21, MaxQueueLen: 8192, ReadBuffer: 8 << 20}
}

// Stats counts what the reader saw.
type Stats struct {
	Packets       atomic.Uint64
	Modified      atomic.Uint64
	Dropped       atomic.Uint64
	VerdictErrors atomic.Uint64
	// Overruns counts ENOBUFS: the socket buffer overflowed and the kernel
	// lost verdict-less packets (they are dropped, so TCP retransmits them).
	Overruns atomic.Uint64
}

// Errors returned by Open.
var (
	ErrQueueBusy   = errors.New("NFQUEUE already bound by another process (is another ftpct running?)")
	ErrUnsupported = errors.New("NFQUEUE is only supported on Linux")
)
