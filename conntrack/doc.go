// Package conntrack keeps ftpct's own connection state: the table of FTP
// control connections (sessions) with their per-direction stream state and
// sequence offsets, and the table of expected data connections.
//
// It also asks the kernel's conntrack table (over ctnetlink, through
// github.com/ti-mo/conntrack) how a control connection is translated, so that
// the NAT binding is learned from the kernel instead of from configuration,
// and it watches the kernel for the data connections ftpct let in. Kernel
// also reads and writes a connection's ct labels, where the daemon keeps the
// state that must survive its restart (package ctstate encodes it).
//
// All per-connection state lives in Session and Expectation values, which are
// plain data (no pointers into packets), so they can be listed, persisted and
// reconciled with the kernel's table.
//
// Concurrency: Table and ExpectTable are safe for concurrent use. A Session's
// mutable fields are guarded by its own mutex (Lock/Unlock); the packet path
// holds it while it handles one packet of that session.
//
// Privileges: Kernel needs CAP_NET_ADMIN in the network namespace it runs in.
// The tables themselves need nothing and work on any OS.
package conntrack
