// Package conntrack keeps ftpct's table of FTP control connections
// (sessions): for each, its NAT binding as the kernel knows it, the stream
// normaliser's state of both directions (stream.Half) and what the FTP layer
// read of it (Lines).
//
// It also asks the kernel's conntrack table (over ctnetlink, through
// github.com/ti-mo/conntrack) how a control connection is translated, so that
// the NAT binding is learned from the kernel instead of from configuration,
// and it watches the kernel for the data connections ftpct let in. Kernel
// also reads and writes a connection's ct labels, where the daemon keeps the
// state that must survive its restart (package ctstate encodes it).
//
// Concurrency: Table is safe for concurrent use. A Session's mutable fields
// are guarded by its own mutex (Lock/Unlock); the packet path holds it while
// it handles one packet of that session.
//
// Privileges: Kernel needs CAP_NET_ADMIN in the network namespace it runs in.
// The table itself needs nothing and works on any OS.
package conntrack
