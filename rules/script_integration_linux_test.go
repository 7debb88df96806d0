//go:build integration

package rules

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// scriptConfigs are the configurations the script tests run with.
var scriptConfigs = []struct {
	name string
	cfg  func(*Config)
}{
	{name: "defaults", cfg: func(*Config) {}},
	{name: "ipv4 only, two ports, four queues, odd mark", cfg: func(c *Config) {
		c.IPv6, c.Ports, c.Mark, c.Table, c.Queues = false, []uint16{21, 2121}, 0x80000001, "ftp_helper", 4
	}},
}

// nftTable normalises nft text for comparison: comments, blank lines and
// indentation go.
func nftTable(text string) string {
	var keep []string
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "\n")
}

// queueLine matches a rule with nft's queue statement.
var queueLine = regexp.MustCompile(`(?m)^.* queue num .*\n`)

// nftQueueSupported says whether the kernel has nft's own queue expression
// (CONFIG_NFT_QUEUE); Install uses the xt NFQUEUE target, which works
// either way.
func nftQueueSupported(t *testing.T) bool {
	t.Helper()
	ns, _ := newNS(t)
	nsExec(t, ns, "nft", "add table ip probe; add chain ip probe c { type filter hook output priority 0; }")
	out, err := nsCommand(ns, "nft", "add rule ip probe c queue num 0 bypass")
	if err != nil {
		t.Logf("this kernel has no nft queue statement (CONFIG_NFT_QUEUE): %s", out)
		return false
	}
	return true
}

// nsCommand is nsExec for a command that may fail.
func nsCommand(ns string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	return string(out), err
}

// TestScriptIsInstall keeps Script and Install agreeing: the tables Install
// creates, as `nft list table` prints them, are the tables of the script
// (comments aside), and the script loads into the same tables. When this
// fails after a change to Install, change Script (rules/script.go) to match.
func TestScriptIsInstall(t *testing.T) {
	requireRoot(t)
	queue := nftQueueSupported(t)
	for _, tc := range scriptConfigs {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.cfg(&cfg)
			installed, path := newNS(t)
			c := cfg
			c.NetNS, c.Accept = path, false
			if err := newManager(t, c).Install(); err != nil {
				t.Fatalf("Install: %v", err)
			}
			loaded, _ := newNS(t)
			f := t.TempDir() + "/ftpct.nft"
			script := Script(cfg)
			if !queue {
				// Loaded without the queue rules here; they are compared as text above.
				script = queueLine.ReplaceAllString(script, "")
			}
			if err := os.WriteFile(f, []byte(script), 0o600); err != nil {
				t.Fatal(err)
			}
			nsExec(t, loaded, "nft", "-f", f)
			for _, fam := range cfg.families() {
				got := nftTable(nsExec(t, installed, "nft", "list", "table", fam.nft, cfg.Table))
				if diff := cmp.Diff(nftTable(cfg.tableText(fam)), got); diff != "" {
					t.Errorf("table %s %s: Script and Install disagree (-script +install):\n%s", fam.nft, cfg.Table, diff)
				}
				if !queue {
					got = nftTable(queueLine.ReplaceAllString(got+"\n", ""))
				}
				if diff := cmp.Diff(got, nftTable(nsExec(t, loaded, "nft", "list", "table", fam.nft, cfg.Table))); diff != "" {
					t.Errorf("table %s %s: loading the script gives another table than Install (-install +script):\n%s", fam.nft, cfg.Table, diff)
				}
			}
		})
	}
}

// netfilterState is the namespace's whole netfilter configuration as
// `nft list ruleset` and iptables-save print it, without comments and
// counters.
func netfilterState(t *testing.T, ns string) string {
	t.Helper()
	counters := regexp.MustCompile(`\[\d+:\d+\]`)
	var keep []string
	for _, cmd := range [][]string{{"nft", "list", "ruleset"}, {"iptables-save"}, {"ip6tables-save"}} {
		keep = append(keep, "== "+strings.Join(cmd, " "))
		for _, line := range strings.Split(nsExec(t, ns, cmd...), "\n") {
			if line != "" && !strings.HasPrefix(line, "#") {
				keep = append(keep, counters.ReplaceAllString(line, ""))
			}
		}
	}
	return strings.Join(keep, "\n")
}

