// Package nfq reads packets that netfilter diverted to an NFQUEUE and returns
// a verdict for each, with or without a modified payload. It is the only
// package that speaks nfnetlink_queue.
//
// The socket is a github.com/mdlayher/netlink Conn; the few messages of the
// packet path (a packet in, a verdict out) are decoded and encoded by nfq
// itself, straight from and into buffers it reuses, so a packet costs no
// allocation (BENCHMARKS.md). github.com/florianl/go-nfqueue, used before,
// allocated about 64 times per packet and binds a queue only together with
// starting its own reader, so it could not even be kept for the setup.
//
// Privileges: CAP_NET_ADMIN in the network namespace of the queue.
//
// Concurrency: each Queue has its own socket and one reader goroutine, owned
// by the context given to Open; the Handler is called from it, one packet at
// a time. Several Queues (one per number of an NFQUEUE --queue-balance
// range) read in parallel, so a Handler shared between them must be safe for
// concurrent use. The packet bytes passed to the Handler point into the
// reader's buffer and are valid only during the call; a modified payload it
// returns must stay valid until it returns (it is copied into the verdict
// before the next packet is read). A Handler must not call Close: Close waits
// for the reader, which is running the Handler.
//
// Batches: one read takes every packet waiting, up to 8 (recvmmsg(2)), and
// the verdicts the Handler decides for them go to the kernel together, in
// one write, once the last of them is decided (each verdict is its own
// netlink message; the kernel handles them in turn). Under load a reader
// finds several packets each time it wakes, and the system calls per packet
// go down (BENCHMARKS.md).
//
// Deferred verdicts: a Handler may return Pending; the packet then waits in
// the kernel (the reader goes on with the next ones) until Queue.Verdict
// gives it its verdict by packet id, from any goroutine. Verdict's writes and
// the reader's are serialised, and Verdict writes the verdicts the reader
// decided and had not written yet before its own: verdicts reach the kernel
// in the order they were decided, so a packet given its verdict later never
// overtakes one of its flow decided before it. Packets still pending when
// the queue closes are dropped by the kernel (their senders retransmit).
//
// Marks: Packet.Mark is the packet's mark (skb->mark) as queued (NFQA_MARK,
// which the kernel sends only when it is not 0). A Handler's AcceptMark
// accepts the packet with Config.Mark's bits set in that mark, the others
// kept: the verdict carries NFQA_MARK (nfqnl_recv_verdict,
// net/netfilter/nfnetlink_queue.c, sets skb->mark from it). Only the reader
// knows a packet's mark, so a deferred verdict cannot mark.
//
// Config.HoldMark is a second set of bits, for holding a flow in the packet
// path: Repeat gives the packet back unmodified with them set (NF_REPEAT:
// the kernel runs the hook entry that queued it again, first rule on, and a
// rule there sees the bits), AcceptHold and AcceptMarkHold accept it with
// them set. Any other verdict a Handler returns for a packet queued with
// them clears them, so they leave the reader only where it asked for them;
// a deferred verdict leaves the mark as the packet was queued.
package nfq
