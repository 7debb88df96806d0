package rules

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

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

// A placeholder stands, in capitals, for one of the operator's interfaces
// or addresses in the deployment rules.
type placeholder struct {
	name  string
	kind  placeholderKind
	means string
}

// placeholderKind says what value a placeholder takes.
type placeholderKind int

const (
	placeholderIface  placeholderKind = iota // a network interface name
	placeholderAddr                          // an IPv4 address
	placeholderPrefix                        // an IPv4 prefix
)

var placeholderKindNames = [...]string{
	placeholderIface:  "interface",
	placeholderAddr:   "IPv4 address",
	placeholderPrefix: "IPv4 prefix",
}

func (k placeholderKind) String() string {
	if uint(k) < uint(len(placeholderKindNames)) {
		return placeholderKindNames[k]
	}
	return "placeholderKind(" + strconv.Itoa(int(k)) + ")"
}

// placeholders are every placeholder the deployment rules use.
var placeholders = []placeholder{
	{"LAN", placeholderIface, "interface of the clients' network"},
	{"WAN", placeholderIface, "interface of the outside (public) network"},
	{"DMZ", placeholderIface, "interface of the servers' private network"},
	{"PUBLIC", placeholderAddr, "public address clients connect to"},
	{"SERVER", placeholderAddr, "the server's private address"},
	{"LANNET", placeholderPrefix, "the clients' network"},
	{"SNATADDR", placeholderAddr, "address the clients are translated to"},
}

// PlaceholderNames lists the placeholders of the deployment rules.
func PlaceholderNames() []string {
	names := make([]string, len(placeholders))
	for i, p := range placeholders {
		names[i] = p.name
	}
	return names
}

// placeholderWord matches a placeholder as a whole word (LAN, not the start
// of LANNET).
var placeholderWord = regexp.MustCompile(`\b(` + strings.Join(PlaceholderNames(), "|") + `)\b`)

// Values fill the placeholders of deployment rules: placeholder name to
// the operator's interface or address. Build it with ParseValues.
type Values map[string]string

// ParseValues parses "NAME=VALUE,NAME=VALUE" (as `ftpct rules --set`
// takes it). Every NAME must be a placeholder, given once; interface values
// must be valid interface names, address values IPv4 addresses, LANNET an
// IPv4 prefix. Errors wrap ErrInvalidConfig.
func ParseValues(s string) (Values, error) {
	v := Values{}
	if s == "" {
		return v, nil
	}
	for _, kv := range strings.Split(s, ",") {
		name, val, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("%w: %q: want NAME=VALUE", ErrInvalidConfig, kv)
		}
		i := slices.IndexFunc(placeholders, func(p placeholder) bool { return p.name == name })
		if i < 0 {
			return nil, fmt.Errorf("%w: unknown placeholder %q (want one of %s)", ErrInvalidConfig, name, strings.Join(PlaceholderNames(), ", "))
		}
		if _, dup := v[name]; dup {
			return nil, fmt.Errorf("%w: placeholder %s given twice", ErrInvalidConfig, name)
		}
		if err := placeholders[i].check(val); err != nil {
			return nil, fmt.Errorf("%w: %s=%q: %v", ErrInvalidConfig, name, val, err)
		}
		v[name] = val
	}
	return v, nil
}

func (p placeholder) check(val string) error {
	switch p.kind {
	case placeholderIface:
		// dev_valid_name in net/core/dev.c, and nothing nft or a shell
		// would read as syntax.
		if val == "" || len(val) >= ifNameLen || val == "." || val == ".." {
			return fmt.Errorf("want an interface name of 1 to %d bytes", ifNameLen-1)
		}
		for _, r := range val {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-@", r)) {
				return fmt.Errorf("interface name with %q (want letters, digits, '.', '_', '-', '@')", r)
			}
		}
		return nil
	case placeholderAddr:
		a, err := netip.ParseAddr(val)
		if err != nil || !a.Is4() {
			return fmt.Errorf("want an IPv4 address")
		}
		return nil
	case placeholderPrefix:
		pf, err := netip.ParsePrefix(val)
		if err != nil || !pf.Addr().Is4() || pf.Masked() != pf {
			return fmt.Errorf("want an IPv4 prefix such as 10.0.1.0/24")
		}
		return nil
	}
	return fmt.Errorf("placeholder of kind %v", p.kind)
}

// ifNameLen is IFNAMSIZ (include/uapi/linux/if.h), the terminating NUL
// included.
const ifNameLen = 16

// fill replaces the placeholders that v has a value for.
func (v Values) fill(s string) string {
	if len(v) == 0 {
		return s
	}
	return placeholderWord.ReplaceAllStringFunc(s, func(name string) string {
		if val, ok := v[name]; ok {
			return val
		}
		return name
	})
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

// Headings of the sections of DeploymentRules. Each section is a list of
// lines "#   LINE"; lab/lab.sh runs the commands under the first two.
const (
	headingOperatorRules = "# The operator's rules, %s variant:" // %s: iptables, ip6tables
	headingHelperLine    = "# The kernel helper line ftpct replaces (drop it):"
	headingNftVariant    = "# nftables variant (ftpct's iptables accept rule does not reach a native nft\n# filter chain, hence the ct mark line):"
)

// DeploymentRules returns, as comments, the operator's own rules for
// deployment d (iptables and nftables variants) and the kernel helper line
// ftpct replaces, for the control ports of cfg. Placeholders in capitals
// (LAN, WAN, DMZ interfaces; PUBLIC, SERVER, LANNET, SNATADDR addresses)
// are replaced by the values v has for them. ftpct's own rules are not part
// of it: `ftpct run` installs them, and Script prints them.
func DeploymentRules(cfg Config, d Deployment, v Values) string {
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
		fmt.Fprintf(&b, headingOperatorRules+"\n", f.iptables)
		for _, r := range ipt {
			fmt.Fprintf(&b, "#   %s %s\n", f.iptables, v.fill(r))
		}
		fmt.Fprintf(&b, "%s\n", headingHelperLine)
		for _, p := range cfg.Ports {
			fmt.Fprintf(&b, "#   %s -t raw -A %s -p tcp --dport %d -j CT --helper ftp\n", f.iptables, d.helperChain, p)
		}
		fmt.Fprintf(&b, "%s\n", headingNftVariant)
		for _, line := range strings.Split(v.fill(nft), "\n") {
			fmt.Fprintf(&b, "#   %s\n", line)
		}
		fmt.Fprintf(&b, "#\n")
	}
	fmt.Fprintf(&b, "# ftpct's own rules: `ftpct run` installs them at start, `ftpct rules` prints them.\n")
	return b.String()
}
