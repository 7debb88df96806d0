package rules

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// family describes what differs between the ip and the ip6 table.
type family struct {
	nft      string // nft family keyword and payload protocol: "ip", "ip6"
	addrType string // nft address type name
	iptables string // binary name
}

var (
	familyIPv4 = family{nft: "ip", addrType: "ipv4_addr", iptables: "iptables"}
	familyIPv6 = family{nft: "ip6", addrType: "ipv6_addr", iptables: "ip6tables"}
)

// index numbers the family for the Manager's ledger: 0 IPv4, 1 IPv6.
func (f family) index() uint8 {
	if f == familyIPv6 {
		return 1
	}
	return 0
}

func (c *Config) families() []family {
	if c.IPv6 {
		return []family{familyIPv4, familyIPv6}
	}
	return []family{familyIPv4}
}

// Chain priorities (enum nf_ip_hook_priorities in
// include/uapi/linux/netfilter_ipv4.h; the ip6 values are identical).
const (
	prioRaw    = -300 // NF_IP_PRI_RAW: before conntrack (NF_IP_PRI_CONNTRACK = -200)
	prioMangle = -150 // NF_IP_PRI_MANGLE
	prioNAT    = -101 // NF_IP_PRI_NAT_DST - 1: before iptables-nft's nat PREROUTING
	prioGuard  = 300  // after NF_IP_PRI_NAT_SRC (100) and NF_IP_PRI_SECURITY (50)
)

// GuardTimeout is how long a guard element lives after the last
// announcement sent to its address: far longer than a hole commit takes.
const GuardTimeout = 5 * time.Second

// expectSetSize is the size of the expect set: what nft gives a dynamic set
// without a size, so that a table loaded from Script lists the same.
const expectSetSize = 65535

// holdSetSize is the size of the hold set, which the packet path adds to:
// both flows of as many control connections as --max-sessions allows at
// most (1<<24).
const holdSetSize = 2 << 24

// prioName is a chain priority as `nft list` prints it.
func prioName(prio int) string {
	switch prio {
	case prioRaw:
		return "raw"
	case prioMangle:
		return "mangle"
	case prioNAT:
		return "dstnat - 1"
	}
	return strconv.Itoa(prio)
}

// acceptRuleSpec is the iptables rule inserted in INPUT and FORWARD.
func (c *Config) acceptRuleSpec() []string {
	m := fmt.Sprintf("0x%08x", c.Mark)
	return []string{"-m", "connmark", "--mark", m + "/" + m, "-m", "comment", "--comment", "ftpct", "-j", "ACCEPT"}
}

// acceptChains are the filter chains that get the accept rule.
var acceptChains = []string{"FORWARD", "INPUT"}

// queueStatement is the NFQUEUE target of the divert rules as `nft list`
// prints it.
func (c *Config) queueStatement(bypass bool) string {
	s := fmt.Sprintf("queue num %d", c.Queue)
	if c.Queues > 1 {
		s = fmt.Sprintf("queue num %d-%d", c.Queue, int(c.Queue)+int(c.Queues)-1)
	}
	if bypass {
		s += " bypass"
	}
	return s
}

// Headings of the command lists in Script's header.
const (
	scriptInstallHeading = "# Install: load this file with `nft -f FILE`, then run:"
	scriptRemoveHeading  = "# Remove:"
)

