// Command ftpct is a userspace FTP-aware firewall and NAT helper: it replaces
// the kernel's nf_conntrack_ftp and nf_nat_ftp. See README.md.
//
// Usage:
//
//	ftpct run   [--config FILE] [flags]   run the daemon in the foreground
//	ftpct check [--config FILE] [flags]   validate and print the effective configuration
//	ftpct rules [--config FILE] [flags]   print the rules ftpct installs, for operators who install them by hand
//	ftpct uninstall [--config FILE] [flags]   remove what ftpct run installed and left (no daemon needed)
//	ftpct expect list [--session ID | --peer ADDR] [--json] [--socket PATH]
//	ftpct expect watch [--json] [--socket PATH]
//	ftpct expect delete [--socket PATH] ID
//	ftpct sessions list [--json] [--socket PATH]
//	ftpct stats [--json] [--explain] [--socket PATH]
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

const usage = `usage: ftpct <command> [flags]

commands:
  run            run the daemon in the foreground (needs root); SIGHUP reloads the config file
  check          validate the configuration and print it, with where each value comes from
  rules          print the rules ftpct installs (for --no-install-rules)
  uninstall      remove the rules 'ftpct run' installed and left in place (needs root)
  expect list    show the running daemon's expectation table
  expect watch   stream expectation events (created, refused, used, expired, deleted)
  expect delete  close one expectation's hole by hand
  sessions list  show the tracked control connections
  stats          show the running daemon's counters (exit 1 if none answers)
  version        print the version

'ftpct <command> -h' lists a command's flags.
`

// version is set at link time (-ldflags "-X main.version=…", as the .deb
// build does); otherwise versionString takes the module version that
// `go install …@vX.Y.Z` records in the binary.
var version string

// versionString is the version `ftpct version` prints.
func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// command runs one subcommand with the arguments after its name.
type command func(args []string, stdout, stderr io.Writer) error

// commands are the subcommands by name.
var commands = map[string]command{
	"run":       func(a []string, _, e io.Writer) error { return cmdRun(a, e) },
	"check":     cmdCheck,
	"rules":     cmdRules,
	"uninstall": func(a []string, _, e io.Writer) error { return cmdUninstall(a, e) },
	"expect":    cmdExpect,
	"sessions":  cmdSessions,
	"stats":     cmdStats,
	"version":   printVersion,
	"--version": printVersion,
	"-version":  printVersion,
	"help":      printUsage,
	"-h":        printUsage,
	"--help":    printUsage,
}

func printVersion(_ []string, stdout, _ io.Writer) error {
	_, err := fmt.Fprintln(stdout, "ftpct", versionString())
	return err
}

func printUsage(_ []string, stdout, _ io.Writer) error {
	_, err := fmt.Fprint(stdout, usage)
	return err
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "ftpct: unknown command %q\n%s", args[0], usage)
		return 2
	}
	err := cmd(args[1:], stdout, stderr)
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
