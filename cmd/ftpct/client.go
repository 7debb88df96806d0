package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ftpct/ftpct/conntrack"
	"github.com/ftpct/ftpct/control"
	"github.com/ftpct/ftpct/rules"
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

func expectations(list []conntrack.Expectation, now time.Time) []expectView {
	out := make([]expectView, 0, len(list))
	for _, x := range list {
		v := expectView{ID: x.ID, Session: x.Session, Kind: x.Kind.String(), Peer: x.Peer.String(),
			Addr: x.Addr.String(), Port: x.Port, State: "pending", Created: x.Created, Expires: x.Expires}
		if x.To.IsValid() {
			v.To = x.To.String()
		}
		out = append(out, v)
	}
	return out
}

func clientFlags(name string, stderr io.Writer, args []string) (socket string, asJSON bool, err error) {
	fs := flag.NewFlagSet("ftpct "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&socket, "socket", control.DefaultSocket, "control socket `path` of the daemon")
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", false, err
		}
		return "", false, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return "", false, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return socket, asJSON, nil
}

func cmdExpectList(args []string, stdout, stderr io.Writer) error {
	socket, asJSON, err := clientFlags("expect list", stderr, args)
	if err != nil {
		return err
	}
	var list []expectView
	if err := control.Call(socket, "expect", &list); err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, list)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSESSION\tKIND\tFROM\tTO\tTRANSLATED TO\tSTATE\tEXPIRES IN")
	now := time.Now()
	for _, v := range list {
		to := v.To
		if to == "" {
			to = "-"
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", v.ID, v.Session, v.Kind, v.Peer,
			joinHostPort(v.Addr, v.Port), to, v.State, v.Expires.Sub(now).Round(time.Second))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(list) == 0 {
		fmt.Fprintln(stdout, "(no pending expectations)")
	}
	return nil
}

func joinHostPort(addr string, port uint16) string {
	if strings.Contains(addr, ":") {
		return fmt.Sprintf("[%s]:%d", addr, port)
	}
	return fmt.Sprintf("%s:%d", addr, port)
}

func cmdStats(args []string, stdout, stderr io.Writer) error {
	socket, asJSON, err := clientFlags("stats", stderr, args)
	if err != nil {
		return err
	}
	var v statsView
	if err := control.Call(socket, "stats", &v); err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, v)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	printFields(tw, reflect.ValueOf(v))
	return tw.Flush()
}

// printFields prints each counter as "name  value", in declaration order.
func printFields(w io.Writer, v reflect.Value) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous {
			printFields(w, v.Field(i))
			continue
		}
		name := strings.Split(f.Tag.Get("json"), ",")[0]
		fmt.Fprintf(w, "%s\t%v\n", name, v.Field(i).Interface())
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func cmdRules(args []string, stdout, stderr io.Writer) error {
	fs, l := settingsFlags("rules", rulesKey)
	deployment := fs.String("deployment", "", "also print the operator's rules for a deployment: "+strings.Join(rules.DeploymentNames(), ", "))
	c, err := loadSettings(fs, l, args, stderr)
	if err != nil {
		return err
	}
	script := rules.Script(c.Rules)
	if *deployment != "" {
		d, err := rules.LookupDeployment(*deployment)
		if err != nil {
			return fmt.Errorf("%w: --deployment: %v", errUsage, err)
		}
		script = rules.DeploymentScript(c.Rules, d)
	}
	_, err = io.WriteString(stdout, script)
	return err
}
