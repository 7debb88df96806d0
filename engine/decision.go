package engine

// Decision is what the engine decided to do with a packet. The queue turns
// it into its own verdict (nfq.Verdict): DecisionModified is an accept with
// a new payload.
type Decision uint8

const (
	// DecisionAccept lets the packet through unchanged.
	DecisionAccept Decision = iota
	// DecisionModified lets the rewritten packet through instead.
	DecisionModified
	// DecisionDrop drops the packet; its sender retransmits it.
	DecisionDrop
	// DecisionPending: the packet waits for its holes to be committed
	// (Engine.Defer); its decision is given later to the VerdictFunc.
	DecisionPending
	// DecisionRepeat gives the packet back to the kernel unmodified with
	// the hold mark (Engine.HoldInPath): the divert chains hold its flow and
	// queue it again, with the mark (Worker.HandleMarked).
	DecisionRepeat
)

func (v Decision) String() string {
	switch v {
	case DecisionAccept:
		return "accept"
	case DecisionModified:
		return "accept-modified"
	case DecisionDrop:
		return "drop"
	case DecisionPending:
		return "pending"
	case DecisionRepeat:
		return "repeat"
	}
	return "unknown"
}

// Reason says why an announcement opened no hole.
type Reason uint8

const (
	ReasonNone Reason = iota
	// ReasonAddress: the announced address is not the sender's own.
	ReasonAddress
	// ReasonLowPort: the announced port is privileged (< 1024).
	ReasonLowPort
	// ReasonLimit: the expectation table is full.
	ReasonLimit
	// ReasonConflict: the tuple is expected for another endpoint.
	ReasonConflict
	// ReasonRules: the hole could not be opened in the kernel.
	ReasonRules
	// ReasonFamily: the announcement's syntax cannot carry the translated address.
	ReasonFamily
	// ReasonInFlight: too many of the session's rewrites await acknowledgement.
	ReasonInFlight
	// ReasonStateRange: the rewrite would move the stream's offset past what
	// the stored state can hold (ctstate limits).
	ReasonStateRange
)

func (r Reason) String() string {
	switch r {
	case ReasonAddress:
		return "announced address is not the sender's own"
	case ReasonLowPort:
		return "announced port is privileged (< 1024)"
	case ReasonLimit:
		return "too many pending expectations"
	case ReasonConflict:
		return "tuple already expected for another endpoint"
	case ReasonRules:
		return "could not open the hole"
	case ReasonFamily:
		return "announcement cannot carry the translated address family"
	case ReasonInFlight:
		return "too many rewrites awaiting acknowledgement"
	case ReasonStateRange:
		return "stream offset would leave the range ftpct can store"
	}
	return "none"
}