// Script returns what Install puts in place, for operators who run ftpct
// with --no-install-rules: an `nft -f` script that defines ftpct's tables
// exactly as `nft list table` prints them after Install, preceded by
// comments with the iptables commands that add the accept rules and with
// the commands that remove everything again. Each command line is a comment
// "#   COMMAND" under scriptInstallHeading or scriptRemoveHeading and works
// as printed.
//
// Install builds the divert rules with the xt NFQUEUE target, which nft
// cannot write and lists as the "queue" statement printed here; loading the
// script creates nft's own queue expression instead, which does the same
// but needs a kernel with CONFIG_NFT_QUEUE. The header says so.
func Script(cfg Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#!/usr/sbin/nft -f\n")
	fmt.Fprintf(&b, "# What `ftpct run` installs at start (and leaves in place at exit), for running\n")
	fmt.Fprintf(&b, "# it with --no-install-rules. The divert chains need nft's queue statement (kernel\n")
	fmt.Fprintf(&b, "# CONFIG_NFT_QUEUE); where it is missing `nft -f` loads nothing, and only\n")
	fmt.Fprintf(&b, "# `ftpct run` can install these rules (with the xt NFQUEUE target).\n")
	fmt.Fprintf(&b, "#\n%s\n", scriptInstallHeading)
	spec := strings.Join(cfg.acceptRuleSpec(), " ")
	for _, f := range cfg.families() {
		for _, chain := range acceptChains {
			fmt.Fprintf(&b, "#   %s -I %s 1 %s\n", f.iptables, chain, spec)
		}
	}
	fmt.Fprintf(&b, "%s\n", scriptRemoveHeading)
	for _, f := range cfg.families() {
		fmt.Fprintf(&b, "#   nft delete table %s %s\n", f.nft, cfg.Table)
	}
	for _, f := range cfg.families() {
		for _, chain := range acceptChains {
			fmt.Fprintf(&b, "#   %s -D %s %s\n", f.iptables, chain, spec)
		}
	}
	for _, f := range cfg.families() {
		fmt.Fprintf(&b, "\n# Reset our own table (and only it): add, delete, define.\n")
		fmt.Fprintf(&b, "table %s %s\ndelete table %s %s\n", f.nft, cfg.Table, f.nft, cfg.Table)
		b.WriteString(cfg.tableText(f))
	}
	return b.String()
}

// divertRuleTexts are the rules divertRules (nftobj_linux.go) builds, as
// `nft list` prints them.
func (c *Config) divertRuleTexts(f family, skipLoopback bool) []string {
	var rules []string
	if skipLoopback {
		rules = append(rules, `iifname "lo" return`)
	}
	hold := fmt.Sprintf("0x%08x", c.HoldMark)
	return append(rules,
		fmt.Sprintf("meta mark & %s == %s add @hold { %s saddr . %s daddr . tcp sport . tcp dport }", hold, hold, f.nft, f.nft),
		fmt.Sprintf("tcp flags syn / fin,syn,rst,ack %s saddr @guard %s", f.nft, c.queueStatement(true)),
		fmt.Sprintf("%s saddr . %s daddr . tcp sport . tcp dport @hold %s", f.nft, f.nft, c.queueStatement(false)),
		"tcp dport @ports tcp flags ! fin,syn,rst jump bare_ack", "tcp sport @ports tcp flags ! fin,syn,rst jump bare_ack",
		"tcp dport @ports "+c.queueStatement(true), "tcp sport @ports "+c.queueStatement(true))
}

// bareRuleTexts are the rules bareRules (nftobj_linux.go) builds, as `nft
// list` prints them: for each TCP data offset d, return when the byte after
// the header (at bit 32*d) exists; accept what is left.
func bareRuleTexts() []string {
	var rules []string
	for d := 5; d <= 15; d++ {
		rules = append(rules, fmt.Sprintf("tcp doff %d @th,%d,8 & 0x0 == 0x0 return", d, 32*d))
	}
	return append(rules, "accept")
}