// TestScriptAsPrinted installs the script as its header says (nft -f, then
// the install commands), checks that the result is what Install puts in
// place, runs the removal commands as printed and checks that nothing is
// left. On a kernel without nft's queue statement `nft -f` must refuse the
// whole file; the tables then come from Install, which TestScriptIsInstall
// shows to be the same, and the commands are still run as printed.
func TestScriptAsPrinted(t *testing.T) {
	requireRoot(t)
	queue := nftQueueSupported(t)
	for _, tc := range scriptConfigs {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.cfg(&cfg)
			script := Script(cfg)
			install := commandsUnder(script, scriptInstallHeading)
			remove := commandsUnder(script, scriptRemoveHeading)
			if len(install) == 0 || len(remove) == 0 {
				t.Fatalf("script without install or remove commands:\n%s", script)
			}

			// The reference: what Install puts in place.
			ref, refPath := newNS(t)
			c := cfg
			c.NetNS = refPath
			if err := newManager(t, c).Install(); err != nil {
				t.Fatalf("Install: %v", err)
			}
			want := netfilterState(t, ref)

			ns, path := newNS(t)
			before := netfilterState(t, ns)
			f := t.TempDir() + "/ftpct.nft"
			if err := os.WriteFile(f, []byte(script), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := nsCommand(ns, "nft", "-f", f)
			switch {
			case err == nil && !queue:
				t.Fatalf("nft -f loaded the script on a kernel without nft queue")
			case err != nil && queue:
				t.Fatalf("nft -f %s: %v\n%s", f, err, out)
			case err != nil:
				if !strings.Contains(out, "queue num") {
					t.Fatalf("nft -f failed for another reason than the queue statement: %s", out)
				}
				if diff := cmp.Diff(before, netfilterState(t, ns)); diff != "" {
					t.Fatalf("a refused nft -f left something behind (-before +after):\n%s", diff)
				}
				t.Logf("no nft queue here: tables from Install instead of nft -f")
				c := cfg
				c.NetNS, c.Accept = path, false
				if err := newManager(t, c).Install(); err != nil {
					t.Fatalf("Install: %v", err)
				}
			}
			for _, cmd := range install {
				nsExec(t, ns, "sh", "-c", cmd)
			}
			if diff := cmp.Diff(want, netfilterState(t, ns)); diff != "" {
				t.Errorf("installed as printed, the state differs from Install's (-install +printed):\n%s", diff)
			}
			for _, cmd := range remove {
				nsExec(t, ns, "sh", "-c", cmd)
			}
			if diff := cmp.Diff(before, netfilterState(t, ns)); diff != "" {
				t.Errorf("removed as printed, the state differs from before (-before +after):\n%s", diff)
			}
		})
	}
}

// TestDeploymentRulesLoad runs the iptables variant and the kernel helper
// lines of every deployment, placeholders filled, and loads its nftables
// variant with nft -f: each in a namespace of its own.
func TestDeploymentRulesLoad(t *testing.T) {
	requireRoot(t)
	values, err := ParseValues("LAN=lan0,WAN=wan0,DMZ=dmz0,PUBLIC=203.0.113.1,SERVER=10.0.2.2,LANNET=10.0.1.0/24,SNATADDR=198.51.100.1")
	if err != nil {
		t.Fatal(err)
	}
	nftHeading := headingNftVariant[strings.LastIndex(headingNftVariant, "\n")+1:]
	for _, d := range Deployments {
		t.Run(d.Name, func(t *testing.T) {
			text := DeploymentRules(DefaultConfig(), d, values)
			ipt, _ := newNS(t)
			var cmds []string
			for _, f := range []family{familyIPv4, familyIPv6} {
				cmds = append(cmds, commandsUnder(text, strings.Replace(headingOperatorRules, "%s", f.iptables, 1))...)
			}
			cmds = append(cmds, commandsUnder(text, headingHelperLine)...)
			for _, cmd := range cmds {
				nsExec(t, ipt, "sh", "-c", cmd)
			}
			nft, _ := newNS(t)
			f := t.TempDir() + "/rules.nft"
			if err := os.WriteFile(f, []byte(strings.Join(commandsUnder(text, nftHeading), "\n")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			nsExec(t, nft, "nft", "-f", f)
			if got := nsExec(t, nft, "nft", "list", "ruleset"); !strings.Contains(got, "ct mark & 0x00100000 == 0x00100000 accept") {
				t.Errorf("nft variant without the ct mark line:\n%s", got)
			}
		})
	}
}
