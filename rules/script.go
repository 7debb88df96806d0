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

// A Deployment is one place the kernel's FTP helper serves and ftpct
// replaces it, with the operator's own firewall rules around it (README.md,
// "Deployments"). ftpct itself runs the same way in all of them.
type Deployment struct {
	Name  string
	Title string
	// Where says on which host ftpct (or the kernel helper) runs.
	Where string
	// rules writes the operator's rules for one family: iptables lines
	// (without the binary name) and an nft ruleset.
	rules func(cfg Config, f family) (ipt []string, nft string)
	// helperChain is the raw chain of the kernel helper line ftpct replaces.
	helperChain string
	// ipv4Only: NAT deployments are documented for IPv4.
	ipv4Only bool
}

// Deployments are the documented deployments, in README order.
var Deployments = []Deployment{
	{Name: "gateway", Title: "masquerading gateway (LAN clients, any servers)", Where: "the gateway",
		helperChain: "PREROUTING", ipv4Only: true,
		rules: forwardRules{from: "LAN", postIpt: "-o WAN -j MASQUERADE", postNft: `oifname "WAN" masquerade`}.rules},
	{Name: "serverhost", Title: "the FTP server host protects itself (INPUT policy DROP)", Where: "the server host",
		helperChain: "PREROUTING", rules: hostRules(true)},
	{Name: "clienthost", Title: "the client host protects itself (INPUT policy DROP)", Where: "the client host",
		helperChain: "OUTPUT", rules: hostRules(false)},
	{Name: "routed", Title: "routed firewall without NAT (FORWARD policy DROP)", Where: "the firewall",
		helperChain: "PREROUTING", rules: forwardRules{from: "LAN"}.rules},
	{Name: "dnat", Title: "server behind a port-forwarding gateway (DNAT PUBLIC:port to SERVER)", Where: "the gateway",
		helperChain: "PREROUTING", ipv4Only: true,
		rules: forwardRules{from: "WAN", to: "SERVER", dnat: "WAN", postIpt: "-o WAN -j MASQUERADE", postNft: `oifname "WAN" masquerade`}.rules},
	{Name: "doublenat", Title: "both ends translated: masqueraded LAN clients reach a DNAT'd server", Where: "the gateway",
		helperChain: "PREROUTING", ipv4Only: true,
		rules: forwardRules{from: "LAN", to: "SERVER", dnat: "LAN",
			postIpt: "-o DMZ -s LANNET -j SNAT --to-source SNATADDR", postNft: `oifname "DMZ" ip saddr LANNET snat to SNATADDR`}.rules},
}

// deploymentAliases are other names operators (and lab.sh topologies) use.
var deploymentAliases = map[string]string{
	"masq": "gateway", "masquerade": "gateway", "routed6": "routed", "serverhost6": "serverhost",
}

// DeploymentNames lists the accepted names.
func DeploymentNames() []string {
	names := make([]string, len(Deployments))
	for i, d := range Deployments {
		names[i] = d.Name
	}
	return names
}

// LookupDeployment finds a deployment by name or alias.
func LookupDeployment(name string) (Deployment, error) {
	if a, ok := deploymentAliases[name]; ok {
		name = a
	}
	for _, d := range Deployments {
		if d.Name == name {
			return d, nil
		}
	}
	return Deployment{}, fmt.Errorf("%w: unknown deployment %q (want one of %s)", ErrInvalidConfig, name, strings.Join(DeploymentNames(), ", "))
}

func (c *Config) portSet() string {
	p := make([]string, len(c.Ports))
	for i, v := range c.Ports {
		p[i] = strconv.Itoa(int(v))
	}
	if len(p) == 1 {
		return p[0]
	}
	return "{ " + strings.Join(p, ", ") + " }"
}

func (c *Config) markAccept() string {
	return fmt.Sprintf("ct mark & 0x%08x == 0x%08x accept", c.Mark, c.Mark)
}

func perPort(cfg Config, format string) []string {
	var out []string
	for _, p := range cfg.Ports {
		out = append(out, fmt.Sprintf(format, p))
	}
	return out
}

func hostRules(server bool) func(Config, family) ([]string, string) {
	return func(cfg Config, f family) ([]string, string) {
		ipt := []string{"-P INPUT DROP", "-A INPUT -i lo -j ACCEPT", "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"}
		icmp := ""
		if f.nft == "ip6" {
			ipt = append(ipt, "-A INPUT -p ipv6-icmp -j ACCEPT")
			icmp = "\n\t\tmeta l4proto ipv6-icmp accept"
		}
		ctl := ""
		if server {
			ipt = append(ipt, perPort(cfg, "-A INPUT -p tcp --dport %d -j ACCEPT")...)
			ctl = fmt.Sprintf("\n\t\ttcp dport %s accept", cfg.portSet())
		}
		nft := fmt.Sprintf(`table %s filter {
	chain input {
		type filter hook input priority filter; policy drop;
		iif lo accept
		ct state established,related accept
		%s%s%s
	}
}`, f.nft, cfg.markAccept(), icmp, ctl)
		return ipt, nft
	}
}

