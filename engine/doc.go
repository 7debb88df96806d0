// Package engine is ftpct's per-packet pipeline for the packets of FTP control
// connections. A packet meets its layers in this order (Worker.Handle):
//
//  1. decode: IPv4/IPv6 and TCP headers into offsets (rewrite.Decode);
//  2. session: found by its flow key, or learned with its NAT binding from
//     the kernel's conntrack entry (conntrack.Table, Kernel);
//  3. stream normaliser (package stream, applied to packets in
//     normalise.go): prunes what the peer acknowledged, completes resends
//     that cut a kept rewrite, joins held bytes to the segment that
//     continues them, drops segments after a gap, replays kept rewrites on
//     retransmitted bytes. It knows nothing of FTP;
//  4. FTP layer (ftp.go): reads the new bytes line by line, holds back line
//     beginnings that may be announcements, follows AUTH TLS / 234, parses
//     announcements (ftpparse) and rewrites the ones the policy translated;
//  5. expectation and policy service (policy.go, package expect): may the
//     announcement open a hole (address, privileged port, limits), where
//     does it translate to; opens and closes holes (Holes, implemented by
//     package rules). Expectations created, refused, used and expired are
//     each counted and logged in one place there. With Defer, holes are
//     committed off the packet path (deferred.go): the packet's hole
//     operations go to a Committer (rules.Committer, one nftables
//     transaction for what all workers submitted meanwhile) and the packet
//     waits (DecisionPending) until they are committed; later packets of
//     its flow wait behind it and are handled in order afterwards, by the
//     committer's goroutine; a failed commit refuses the announcement and
//     forgets its rewrite (once the committer stopped, the packet is also
//     dropped, for a restarted ftpct to see it again);
//  6. verdict (send or drop in worker.go): the packet is rewritten with
//     the splices and the sequence mapping of both directions
//     (rewrite.Rewrite) and counted once.
//
// Policy values (Config) can change while the engine runs (Engine.Reload):
// the packet path reads them through an atomic pointer, without a lock.
//
// Concurrency: an Engine is shared; each queue reader owns one Worker, whose
// buffers make the packet path allocation-free. Worker.Handle may run on
// several Workers at once; per-session state is locked per packet. Run does
// the housekeeping (expiry, forgetting sessions the kernel dropped) until
// its context is cancelled.
//
// A packet left DecisionPending gets its decision later through the
// VerdictFunc given to Defer, by the tag given to HandleID.
//
// Buffers: the slice Handle returns with DecisionModified belongs to the
// Worker and is valid until its next call.
package engine
