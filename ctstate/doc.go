// Package ctstate encodes the state ftpct must not lose when it restarts or
// crashes into the 128 bits of a conntrack entry's labels (ct labels), where
// the kernel keeps it for the life of the control connection and conntrackd
// can replicate it to a standby gateway.
//
// What survives is, per direction, what the kernel's nf_conntrack_seqadj
// keeps: the position of the newest length change, its delta, and the
// cumulative offset after it; and, for one direction whose peer had not
// acknowledged several changes, the span they cover (where the oldest
// starts and their summed length change), so that a resend of any of them
// can be placed and rewritten again. Everything else ftpct knows about a
// session it learns again from the stream.
//
// The package is pure: bytes in, values out. It builds and tests on any OS.
package ctstate