// forwardRules are the operator's rules of a deployment whose firewall
// forwards the control connections: FORWARD policy drop, established
// connections and ftpct's data connections accepted, new control connections
// accepted when they come in on one interface (to one address), and NAT.
type forwardRules struct {
	from string // interface new control connections come in on
	to   string // their destination address after DNAT, or ""
	dnat string // interface on which PUBLIC:port is DNATed to SERVER, or ""
	// postIpt, postNft: the source NAT, iptables and nft forms, or "".
	postIpt, postNft string
}

func (r forwardRules) rules(cfg Config, f family) ([]string, string) {
	var ipt []string
	if r.dnat != "" {
		ipt = perPort(cfg, "-t nat -A PREROUTING -i "+r.dnat+" -d PUBLIC -p tcp --dport %d -j DNAT --to-destination SERVER")
	}
	ipt = append(ipt, "-P FORWARD DROP", "-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT")
	iptTo, nftTo := "", ""
	if r.to != "" {
		iptTo, nftTo = " -d "+r.to, " ip daddr "+r.to
	}
	ipt = append(ipt, perPort(cfg, "-A FORWARD -i "+r.from+iptTo+" -p tcp --dport %d -m conntrack --ctstate NEW -j ACCEPT")...)
	if r.postIpt != "" {
		ipt = append(ipt, "-t nat -A POSTROUTING "+r.postIpt)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `table %s filter {
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		%s
		iifname %q%s tcp dport %s ct state new accept
	}
}`, f.nft, cfg.markAccept(), r.from, nftTo, cfg.portSet())
	if r.dnat == "" && r.postNft == "" {
		return ipt, b.String()
	}
	b.WriteString("\ntable ip nat {")
	if r.dnat != "" {
		fmt.Fprintf(&b, `
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		iifname %q ip daddr PUBLIC tcp dport %s dnat to SERVER
	}`, r.dnat, cfg.portSet())
	}
	if r.postNft != "" {
		fmt.Fprintf(&b, `
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		%s
	}`, r.postNft)
	}
	b.WriteString("\n}")
	return ipt, b.String()
}

// DeploymentScript is Script preceded, as comments, by the operator's own
// rules for deployment d (iptables and nftables variants, with placeholders
// in capitals: LAN, WAN, DMZ interfaces; PUBLIC, SERVER, LANNET, SNATADDR
// addresses) and the kernel helper line ftpct replaces. The text stays valid
// `nft -f` input.
func DeploymentScript(cfg Config, d Deployment) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Deployment %q: %s.\n# ftpct runs on %s: `ftpct run", d.Name, d.Title, d.Where)
	if len(cfg.Ports) != 1 || cfg.Ports[0] != 21 {
		ports := make([]string, len(cfg.Ports))
		for i, p := range cfg.Ports {
			ports[i] = strconv.Itoa(int(p))
		}
		fmt.Fprintf(&b, " --ports %s", strings.Join(ports, ","))
	}
	fmt.Fprintf(&b, "`, nothing else.\n#\n")
	for _, f := range cfg.families() {
		if d.ipv4Only && f.nft != "ip" {
			continue
		}
		ipt, nft := d.rules(cfg, f)
		fmt.Fprintf(&b, "# The operator's rules, %s variant:\n", f.iptables)
		for _, r := range ipt {
			fmt.Fprintf(&b, "#   %s %s\n", f.iptables, r)
		}
		fmt.Fprintf(&b, "# The kernel helper line ftpct replaces (drop it):\n")
		for _, p := range cfg.Ports {
			fmt.Fprintf(&b, "#   %s -t raw -A %s -p tcp --dport %d -j CT --helper ftp\n", f.iptables, d.helperChain, p)
		}
		fmt.Fprintf(&b, "# nftables variant (ftpct's iptables accept rule does not reach a native nft\n# filter chain, hence the ct mark line):\n")
		for _, line := range strings.Split(nft, "\n") {
			fmt.Fprintf(&b, "#   %s\n", line)
		}
		fmt.Fprintf(&b, "#\n")
	}
	b.WriteString(Script(cfg))
	return b.String()
}
