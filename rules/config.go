package rules

import (
	"fmt"
	"slices"
)

// Config says what the Manager installs. Build one with DefaultConfig and
// change fields; New rejects a Config that fails Validate.
type Config struct {
	// Ports are the FTP control ports whose packets are diverted to NFQUEUE.
	Ports []uint16
	// Queue is the first NFQUEUE number.
	Queue uint16
	// Queues is the number of queues (Queue .. Queue+Queues-1). With more
	// than one, the kernel balances by flow hash (xt NFQUEUE v3
	// queues_total, CPU fanout off), so one flow always hits one queue.
	Queues uint16
	// Mark is the conntrack mark bit(s) set on data connections that used
	// a hole. The accept rules and the DNAT rule match mark&Mark == Mark.
	Mark uint32
	// HoldMark is the packet mark bit(s) with which ftpct holds a flow in
	// the packet path, without an nftables commit: the divert chains add
	// the flow of a packet carrying them to the hold set, and the guard
	// chains, at the packet's last hook, its reverse flow, and clear them.
	// Nothing else may set them; they must not overlap Mark.
	HoldMark uint32
	// Table is the nftables table name, created in family ip and ip6.
	Table string
	// IPv6 also installs the ip6 table and the ip6tables accept rules.
	IPv6 bool
	// Accept inserts the iptables/ip6tables accept rules for marked
	// connections in INPUT and FORWARD.
	Accept bool
	// NetNS, if not empty, is the path of a network namespace
	// (e.g. /run/netns/lab) in which all rules are installed: the nftables
	// socket is opened there and the iptables binary runs there. Empty
	// means the caller's namespace. Used by the lab and the tests.
	NetNS string
}

// DefaultConfig returns the configuration the daemon uses unless told
// otherwise.
func DefaultConfig() Config {
	return Config{
		Ports:    []uint16{21},
		Queue:    21,
		Queues:   1,
		Mark:     0x00100000,
		HoldMark: 0x00200000,
		Table:    "ftpct",
		IPv6:     true,
		Accept:   true,
	}
}

// nftKeywords are words the nft parser reserves that must not be used as a
// bare table name in a script (the ones an operator might plausibly pick).
var nftKeywords = []string{
	"add", "chain", "counter", "ct", "delete", "dnat", "drop", "flush",
	"inet", "ip", "ip6", "list", "map", "mark", "masquerade", "meta",
	"queue", "redirect", "reject", "return", "rule", "set", "snat",
	"table", "tcp", "udp",
}

// Validate reports the first problem with c, wrapped in ErrInvalidConfig.
// It does not fill defaults.
func (c *Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, a...))
	}
	if len(c.Ports) == 0 {
		return bad("no control ports")
	}
	seen := make(map[uint16]bool, len(c.Ports))
	for _, p := range c.Ports {
		if p == 0 {
			return bad("control port 0")
		}
		if seen[p] {
			return bad("duplicate control port %d", p)
		}
		seen[p] = true
	}
	if c.Queues == 0 {
		return bad("queues must be at least 1")
	}
	if int(c.Queue)+int(c.Queues)-1 > 0xffff {
		return bad("queues %d..%d exceed 65535", c.Queue, int(c.Queue)+int(c.Queues)-1)
	}
	if c.Mark == 0 {
		return bad("mark must not be 0")
	}
	if c.HoldMark == 0 {
		return bad("hold-mark must not be 0")
	}
	if c.Mark&c.HoldMark != 0 {
		return bad("hold-mark %#08x overlaps mark %#08x", c.HoldMark, c.Mark)
	}
	if err := validTableName(c.Table); err != nil {
		return bad("%v", err)
	}
	return nil
}

// validTableName accepts what nft accepts as a bare identifier and what fits
// NFT_TABLE_MAXNAMELEN (256, include/uapi/linux/netfilter/nf_tables.h); we
// keep names short and boring.
func validTableName(name string) error {
	if name == "" {
		return fmt.Errorf("empty table name")
	}
	if len(name) > 32 {
		return fmt.Errorf("table name %q longer than 32 bytes", name)
	}
	for i, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && (r >= '0' && r <= '9' || r == '_' || r == '-'):
		default:
			return fmt.Errorf("table name %q: want a letter followed by letters, digits, '_' or '-'", name)
		}
	}
	if slices.Contains(nftKeywords, name) {
		return fmt.Errorf("table name %q is an nft keyword", name)
	}
	return nil
}
