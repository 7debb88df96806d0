// Package rules is ftpct's rule manager: the only package that talks to
// nftables (over netlink, github.com/google/nftables; no nft binary per
// call) and iptables (github.com/coreos/go-iptables, only at Install and
// Remove). The set-element transactions of the Committer and of Hold and
// Release, many per second in a storm, go through a writer of its own
// (see "Element transactions").
//
// # What Install puts in place
//
// One table per family, "ip <Table>" and (Config.IPv6) "ip6 <Table>":
//
//   - set ports { type inet_service } holding Config.Ports.
//   - chains divert_pre (hook prerouting) and divert_out (hook output), both
//     at priority raw (-300, NF_IP_PRI_RAW), i.e. before conntrack (-200,
//     NF_IP_PRI_CONNTRACK; include/uapi/linux/netfilter_ipv4.h): control
//     packets with tcp dport or sport in @ports go to the xt NFQUEUE target,
//     revision 3 (struct xt_NFQ_info_v3, include/uapi/linux/netfilter/xt_NFQUEUE.h):
//     queuenum Config.Queue, queues_total Config.Queues (flow-hash
//     balanced, NFQ_FLAG_CPU_FANOUT off), flags NFQ_FLAG_BYPASS (0x01) so
//     that control traffic keeps flowing when no daemon listens. The
//     prerouting chain returns early for iifname "lo": local traffic is
//     diverted once, in output. The xt target is used instead of nft's
//     "queue" expression because kernels without CONFIG_NFT_QUEUE lack the
//     latter; nft lists the rules translated as "queue num N bypass" and
//     warns that the table is "managed by iptables-nft". Before those, a rule
//     sends the packets of flows in set hold { type addr . addr .
//     inet_service . inet_service } (saddr . daddr . sport . dport: control
//     connections whose stream the daemon resized) to the same queue WITHOUT
//     bypass: while no daemon reads, they are dropped rather than passed
//     unadjusted. A set, because a chain before conntrack cannot match the
//     connection's ct labels. The set is dynamic (size 2<<24): the first
//     rule of the divert chains after the loopback return adds the flow of
//     a packet whose mark has Config.HoldMark's bits (dynset add, bits
//     kept). The daemon gives a session's first resized packet back
//     unmodified with those bits (NF_REPEAT, nf_reinject in
//     net/netfilter/nf_queue.c: the kernel runs the chain again from its
//     first rule), so the packet's own flow is held and the hold rule
//     queues it again, with the bits: the flow is held without an nftables
//     commit, and the daemon sees that it is.
//   - chain keep_labels (no hook, nothing jumps to it) with "ct label set
//     127": while a rule that sets ct labels exists, the kernel gives new
//     conntrack entries a labels extension (nft_ct_set_init calls
//     nf_connlabels_get), where the daemon keeps its per-session state.
//   - set expect { type addr . addr . inet_service; flags timeout } and map
//     xlate { addr . addr . inet_service : addr . inet_service; flags timeout }.
//   - chains pinhole_pre (prerouting) and pinhole_out (output) at priority
//     mangle (-150, NF_IP_PRI_MANGLE): a NEW connection whose
//     saddr . daddr . tcp dport is in @expect deletes that element (one-shot)
//     and gets ct mark |= Config.Mark.
//   - chain xlate_pre, type nat, prerouting, priority -101
//     (NF_IP_PRI_NAT_DST - 1, before iptables-nft's nat chains): a marked
//     connection is DNATed to the map value, if the map has one.
//   - set guard { type addr; flags dynamic, timeout } and chains
//     guard_post (postrouting) and guard_in (input) at priority 300, after
//     NAT (NF_IP_PRI_NAT_SRC = 100): a packet whose mark (skb->mark, not
//     the ct mark) has Config.Mark's bits adds its destination address
//     to @guard (dynset update, timeout GuardTimeout) and gets the bits
//     cleared. The daemon marks (NFQA_MARK in its verdict) a packet that
//     carries an announcement whose hole may not be committed yet; at that
//     packet's last hook its destination is the peer that will open the
//     data connection, as the divert chains see that connection's SYN. The
//     element is added in the packet path, before the packet leaves, so the
//     peer cannot connect before it exists. The first rule of the divert
//     chains (after the loopback return) queues, with bypass, a SYN (of
//     fin, syn, rst, ack only syn) whose source is in @guard: the daemon
//     holds it until the hole it may be for is committed. A second rule of
//     guard_post and guard_in adds, for a packet with Config.HoldMark's
//     bits (the daemon keeps them on the resized packet's verdict), the
//     reverse flow (daddr . saddr . dport . sport: after NAT, the reply
//     tuple as the divert chains see the peer's packets) to @hold and
//     clears the bits, so the peer's acknowledgements of the resized bytes
//     are queued before they can be sent.
//
// With Config.Accept, "-m connmark --mark M/M -m comment --comment ftpct -j
// ACCEPT" is inserted at the top of filter INPUT and FORWARD by iptables
// (and ip6tables), whichever backend (nft or legacy) the binary uses. An
// identical rule left by a crashed run is not duplicated, and Remove
// deletes it. Without the binary, Install fails with ErrNoIptables (the
// operator can run with Accept off and add the rules from Script).
//
// Install creates its own tables (add, delete, add in one batch) or, when
// an earlier run left them, adopts them: one batch deletes and re-adds every
// chain and the sets it does not keep, and keeps the sets expect, xlate,
// hold and guard with their elements (the ports set is refilled); a table
// of an older version without some of them gets them. Set flags cannot be
// changed: an older static hold set is read, deleted and added again
// dynamic with its elements, in that batch. It never flushes
// the ruleset or touches other tables. On failure it removes what that call
// added. Reconcile then deletes the holes and held flows no live control
// connection owns (a hole's owner is its element comment, "SRC DST" of the
// control connection's original tuple). Remove deletes the own tables and
// the accept rules by exact rule spec; it is idempotent.
//
// Set keys and map data are concatenations in which every field occupies a
// whole number of 32-bit registers (NFT_REG32_SIZE,
// include/uapi/linux/netfilter/nf_tables.h): a port is 2 bytes plus 2 zero
// bytes. Holes are deleted from the plain set, never through a map-delete
// rule (nft 1.0.6 cannot print one, which breaks `nft list ruleset`).
//
// # Holes
//
// Open adds the set element (and the map element when Hole.To is valid) in
// one atomic batch with a kernel timeout, so a hole closes by itself even
// if the daemon dies. Close deletes each element in its own batch and
// ignores ENOENT: an element already used by its connection or expired is
// not an error.
//
// # Element transactions
//
// The Committer's passes (Manager.flush, deleteEach) and Hold and Release
// are written by elemBatch (elembatch_linux.go) on a NETLINK_NETFILTER
// socket of its own, opened in the same network namespace: the
// NFT_MSG_NEWSETELEM and NFT_MSG_DELSETELEM messages google/nftables'
// SetAddElements and SetDeleteElements would send (the same attributes and
// flags, NLM_F_CREATE included, so duplicate adds and missing deletes
// succeed or fail as they did; the unit tests compare the two encodings),
// between NFNL_MSG_BATCH_BEGIN and _END, built in a buffer it keeps and
// sent with one sendmsg. Only the last message asks for an acknowledgement
// (NLM_F_ACK): nfnetlink processes the batch inside that sendmsg, aborts it
// whole if any message fails, and answers each failing message with its
// error and then the last one, in order, so one recvmsg reads a committed
// transaction's answer, where google/nftables reads one per message. A
// rejected transaction's error names the set and, from the extended ack
// (NETLINK_EXT_ACK's attribute offset), the element at fault, and wraps
// the errno (errors.Is(err, unix.ENOENT)). An element list longer than one
// netlink attribute (64 KiB) is split into messages of the same set, and
// the socket's send buffer is raised (SO_SNDBUFFORCE) for a transaction
// larger than it, as nft does. Once its buffers have grown a transaction
// allocates nothing. The integration tests check these kernel semantics
// and compare every outcome with google/nftables'. Install, Remove,
// listing, Reconcile, Open and Close use google/nftables.
//
// # Privileges, namespaces, concurrency
//
// Everything needs CAP_NET_ADMIN (root); permission errors say so.
// Config.NetNS names a network namespace file (e.g. /run/netns/x): the
// netlink sockets are opened there and the iptables binary is started from
// a locked OS thread switched into it (the thread is discarded afterwards).
// A Manager is safe for concurrent use: its two netlink sockets (one
// lasting google/nftables connection, one for element transactions) are
// used under one mutex. Shutdown closes them without removing rules.
//
// Script prints what Install puts in place, for `ftpct rules` and for
// operators who run with --no-install-rules: an `nft -f` script whose tables
// are those of Install as `nft list table` prints them (the xt NFQUEUE
// target as nft's queue statement, which is what loading the script
// creates, on kernels with CONFIG_NFT_QUEUE), and in comments the commands
// that add the accept rules and that remove everything, each working as
// printed. The integration tests keep Script and Install agreeing.
// DeploymentRules prints the operator's own rules of the documented
// deployments (README.md "Deployments"), which lab/lab.sh installs.
//
// On operating systems other than Linux, New returns ErrNotSupported; the
// Config, Hole and Script code builds and tests everywhere.
package rules
