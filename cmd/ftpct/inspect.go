package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ftpct/ftpct/conntrack"
	"github.com/ftpct/ftpct/control"
	"github.com/ftpct/ftpct/engine"
)

// `ftpct sessions list`, `ftpct expect watch` and `ftpct expect delete`:
// their views (shared by the daemon, which fills them, and the client,
// which prints them) and commands.

const expectUsage = `usage: ftpct expect list [--session ID | --peer ADDR] [--json] [--socket PATH]
       ftpct expect watch [--json] [--socket PATH]
       ftpct expect delete [--socket PATH] ID`

// cmdExpect runs `ftpct expect SUBCOMMAND`.
func cmdExpect(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: expect needs a subcommand\n%s", errUsage, expectUsage)
	}
	switch args[0] {
	case "list":
		return cmdExpectList(args[1:], stdout, stderr)
	case "watch":
		return cmdExpectWatch(args[1:], stdout, stderr)
	case "delete":
		return cmdExpectDelete(args[1:], stdout, stderr)
	}
	return fmt.Errorf("%w: unknown subcommand %q\n%s", errUsage, args[0], expectUsage)
}

// cmdSessions runs `ftpct sessions list`.
func cmdSessions(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "list" {
		return fmt.Errorf("%w: usage: ftpct sessions list [--json] [--socket PATH]", errUsage)
	}
	fs, socket, asJSON := clientFlagSet("sessions list", stderr)
	if err := parseClient(fs, args[1:], 0); err != nil {
		return err
	}
	var list []sessionView
	if err := control.Call(*socket, "sessions", &list); err != nil {
		return err
	}
	now := time.Now()
	return writeList(stdout, *asJSON, list, "ID\tSTATE\tCLIENT\tSERVER\tNAT\tOFFSET C/S\tEXPECT\tTLS\tIDLE",
		"(no tracked control connections)", func(tw io.Writer, v sessionView) {
			exp := "-"
			if len(v.Expectations) > 0 {
				ids := make([]string, len(v.Expectations))
				for i, id := range v.Expectations {
					ids[i] = strconv.FormatUint(id, 10)
				}
				exp = strings.Join(ids, ",")
			}
			nat := v.NAT
			if nat == "" {
				nat = "-"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%+d/%+d\t%s\t%s\t%s\n", v.ID, v.State, v.Client, v.Server, nat,
				v.Offset.Client, v.Offset.Server, exp, v.TLS, now.Sub(v.LastSeen).Round(time.Second))
		})
}

// dirPair is a value for each direction of a control connection.
type dirPair struct {
	Client int64 `json:"client"` // the client's commands (conntrack original direction)
	Server int64 `json:"server"` // the server's replies
}

func pairOf(in engine.SessionInfo, f func(engine.DirInfo) int64) dirPair {
	return dirPair{Client: f(in.Dir[conntrack.DirOrig]), Server: f(in.Dir[conntrack.DirReply])}
}

// sessionView is one row of `ftpct sessions list`.
type sessionView struct {
	ID    uint64 `json:"id"`
	State string `json:"state"`
	// Client and Server are the endpoints as the client addressed them
	// (the conntrack original tuple); Orig and Reply the kernel's tuples.
	Client string `json:"client"`
	Server string `json:"server"`
	Orig   string `json:"orig"`
	Reply  string `json:"reply"`
	// NAT tells how the kernel translates the connection, e.g.
	// "snat 10.0.1.2:40000=>203.0.113.1:40000"; empty for none.
	NAT string `json:"nat"`
	// Offset is each direction's sequence adjustment for new bytes
	// (base plus the rewrites kept); OffsetBase its acknowledged part.
	Offset     dirPair `json:"offset"`
	OffsetBase dirPair `json:"offset_base"`
	// RewritesKept await the peer's acknowledgement; Held are bytes of a
	// split line held back.
	RewritesKept dirPair   `json:"rewrites_kept"`
	Held         dirPair   `json:"held"`
	Expectations []uint64  `json:"expectations"`
	TLS          string    `json:"tls"`
	Created      time.Time `json:"created"`
	LastSeen     time.Time `json:"last_seen"`
}

func sessionViews(list []engine.SessionInfo) []sessionView {
	out := make([]sessionView, 0, len(list))
	for _, in := range list {
		b := in.Binding
		v := sessionView{ID: in.ID, State: in.State.String(), TLS: in.TLS.String(),
			Client: addrPort(b.Orig.Src, b.Orig.SrcPort), Server: addrPort(b.Orig.Dst, b.Orig.DstPort),
			Orig: b.Orig.String(), Reply: b.Reply.String(), NAT: natOf(b),
			Offset:       pairOf(in, func(d engine.DirInfo) int64 { return int64(d.Offset) }),
			OffsetBase:   pairOf(in, func(d engine.DirInfo) int64 { return int64(d.Base) }),
			RewritesKept: pairOf(in, func(d engine.DirInfo) int64 { return int64(d.Kept) }),
			Held:         pairOf(in, func(d engine.DirInfo) int64 { return int64(d.Held) }),
			Expectations: in.Expectations, Created: in.Created, LastSeen: in.LastSeen}
		if v.Expectations == nil {
			v.Expectations = []uint64{}
		}
		out = append(out, v)
	}
	return out
}

func addrPort(a netip.Addr, port uint16) string { return netip.AddrPortFrom(a, port).String() }

