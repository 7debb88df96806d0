// Package nfq reads packets that netfilter diverted to an NFQUEUE and returns
// a verdict for each, with or without a modified payload. It is the only
// package that imports github.com/florianl/go-nfqueue (pinned at v2.1.0:
// v2.0.1 silently dropped modified payloads, v2.0.0/v2.0.1 sent a queue length
// of 0 and hung in Close). It converts the library's pointer-heavy attributes
// into a Packet value once, at this boundary.
//
// Privileges: CAP_NET_ADMIN in the network namespace of the queue.
//
// Concurrency: each Queue runs one reader goroutine, owned by the context
// given to Open; the Handler is called from it, one packet at a time. The
// packet bytes passed to the Handler are valid only during the call; a
// modified payload it returns must stay valid until it returns (it is copied
// into the verdict message before the next packet is read). A Handler must
// not call Close: Close waits for the reader, which is running the Handler.
package nfq
