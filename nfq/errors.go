package nfq

import "errors"

// Errors returned by Open.
var (
	ErrQueueBusy   = errors.New("NFQUEUE already bound by another process (is another ftpct running?)")
	ErrUnsupported = errors.New("NFQUEUE is only supported on Linux")
)

// Errors returned by Queue.Verdict.
var (
	// ErrClosed: the queue is closed; the kernel dropped its waiting packets.
	ErrClosed = errors.New("nfqueue closed")
	// ErrVerdict: the verdict is not one the kernel can be given.
	ErrVerdict = errors.New("invalid verdict")
)

// errMalformed is wrapped by the message decoder's errors: the kernel sent
// something nfq cannot read. The reader counts and logs it and goes on.
var errMalformed = errors.New("malformed nfnetlink_queue message")
