package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/ftpct/ftpct/rules"
	"github.com/google/go-cmp/cmp"
)

func TestRulesCommand(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string
		notStdout  []string
		wantStderr string
	}{
		{name: "script by default", args: []string{"rules"},
			wantStdout: []string{"table ip ftpct {", "chain divert_pre {", "#   nft delete table ip6 ftpct"},
			notStdout:  []string{"Deployment"}},
		{name: "deployment without the script", args: []string{"rules", "--deployment", "gateway"},
			wantStdout: []string{"-o WAN -j MASQUERADE", "`ftpct rules` prints them"},
			notStdout:  []string{"table ip ftpct"}},
		{name: "placeholders filled", args: []string{"rules", "--deployment", "dnat", "--set", "WAN=eth0,PUBLIC=192.0.2.1,SERVER=10.0.2.2"},
			wantStdout: []string{"#   iptables -t nat -A PREROUTING -i eth0 -d 192.0.2.1 -p tcp --dport 21 -j DNAT --to-destination 10.0.2.2",
				`iifname "eth0" ip daddr 192.0.2.1 tcp dport 21 dnat to 10.0.2.2`},
			notStdout: []string{"-i WAN", "PUBLIC -p"}},
		{name: "set without deployment", args: []string{"rules", "--set", "LAN=eth0"}, wantCode: 2,
			wantStderr: "--set needs --deployment"},
		{name: "unknown placeholder", args: []string{"rules", "--deployment", "gateway", "--set", "LAM=eth0"}, wantCode: 2,
			wantStderr: `unknown placeholder "LAM"`},
		{name: "bad address", args: []string{"rules", "--deployment", "dnat", "--set", "SERVER=server"}, wantCode: 2,
			wantStderr: "want an IPv4 address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, &stdout, &stderr); code != tt.wantCode {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.wantCode, stderr.String())
			}
			for _, w := range tt.wantStdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			for _, w := range tt.notStdout {
				if strings.Contains(stdout.String(), w) {
					t.Errorf("stdout has %q:\n%s", w, stdout.String())
				}
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}

// generatedBlock is a README.md block that holds the output of the command
// its opening marker names.
var generatedBlock = regexp.MustCompile("(?s)<!-- generated: (ftpct [^\n]*?) -->\n(.*?)<!-- end generated -->")

// TestREADMERules keeps the README's rule blocks equal to what the commands they
// name print: every deployment's rules and the script of what `ftpct run`
// installs. -update rewrites the blocks.
func TestREADMERules(t *testing.T) {
	const path = "../../README.md"
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	var b strings.Builder
	last := 0
	seen := map[string]bool{}
	for _, m := range generatedBlock.FindAllStringSubmatchIndex(text, -1) {
		command, got := text[m[2]:m[3]], text[m[4]:m[5]]
		seen[command] = true
		var stdout, stderr bytes.Buffer
		if code := run(strings.Fields(command)[1:], &stdout, &stderr); code != 0 {
			t.Errorf("README.md names %q, which fails: exit %d: %s", command, code, stderr.String())
			continue
		}
		want := "```\n" + stdout.String() + "```\n"
		if got != want && !*update {
			t.Errorf("README.md's block for %q differs from its output (-README +output):\n%s\n"+
				"Run: go test ./cmd/ftpct -run TestREADMERules -update", command, cmp.Diff(strings.Split(got, "\n"), strings.Split(want, "\n")))
		}
		b.WriteString(text[last:m[4]])
		b.WriteString(want)
		last = m[5]
	}
	b.WriteString(text[last:])
	for _, name := range rules.DeploymentNames() {
		if c := "ftpct rules --deployment " + name; !seen[c] {
			t.Errorf("README.md has no generated block for %q", c)
		}
	}
	// With --queues: the default, one queue per CPU, differs per machine.
	if c := "ftpct rules --no-ipv6 --queues 2"; !seen[c] {
		t.Errorf("README.md has no generated block for %q", c)
	}
	if *update && b.String() != text {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s", path)
	}
}
