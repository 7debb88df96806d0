// Package rewrite decodes and rewrites the IPv4/IPv6 + TCP packets of an FTP control
// connection as NFQUEUE delivers them (starting at the IP header): it splices new text into
// the TCP payload, keeps the TCP sequence space consistent after payload length changes, and
// fixes lengths and checksums. It replaces what the kernel's nf_nat_ftp and
// nf_conntrack_seqadj do, which the kernel will not do for packets rewritten in userspace.
//
// # Sequence adjustment
//
// Once an edit changes a payload's length by a delta, every later segment of that direction
// needs its seq shifted and every segment of the other direction needs its ack and SACK edges
// shifted back. A SeqAdj per direction records the changes (original position, delta);
// unlike the kernel, which keeps only the last correction, it keeps up to MaxRecords records
// so that retransmissions of older rewritten segments map to the same wire numbers. The owner
// folds records into a base offset once the peer has acknowledged them (SeqAdj.Fold); a SeqAdj
// whose MaxRecords records are all unacknowledged refuses new ones, and the owner must then
// leave further announcements unrewritten.
//
// # Allocation and ownership
//
// Decode, Rewrite, SeqAdj's methods (except Records and MarshalBinary) and the checksum
// functions do not allocate (errors aside). Decode fills a caller-owned Packet with offsets
// that refer into the caller's buffer b; keep b unchanged while using them. Rewrite writes
// the new packet into the caller's dst (append-style: it returns dst[:0] extended, and only
// allocates if cap(dst) is too small); dst must not overlap the input packet. Returned slices
// alias the caller's buffers; nothing is retained by the package.
//
// # Concurrency and privileges
//
// The package has no global state and needs no privileges. A SeqAdj is not safe for
// concurrent use: the owner of a connection's state serializes access to it.
package rewrite
