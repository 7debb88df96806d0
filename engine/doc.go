// Package engine is ftpct's per-packet pipeline. For every diverted packet of
// an FTP control connection it decodes the headers (rewrite.Decode), finds or
// learns the session (conntrack.Table, with the NAT binding from the kernel),
// splits the new payload bytes into lines and parses announcements
// (ftpparse), applies the policy, creates expectations and opens their holes
// (through the Holes interface, implemented by package rules), rewrites
// announced addresses under NAT, and keeps sequence, acknowledgement and SACK
// numbers consistent (rewrite.Rewrite) for the rest of the connection.
//
// Concurrency: an Engine is shared; each queue reader owns one Worker, whose
// buffers make the packet path allocation-free. Worker.Handle may run on
// several Workers at once; per-session state is locked per packet.
//
// Buffers: the slice Handle returns with DecisionModified belongs to the Worker
// and is valid until its next call.
package engine
