package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ftpct/ftpct/control"
	"github.com/ftpct/ftpct/counters"
	"github.com/ftpct/ftpct/expect"
)

// expectView is one row of `ftpct expect list`.
type expectView struct {
	ID      uint64    `json:"id"`
	Session uint64    `json:"session"`
	Kind    string    `json:"kind"`
	Peer    string    `json:"peer"`
	Addr    string    `json:"addr"`
	Port    uint16    `json:"port"`
	To      string    `json:"to"`
	State   string    `json:"state"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

func expectations(list []expect.Expectation) []expectView {
	out := make([]expectView, 0, len(list))
	for _, x := range list {
		out = append(out, expectView1(x))
	}
	return out
}

func expectView1(x expect.Expectation) expectView {
	v := expectView{ID: x.ID, Session: x.Session, Kind: x.Kind.String(), Peer: x.Peer.String(),
		Addr: x.Addr.String(), Port: x.Port, State: "pending", Created: x.Created, Expires: x.Expires}
	if x.To.IsValid() {
		v.To = x.To.String()
	}
	return v
}

// expectArgs are the filters of `ftpct expect list`.
type expectArgs struct {
	Session uint64 `json:"session,omitempty"`
	Peer    string `json:"peer,omitempty"`
}

// clientFlagSet returns the flags every client command has.
func clientFlagSet(name string, stderr io.Writer) (fs *flag.FlagSet, socket *string, asJSON *bool) {
	fs = flag.NewFlagSet("ftpct "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket = fs.String("socket", control.DefaultSocket, "control socket `path` of the daemon")
	asJSON = fs.Bool("json", false, "print JSON")
	return fs, socket, asJSON
}

// parseClient parses args, flags before or after the positional
// arguments, and allows at most maxArgs of those; fs.Args() holds them
// afterwards.
func parseClient(fs *flag.FlagSet, args []string, maxArgs int) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) > maxArgs {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, pos[maxArgs])
	}
	return fs.Parse(append([]string{"--"}, pos...))
}

func cmdExpectList(args []string, stdout, stderr io.Writer) error {
	fs, socket, asJSON := clientFlagSet("expect list", stderr)
	var a expectArgs
	fs.Uint64Var(&a.Session, "session", 0, "only the expectations of the control connection with this `id` (ftpct sessions list)")
	fs.StringVar(&a.Peer, "peer", "", "only the expectations involving this `address` (data connection source, destination or translated destination)")
	if err := parseClient(fs, args, 0); err != nil {
		return err
	}
	if a.Peer != "" {
		if _, err := netip.ParseAddr(a.Peer); err != nil {
			return fmt.Errorf("%w: --peer: %v", errUsage, err)
		}
	}
	var list []expectView
	if err := control.CallArgs(*socket, "expect", a, &list); err != nil {
		return err
	}
	now := time.Now()
	return writeList(stdout, *asJSON, list, "ID\tSESSION\tKIND\tFROM\tTO\tTRANSLATED TO\tSTATE\tEXPIRES IN",
		"(no pending expectations)", func(tw io.Writer, v expectView) {
			to := v.To
			if to == "" {
				to = "-"
			}
			fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", v.ID, v.Session, v.Kind, v.Peer,
				joinHostPort(v.Addr, v.Port), to, v.State, v.Expires.Sub(now).Round(time.Second))
		})
}

func joinHostPort(addr string, port uint16) string {
	if strings.Contains(addr, ":") {
		return fmt.Sprintf("[%s]:%d", addr, port)
	}
	return fmt.Sprintf("%s:%d", addr, port)
}

func cmdStats(args []string, stdout, stderr io.Writer) error {
	fs, socket, asJSON := clientFlagSet("stats", stderr)
	explain := fs.Bool("explain", false, "add each counter's meaning")
	if err := parseClient(fs, args, 0); err != nil {
		return err
	}
	var v counters.Values
	if err := control.Call(*socket, "stats", &v); err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, v.Flat())
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, c := range v {
		if *explain {
			fmt.Fprintf(tw, "%s\t%d\t%s\n", c.Name, c.Value, c.Help)
		} else {
			fmt.Fprintf(tw, "%s\t%d\n", c.Name, c.Value)
		}
	}
	return tw.Flush()
}

// writeList shows the answer of a list command: list as JSON with --json,
// otherwise a table of the tab-separated header and one row per item
// written by row, then none on a line of its own when the list is empty.
func writeList[T any](w io.Writer, asJSON bool, list []T, header, none string, row func(tw io.Writer, v T)) error {
	if asJSON {
		return writeJSON(w, list)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, v := range list {
		row(tw, v)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(list) == 0 {
		fmt.Fprintln(w, none)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // tuples read "a -> b"
	return enc.Encode(v)
}
