package nfq

import "errors"

// Errors returned by Open.
var (
	ErrQueueBusy   = errors.New("NFQUEUE already bound by another process (is another ftpct running?)")
	ErrUnsupported = errors.New("NFQUEUE is only supported on Linux")
)

// errMalformed is wrapped by the message decoder's errors: the kernel sent
// something nfq cannot read. The reader counts and logs it and goes on.
var errMalformed = errors.New("malformed nfnetlink_queue message")
