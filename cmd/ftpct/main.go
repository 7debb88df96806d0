// Command ftpct is a userspace FTP-aware firewall and NAT helper: it replaces
// the kernel's nf_conntrack_ftp and nf_nat_ftp. See README.md.
//
// Usage:
//
//	ftpct run   [flags]   run the daemon in the foreground
//	ftpct rules [flags]   print the rules ftpct installs, for operators who install them by hand
//	ftpct expect list [--json] [--socket PATH]
//	ftpct stats [--json] [--socket PATH]
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

const usage = `usage: ftpct <command> [flags]

commands:
  run            run the daemon in the foreground (needs root)
  rules          print the rules ftpct installs (for --no-install-rules)
  expect list    show the running daemon's expectation table
  stats          show the running daemon's counters (exit 1 if none answers)
  version        print the version

'ftpct <command> -h' lists a command's flags.
`

var version = "0.1.0"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage marks command-line mistakes (exit status 2).
var errUsage = errors.New("usage")

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(args[1:], stderr)
	case "rules":
		err = cmdRules(args[1:], stdout, stderr)
	case "expect":
		if len(args) < 2 || args[1] != "list" {
			fmt.Fprintln(stderr, "usage: ftpct expect list [--json] [--socket PATH]")
			return 2
		}
		err = cmdExpectList(args[2:], stdout, stderr)
	case "stats":
		err = cmdStats(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "ftpct", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "ftpct: unknown command %q\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "ftpct: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "ftpct: %v\n", err)
		return 1
	}
}
