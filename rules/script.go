package rules

import (
	"fmt"
	"strconv"
	"strings"
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
)

// acceptRuleSpec is the iptables rule inserted in INPUT and FORWARD.
func (c *Config) acceptRuleSpec() []string {
	m := fmt.Sprintf("0x%08x", c.Mark)
	return []string{"-m", "connmark", "--mark", m + "/" + m, "-m", "comment", "--comment", "ftpct", "-j", "ACCEPT"}
}

// acceptChains are the filter chains that get the accept rule.
var acceptChains = []string{"FORWARD", "INPUT"}

// divertRuleSpecs are iptables raw-table rules equivalent to the divert
// chains Install builds with the xt NFQUEUE target; Script prints them for
// operators because nft's own "queue" statement needs CONFIG_NFT_QUEUE.
func (c *Config) divertRuleSpecs(chain string) [][]string {
	var target []string
	if c.Queues > 1 {
		target = []string{"-j", "NFQUEUE", "--queue-balance", fmt.Sprintf("%d:%d", c.Queue, int(c.Queue)+int(c.Queues)-1), "--queue-bypass"}
	} else {
		target = []string{"-j", "NFQUEUE", "--queue-num", strconv.Itoa(int(c.Queue)), "--queue-bypass"}
	}
	var specs [][]string
	for _, p := range c.Ports {
		for _, dir := range []string{"--dport", "--sport"} {
			spec := []string{}
			if chain == "PREROUTING" {
				spec = append(spec, "!", "-i", "lo")
			}
			spec = append(spec, "-p", "tcp", dir, strconv.Itoa(int(p)), "-m", "comment", "--comment", "ftpct")
			specs = append(specs, append(spec, target...))
		}
	}
	return specs
}

// Script returns the operator-facing equivalent of Install: an `nft -f`
// script for the pinhole tables, with the iptables/ip6tables commands (the
// NFQUEUE diversion and the accept rules) as comments to run by hand. The
// text as a whole is valid `nft -f` input. Install builds the diversion with
// the xt NFQUEUE target inside its own table instead; nft cannot write that
// target, and its native "queue" statement is missing from kernels without
// CONFIG_NFT_QUEUE, so the script uses the iptables raw table, which hooks
// at the same priority (raw, before conntrack).
func Script(cfg Config) string {
	var b strings.Builder
	mark := fmt.Sprintf("0x%08x", cfg.Mark)
	ports := make([]string, len(cfg.Ports))
	for i, p := range cfg.Ports {
		ports[i] = strconv.Itoa(int(p))
	}
	fmt.Fprintf(&b, "#!/usr/sbin/nft -f\n")
	fmt.Fprintf(&b, "# ftpct rules: the equivalent of what `ftpct` installs at start.\n")
	fmt.Fprintf(&b, "# Load with `nft -f FILE`, then run the iptables commands in the comments.\n")
	fmt.Fprintf(&b, "# Remove with `nft delete table ip %s`", cfg.Table)
	if cfg.IPv6 {
		fmt.Fprintf(&b, " and `nft delete table ip6 %s`", cfg.Table)
	}
	fmt.Fprintf(&b, ", and the iptables commands with -D instead of -I.\n")
	for _, f := range cfg.families() {
		key := fmt.Sprintf("%s . %s . inet_service", f.addrType, f.addrType)
		tuple := fmt.Sprintf("%s saddr . %s daddr . tcp dport", f.nft, f.nft)
		fmt.Fprintf(&b, "\n# Reset our own table (and only it): add, delete, define.\n")
		fmt.Fprintf(&b, "table %s %s\ndelete table %s %s\n", f.nft, cfg.Table, f.nft, cfg.Table)
		fmt.Fprintf(&b, "table %s %s {\n", f.nft, cfg.Table)
		fmt.Fprintf(&b, "\t# FTP control ports whose packets ftpct inspects.\n")
		fmt.Fprintf(&b, "\tset ports {\n\t\ttype inet_service\n\t\telements = { %s }\n\t}\n\n", strings.Join(ports, ", "))
		fmt.Fprintf(&b, "\t# One-shot holes: peer . address . port, added per expected data connection.\n")
		fmt.Fprintf(&b, "\tset expect {\n\t\ttype %s\n\t\tflags timeout\n\t}\n\n", key)
		fmt.Fprintf(&b, "\t# Where to DNAT a data connection that used a hole.\n")
		fmt.Fprintf(&b, "\tmap xlate {\n\t\ttype %s : %s . inet_service\n\t\tflags timeout\n\t}\n\n", key, f.addrType)
		for _, c := range []struct{ name, hook string }{{"pinhole_pre", "prerouting"}, {"pinhole_out", "output"}} {
			fmt.Fprintf(&b, "\tchain %s {\n\t\ttype filter hook %s priority %d; policy accept;\n", c.name, c.hook, prioMangle)
			fmt.Fprintf(&b, "\t\tct state new %s @expect delete @expect { %s } ct mark set ct mark or %s\n\t}\n\n", tuple, tuple, mark)
		}
		fmt.Fprintf(&b, "\tchain xlate_pre {\n\t\ttype nat hook prerouting priority %d; policy accept;\n", prioNAT)
		fmt.Fprintf(&b, "\t\tct mark and %s == %s dnat %s to %s map @xlate\n\t}\n}\n", mark, mark, f.nft, tuple)

		fmt.Fprintf(&b, "\n# Divert FTP control packets to NFQUEUE before conntrack (raw table):\n")
		for _, chain := range []string{"PREROUTING", "OUTPUT"} {
			for _, spec := range cfg.divertRuleSpecs(chain) {
				fmt.Fprintf(&b, "#   %s -t raw -I %s 1 %s\n", f.iptables, chain, strings.Join(spec, " "))
			}
		}
		fmt.Fprintf(&b, "# Accept the data connections that used a hole:\n")
		for _, chain := range acceptChains {
			fmt.Fprintf(&b, "#   %s -I %s 1 %s\n", f.iptables, chain, strings.Join(cfg.acceptRuleSpec(), " "))
		}
	}
	return b.String()
}
