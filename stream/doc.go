// Package stream is ftpct's TCP stream normaliser, one direction of a
// connection at a time (Half). It knows nothing of FTP. It owns:
//
//   - sequence mapping: where the sender's original sequence numbers lie on
//     the wire after payload length changes (MapSeq), and back for the
//     peer's acknowledgements and SACK edges (UnmapAck), like the kernel's
//     nf_conntrack_seqadj but with a record per unacknowledged change
//     instead of only the last one;
//   - the one record of each rewrite the peer has not acknowledged (Record:
//     position, original length, length change, and an opaque Tag of the
//     layer that made it), which retransmissions replay and which
//     completes resends that cut a rewritten range;
//   - held bytes: the beginning of a unit (for ftpct, a line) the layer above
//     waits to see whole, and how a later segment meets them (Join);
//   - ack pruning (Acknowledge): what the peer acknowledged no
//     retransmission carries, so its records fold into one base offset.
//
// The text of a rewrite is not kept: the layer above made it from its Tag
// and makes it again on request (Text).
//
// Persistence: Snapshot summarises a direction's adjustment in one small
// comparable value (the cumulative offset before the newest length change,
// that change's position and delta); Restore rebuilds a direction from it.
// Comparing Snapshot before and after a packet tells cheaply whether the
// newest length change changed. Span adds where the unacknowledged rewrites
// before the newest start and their summed change; RestoreSpan rebuilds a
// direction from both, keeping a lump for those rewrites until a resend
// makes them again (span.go).
//
// Memory: an idle direction owns no heap memory. A Half keeps one record
// in itself; a burst of more spills them to a block of MaxRecords taken from
// a pool (one allocation when the pool is empty) and given back once
// acknowledgements leave one or none. Held bytes live in a pooled
// buffer taken by Hold and given back by Release.
//
// Concurrency: a Half is plain data, not safe for concurrent use; its owner
// (the session) serialises access. Nothing allocates except a spill block
// or held-bytes buffer the pool does not have, and Records' callers
// appending to it.
package stream
