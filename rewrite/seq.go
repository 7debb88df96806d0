package rewrite

// Seq is a TCP sequence number with wrap-around (RFC 793 modulo 2^32) arithmetic, like
// gVisor's seqnum.Value. Never compare two Seq values with < or >; use Before and After.
type Seq uint32

// Before reports whether a comes before b in sequence space (int32(a-b) < 0).
func (a Seq) Before(b Seq) bool { return int32(a-b) < 0 }

// After reports whether a comes after b in sequence space (int32(a-b) > 0).
func (a Seq) After(b Seq) bool { return int32(a-b) > 0 }

// Add returns a moved by n bytes (n may be negative), wrapping around.
func (a Seq) Add(n int32) Seq { return a + Seq(n) }

// Diff returns the signed distance a-b, valid while |a-b| < 2^31.
func (a Seq) Diff(b Seq) int32 { return int32(a - b) }