// natOf describes the translations of a connection: the client's source
// (SNAT, masquerading) and the server's address (DNAT, port forwarding).
func natOf(b conntrack.Binding) string {
	var parts []string
	client, clientSeen := addrPort(b.Orig.Src, b.Orig.SrcPort), addrPort(b.Reply.Dst, b.Reply.DstPort)
	if client != clientSeen {
		parts = append(parts, "snat "+client+"=>"+clientSeen)
	}
	server, serverReal := addrPort(b.Orig.Dst, b.Orig.DstPort), addrPort(b.Reply.Src, b.Reply.SrcPort)
	if server != serverReal {
		parts = append(parts, "dnat "+server+"=>"+serverReal)
	}
	return strings.Join(parts, ", ")
}

// eventView is one line of `ftpct expect watch --json`.
type eventView struct {
	Event   string    `json:"event"` // created, refused, used, expired, deleted; lost
	Time    time.Time `json:"time"`
	ID      uint64    `json:"id,omitempty"`
	Session uint64    `json:"session,omitempty"`
	Kind    string    `json:"kind,omitempty"`
	// CtlOrig and CtlReply are the control connection's kernel tuples.
	CtlOrig    string `json:"ctl_orig,omitempty"`
	CtlReply   string `json:"ctl_reply,omitempty"`
	Peer       string `json:"peer,omitempty"`
	Announced  string `json:"announced,omitempty"`
	Translated string `json:"translated,omitempty"`
	Data       string `json:"data,omitempty"`
	Reason     string `json:"reason,omitempty"`
	// Lost: events this watcher did not get because it read too slowly.
	Lost uint64 `json:"lost,omitempty"`
}

func eventOf(ev engine.Event) eventView {
	v := eventView{Event: ev.Kind.String(), Time: ev.Time, ID: ev.ID, Session: ev.Session, Kind: ev.Announce.String(),
		Peer: ev.Peer.String(), Announced: ev.Announced.String()}
	if ev.Ctl.Orig.Src.IsValid() {
		v.CtlOrig, v.CtlReply = ev.Ctl.Orig.String(), ev.Ctl.Reply.String()
	}
	if ev.Translated.IsValid() {
		v.Translated = ev.Translated.String()
	}
	if ev.Kind == engine.EventUsed {
		v.Data = ev.Data.String()
	}
	if ev.Kind == engine.EventRefused {
		v.Reason = ev.Reason.String()
	}
	return v
}

// text formats an event as one line, like `conntrack -E expect`.
func (v eventView) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s [%s]", v.Time.Format("15:04:05.000"), strings.ToUpper(v.Event))
	if v.Event == "lost" {
		fmt.Fprintf(&b, " %d events not delivered: this watcher read too slowly", v.Lost)
		return b.String()
	}
	if v.ID != 0 {
		fmt.Fprintf(&b, " id=%d", v.ID)
	}
	fmt.Fprintf(&b, " session=%d %s peer=%s announced=%s", v.Session, v.Kind, v.Peer, v.Announced)
	if v.Translated != "" {
		fmt.Fprintf(&b, " translated=%s", v.Translated)
	}
	if v.Data != "" {
		fmt.Fprintf(&b, " data=%q", v.Data)
	}
	if v.Reason != "" {
		fmt.Fprintf(&b, " reason=%q", v.Reason)
	}
	if v.CtlOrig != "" {
		fmt.Fprintf(&b, " ctl=%q reply=%q", v.CtlOrig, v.CtlReply)
	}
	return b.String()
}

// cmdExpectWatch streams events until interrupted or the daemon stops.
func cmdExpectWatch(args []string, stdout, stderr io.Writer) error {
	fs, socket, asJSON := clientFlagSet("expect watch", stderr)
	if err := parseClient(fs, args, 0); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGPIPE)
	defer stop()
	err := control.Stream(ctx, *socket, "expect-watch", nil, func(item json.RawMessage) error {
		var v eventView
		if err := json.Unmarshal(item, &v); err != nil {
			return fmt.Errorf("event: %w", err)
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetEscapeHTML(false) // tuples read "a -> b"
			return enc.Encode(v)
		}
		_, err := fmt.Fprintln(stdout, v.text())
		return err
	})
	if errors.Is(err, control.ErrStreamClosed) {
		return fmt.Errorf("%w (the daemon stopped)", err)
	}
	return err
}

// deleteArgs are the arguments of `ftpct expect delete`.
type deleteArgs struct {
	ID uint64 `json:"id"`
}

// cmdExpectDelete closes one hole by hand.
func cmdExpectDelete(args []string, stdout, stderr io.Writer) error {
	fs, socket, asJSON := clientFlagSet("expect delete", stderr)
	if err := parseClient(fs, args, 1); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: expect delete needs the expectation's ID (ftpct expect list)", errUsage)
	}
	id, err := strconv.ParseUint(fs.Arg(0), 10, 64)
	if err != nil || id == 0 {
		return fmt.Errorf("%w: expectation ID %q is not a positive number", errUsage, fs.Arg(0))
	}
	var v expectView
	if err := control.CallArgs(*socket, "expect-delete", deleteArgs{ID: id}, &v); err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, v)
	}
	to := ""
	if v.To != "" {
		to = " => " + v.To
	}
	_, err = fmt.Fprintf(stdout, "deleted expectation %d (session %d, %s %s -> %s%s)\n", v.ID, v.Session, v.Kind, v.Peer, joinHostPort(v.Addr, v.Port), to)
	return err
}
