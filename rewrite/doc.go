// Package rewrite decodes and rewrites the IPv4/IPv6 + TCP packets of an FTP control
// connection as NFQUEUE delivers them (starting at the IP header): it splices new text into
// the TCP payload, keeps the TCP sequence space consistent after payload length changes, and
// fixes lengths and checksums. It replaces what the kernel's nf_nat_ftp and
// nf_conntrack_seqadj do, which the kernel will not do for packets rewritten in userspace.
//
// # Sequence adjustment
//
// Once a splice changes a payload's length by a delta, every later segment of that direction
// needs its seq shifted and every segment of the other direction needs its ack and SACK edges
// shifted back. Rewrite asks a SeqMap per direction for that mapping; the stream normaliser
// (package stream, whose Half keeps one record per unacknowledged rewrite) implements it. The
// caller records a rewrite's length change there before it rewrites the segment carrying it.
//
// # Allocation and ownership
//
// Decode (also when it rejects a packet) and the checksum functions never allocate; Rewrite
// and Resegment allocate only for their errors. Decode fills a caller-owned Packet with
// offsets that refer into the caller's buffer b; keep b unchanged while using them. Rewrite writes
// the new packet into the caller's dst (append-style: it returns dst[:0] extended, and only
// allocates if cap(dst) is too small); dst must not overlap the input packet. Returned slices
// alias the caller's buffers; nothing is retained by the package.
//
// # Concurrency and privileges
//
// The package has no global state and needs no privileges. The SeqMaps given to Rewrite are
// read only; their owner serializes access to them.
package rewrite