// tableText is ftpct's table of one family as `nft list table` prints it
// after Install, with comments.
func (c *Config) tableText(f family) string {
	var b strings.Builder
	ports := make([]string, len(c.Ports))
	for i, p := range c.Ports {
		ports[i] = strconv.Itoa(int(p))
	}
	mark := fmt.Sprintf("0x%08x", c.Mark)
	key := fmt.Sprintf("%s . %s . inet_service", f.addrType, f.addrType)
	tuple := fmt.Sprintf("%s saddr . %s daddr . tcp dport", f.nft, f.nft)
	chain := func(name, typ, hook string, prio int, rules ...string) {
		fmt.Fprintf(&b, "\tchain %s {\n\t\ttype %s hook %s priority %s; policy accept;\n", name, typ, hook, prioName(prio))
		for _, r := range rules {
			fmt.Fprintf(&b, "\t\t%s\n", r)
		}
		fmt.Fprintf(&b, "\t}\n")
	}
	pinhole := fmt.Sprintf("ct state new %s @expect delete @expect { %s } ct mark set ct mark | %s", tuple, tuple, mark)

	fmt.Fprintf(&b, "table %s %s {\n", f.nft, c.Table)
	fmt.Fprintf(&b, "\t# FTP control ports: their packets go to ftpct (divert_pre, divert_out).\n")
	fmt.Fprintf(&b, "\tset ports {\n\t\ttype inet_service\n\t\telements = { %s }\n\t}\n", strings.Join(ports, ", "))
	fmt.Fprintf(&b, "\n\t# One-shot holes ftpct adds: peer . address . port of an expected data connection.\n")
	fmt.Fprintf(&b, "\tset expect {\n\t\ttype %s\n\t\tsize %d\n\t\tflags dynamic,timeout\n\t}\n", key, expectSetSize)
	fmt.Fprintf(&b, "\n\t# Where to DNAT a data connection that used a hole.\n")
	fmt.Fprintf(&b, "\tmap xlate {\n\t\ttype %s : %s . inet_service\n\t\tflags timeout\n\t}\n", key, f.addrType)
	fmt.Fprintf(&b, "\n\t# Control connections whose stream ftpct resized: saddr . daddr . sport . dport.\n")
	fmt.Fprintf(&b, "\t# ftpct adds them, or the hold-mark rules do (divert_*, guard_*).\n")
	fmt.Fprintf(&b, "\tset hold {\n\t\ttype %s . %s . inet_service . inet_service\n\t\tsize %d\n\t\tflags dynamic\n\t}\n", f.addrType, f.addrType, holdSetSize)
	fmt.Fprintf(&b, "\n\t# Peers just sent an announcement whose hole may not be committed yet (guard_post,\n")
	fmt.Fprintf(&b, "\t# guard_in): their first SYNs go to ftpct, which holds them until it is.\n")
	fmt.Fprintf(&b, "\tset guard {\n\t\ttype %s\n\t\tsize %d\n\t\tflags dynamic,timeout\n\t}\n", f.addrType, expectSetSize)
	fmt.Fprintf(&b, "\n\t# Never runs: while a rule sets ct labels, new conntrack entries get room\n")
	fmt.Fprintf(&b, "\t# for labels, where ftpct keeps a resized connection's state.\n")
	fmt.Fprintf(&b, "\tchain keep_labels {\n\t\tct label set 127\n\t}\n")
	fmt.Fprintf(&b, "\n\t# Reached by control packets without SYN, FIN or RST of flows not held: one\n")
	fmt.Fprintf(&b, "\t# with payload returns to be queued; a bare ACK needs nothing from ftpct.\n")
	fmt.Fprintf(&b, "\tchain bare_ack {\n")
	for _, r := range bareRuleTexts() {
		fmt.Fprintf(&b, "\t\t%s\n", r)
	}
	fmt.Fprintf(&b, "\t}\n")
	fmt.Fprintf(&b, "\n\t# Control packets to NFQUEUE before conntrack, local ones once, in output.\n")
	fmt.Fprintf(&b, "\t# Bypass: they flow when ftpct does not run; held ones wait for it.\n")
	chain("divert_pre", "filter", "prerouting", prioRaw, c.divertRuleTexts(f, true)...)
	b.WriteString("\n")
	chain("divert_out", "filter", "output", prioRaw, c.divertRuleTexts(f, false)...)
	fmt.Fprintf(&b, "\n\t# A new connection that matches a hole uses it up and gets ftpct's mark.\n")
	chain("pinhole_pre", "filter", "prerouting", prioMangle, pinhole)
	b.WriteString("\n")
	chain("pinhole_out", "filter", "output", prioMangle, pinhole)
	fmt.Fprintf(&b, "\n\t# A marked connection with a translation is DNATed.\n")
	chain("xlate_pre", "nat", "prerouting", prioNAT,
		fmt.Sprintf("ct mark & %s == %s dnat %s to %s map @xlate", mark, mark, f.nft, tuple))
	guard := fmt.Sprintf("meta mark & %s == %s update @guard { %s daddr timeout %s } meta mark set meta mark & 0x%08x",
		mark, mark, f.nft, GuardTimeout, ^c.Mark)
	hold := fmt.Sprintf("0x%08x", c.HoldMark)
	reverse := fmt.Sprintf("meta mark & %s == %s add @hold { %s daddr . %s saddr . tcp dport . tcp sport } meta mark set meta mark & 0x%08x",
		hold, hold, f.nft, f.nft, ^c.HoldMark)
	fmt.Fprintf(&b, "\n\t# A packet ftpct marked (its announcement's hole may not be committed yet), at\n")
	fmt.Fprintf(&b, "\t# its last hook, after NAT: its destination joins @guard, the mark bit is cleared.\n")
	fmt.Fprintf(&b, "\t# One with the hold mark (a session's first resize): its reverse flow is held.\n")
	chain("guard_post", "filter", "postrouting", prioGuard, guard, reverse)
	b.WriteString("\n")
	chain("guard_in", "filter", "input", prioGuard, guard, reverse)
	fmt.Fprintf(&b, "}\n")
	return b.String()
}
