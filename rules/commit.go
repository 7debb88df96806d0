package rules

import "strconv"

// OpKind is one kind of change a Committer makes to the kernel's sets.
type OpKind uint8

const (
	// OpOpen adds a hole and, when its To is valid, its DNAT mapping.
	OpOpen OpKind = iota + 1
	// OpClose deletes a hole and its DNAT mapping if they are still there.
	OpClose
	// OpHold adds a flow to the hold set.
	OpHold
	// OpRelease deletes a flow from the hold set if it is there.
	OpRelease
)

var opKindNames = [...]string{OpOpen: "open", OpClose: "close", OpHold: "hold", OpRelease: "release"}

func (k OpKind) String() string {
	if uint(k) < uint(len(opKindNames)) && opKindNames[k] != "" {
		return opKindNames[k]
	}
	return "OpKind(" + strconv.Itoa(int(k)) + ")"
}

// adds reports whether the operation adds elements (its failure is the
// caller's to handle) rather than deleting them (best effort).
func (k OpKind) adds() bool { return k == OpOpen || k == OpHold }

// Op is one change to the kernel's sets.
type Op struct {
	Kind OpKind
	Hole Hole // of OpOpen and OpClose
	Flow Flow // of OpHold and OpRelease
}

// Result is what became of the operations of one Committer.Submit.
type Result struct {
	// Err is set when its adds (opens, holds) were not committed: then
	// none of them is in the kernel.
	Err error
	// CloseErr is set when one of its deletes failed for another reason
	// than the element being gone already (used or expired).
	CloseErr error
}
