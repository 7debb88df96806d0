package conntrack

import (
	"errors"
	"net/netip"
	"testing"
	"time"
	"unsafe"
)

func TestTableBothDirections(t *testing.T) {
	cli1, cli2 := netip.MustParseAddr("10.0.1.2"), netip.MustParseAddr("10.0.1.3")
	srv, pub := netip.MustParseAddr("203.0.113.2"), netip.MustParseAddr("203.0.113.1")
	t0 := time.Unix(1_700_000_000, 0)
	b := Binding{
		Orig:  Tuple{Src: cli1, Dst: srv, SrcPort: 40000, DstPort: 21},
		Reply: Tuple{Src: srv, Dst: pub, SrcPort: 21, DstPort: 40000},
	}
	if !b.Translated() {
		t.Error("masqueraded binding not reported as translated")
	}
	tab := NewTable(1)
	s, err := tab.Add(b, t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		t    Tuple
		dir  Dir
	}{{"orig", b.Orig, DirOrig}, {"reply", b.Reply, DirReply}} {
		got, dir, ok := tab.Lookup(tc.t.Key())
		if !ok || got != s || dir != tc.dir {
			t.Errorf("%s: Lookup = %v %v %v", tc.name, got, dir, ok)
		}
	}
	if _, err := tab.Add(Binding{Orig: Tuple{Src: cli2, Dst: srv, SrcPort: 1, DstPort: 21}, Reply: Tuple{Src: srv, Dst: pub, SrcPort: 21, DstPort: 1}}, t0); !errors.Is(err, ErrTableFull) {
		t.Errorf("second session: err %v, want ErrTableFull", err)
	}
	tab.Remove(s)
	if _, _, ok := tab.Lookup(b.Reply.Key()); ok || tab.Len() != 0 {
		t.Error("session still present after Remove")
	}
}

// A tracked control connection costs its Session: it must not grow. On
// 64-bit it was 3424 bytes before the stream normaliser kept one record per
// rewrite, 3440 with the binding's ct labels; 2408 now.
func TestSessionSize(t *testing.T) {
	if n := unsafe.Sizeof(Session{}); n > 2408 {
		t.Errorf("Session is %d bytes, want at most 2408", n)
	}
}
