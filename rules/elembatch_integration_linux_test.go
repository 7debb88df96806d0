//go:build integration

package rules

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ftpct/ftpct/internal/netnstest"
	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// countingSocket counts the reads of the kernel's answers.
type countingSocket struct {
	elemSocket
	recvs int
}

func (c *countingSocket) recv(b []byte) (int, error) {
	c.recvs++
	return c.elemSocket.recv(b)
}

// setContents lists the elements of the sets as text, sorted: set, key,
// data, comment, timeout.
func setContents(t *testing.T, m *Manager, sets ...*nftables.Set) []string {
	t.Helper()
	var out []string
	for _, s := range sets {
		elems, err := m.conn.GetSetElements(s)
		if err != nil {
			t.Fatalf("list %s: %v", s.Name, err)
		}
		for _, e := range elems {
			out = append(out, fmt.Sprintf("%s %s %x %x %q %v", familyName(s.Table.Family), s.Name, e.Key, e.Val, e.Comment, e.Timeout))
		}
	}
	slices.Sort(out)
	return out
}

// TestElemBatchKernel: the writer's transactions do in the kernel what
// google/nftables' do (the same elements added and deleted, the same
// transactions refused with the same error), from the same sets; a
// transaction with a failing message is rejected whole, every failing
// message reported with its element, and the answer read in one read when
// nothing fails (nfnetlink's batch semantics, as commit's comment says).
func TestElemBatchKernel(t *testing.T) {
	ns, _, m := installed(t, noAccept)
	v4, v6 := m.tables[0], m.tables[1]
	hole := func(o *tableObjs, port uint16) Hole {
		if o == v6 {
			return Hole{Peer: netip.MustParseAddr("2001:db8::7"), Addr: netip.MustParseAddr("2001:db8:1::1"), Port: port,
				To: netip.AddrPortFrom(netip.MustParseAddr("fd00::3"), port), Timeout: time.Minute,
				Owner: Flow{Src: netip.MustParseAddrPort("[fd00::3]:40000"), Dst: netip.MustParseAddrPort("[2001:db8::7]:21")}}
		}
		return Hole{Peer: netip.MustParseAddr("192.0.2.7"), Addr: netip.MustParseAddr("198.51.100.1"), Port: port,
			To: netip.AddrPortFrom(netip.MustParseAddr("10.1.2.3"), port), Timeout: time.Minute,
			Owner: Flow{Src: netip.MustParseAddrPort("10.1.2.3:40000"), Dst: netip.MustParseAddrPort("192.0.2.7:21")}}
	}
	expectEl := func(o *tableObjs, port uint16) elemCall {
		h := hole(o, port)
		return elemCall{set: o.expect, elems: []nftables.SetElement{{Key: h.expectKey(), Timeout: h.timeoutDuration(), Comment: h.Owner.String()}}}
	}
	xlateEl := func(o *tableObjs, port uint16, to uint16) elemCall {
		h := hole(o, port)
		h.To = netip.AddrPortFrom(h.To.Addr(), to)
		return elemCall{set: o.xlate, elems: []nftables.SetElement{{Key: h.expectKey(), Val: h.xlateValue(), Timeout: h.timeoutDuration()}}}
	}
	holdEl := func(o *tableObjs, port uint16) elemCall {
		f := hole(o, port).Owner
		return elemCall{set: o.hold, elems: []nftables.SetElement{{Key: f.holdKey()}}}
	}
	del := func(c elemCall) elemCall {
		c.del = true
		for i := range c.elems {
			c.elems[i] = nftables.SetElement{Key: c.elems[i].Key}
		}
		return c
	}
	join := func(cs ...elemCall) elemCall {
		out := elemCall{del: cs[0].del, set: cs[0].set}
		for _, c := range cs {
			out.elems = append(out.elems, c.elems...)
		}
		return out
	}
	sets := []*nftables.Set{v4.expect, v4.xlate, v4.hold, v6.expect, v6.xlate, v6.hold}
	tests := []struct {
		name    string
		before  []elemCall // committed first (with google/nftables)
		calls   []elemCall // one transaction
		wantErr error
		// wantFailed: the failing messages' errors (set and element
		// index), in order.
		wantFailed []string
		wantRecvs  int
		wantAdded  bool // the transaction's adds are in the kernel after
	}{
		{
			name:      "adds: expect with timeout and comment, xlate with data, hold; IPv4 and IPv6",
			calls:     []elemCall{expectEl(v4, 2000), xlateEl(v4, 2000, 2000), holdEl(v4, 1), expectEl(v6, 2000), xlateEl(v6, 2000, 2000), holdEl(v6, 1)},
			wantRecvs: 1,
			wantAdded: true,
		},
		{
			name:      "deletes",
			before:    []elemCall{expectEl(v4, 2000), xlateEl(v4, 2000, 2000), holdEl(v6, 1)},
			calls:     []elemCall{del(expectEl(v4, 2000)), del(xlateEl(v4, 2000, 2000)), del(holdEl(v6, 1))},
			wantRecvs: 1,
		},
		{
			name:      "a duplicate add is not an error (no NLM_F_EXCL)",
			before:    []elemCall{expectEl(v4, 2000), holdEl(v4, 1)},
			calls:     []elemCall{expectEl(v4, 2000), holdEl(v4, 1)},
			wantRecvs: 1,
			wantAdded: true,
		},
		{
			name:       "a map element added again with other data",
			before:     []elemCall{xlateEl(v4, 2000, 2000)},
			calls:      []elemCall{xlateEl(v4, 2000, 3000)},
			wantErr:    unix.EEXIST,
			wantFailed: []string{"add to xlate, element 0"},
			wantRecvs:  1,
		},
		{
			name:       "a missing element's delete fails the middle message: nothing committed",
			before:     []elemCall{expectEl(v4, 2001), expectEl(v4, 2003)},
			calls:      []elemCall{expectEl(v4, 2000), del(join(expectEl(v4, 2001), expectEl(v4, 2002), expectEl(v4, 2003))), xlateEl(v4, 2000, 2000)},
			wantErr:    unix.ENOENT,
			wantFailed: []string{"delete from expect, element 1"},
			wantRecvs:  2,
		},
		{
			name:       "two failing messages, the last one of them: both reported",
			before:     []elemCall{xlateEl(v6, 2001, 2001)},
			calls:      []elemCall{del(expectEl(v4, 2001)), holdEl(v4, 1), del(join(xlateEl(v6, 2001, 2001), xlateEl(v6, 2005, 2005)))},
			wantErr:    unix.ENOENT,
			wantFailed: []string{"delete from expect, element 0", "delete from xlate, element 1"},
			wantRecvs:  2,
		},
	}
	// The sets' elements after before and calls, and the error, through
	// google/nftables or the writer.
	run := func(t *testing.T, before, calls []elemCall, writer bool) ([]string, error) {
		t.Helper()
		for _, s := range sets {
			kind := "set"
			if s.IsMap {
				kind = "map"
			}
			nsExec(t, ns, "nft", "flush", kind, familyName(s.Table.Family), "ftpct", s.Name)
		}
		apply := func(calls []elemCall) error {
			for _, c := range calls {
				var err error
				switch {
				case writer && c.del:
					err = m.elems.del(c.set, c.elems)
				case writer:
					err = m.elems.add(c.set, c.elems)
				case c.del:
					err = m.conn.SetDeleteElements(c.set, c.elems)
				default:
					err = m.conn.SetAddElements(c.set, c.elems)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if writer {
				return m.elems.commit()
			}
			return m.conn.Flush()
		}
		w := writer
		writer = false
		if err := apply(before); err != nil {
			t.Fatalf("before: %v", err)
		}
		writer = w
		err := apply(calls)
		return setContents(t, m, sets...), err
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantSets, wantErr := run(t, tt.before, tt.calls, false)
			cs := &countingSocket{elemSocket: m.elems.sock}
			m.elems.sock = cs
			gotSets, err := run(t, tt.before, tt.calls, true)
			m.elems.sock = cs.elemSocket
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("writer: error %v, want %v", err, tt.wantErr)
			}
			if !errors.Is(wantErr, tt.wantErr) || (wantErr == nil) != (tt.wantErr == nil) {
				t.Errorf("google/nftables: error %v, want %v (as the writer)", wantErr, tt.wantErr)
			}
			if diff := cmp.Diff(wantSets, gotSets); diff != "" {
				t.Errorf("sets after (-google/nftables +writer):\n%s", diff)
			}
			if tt.wantAdded {
				text := strings.Join(gotSets, "\n")
				for _, c := range tt.calls {
					for _, e := range c.elems {
						if want := fmt.Sprintf("%s %s %x %x %q", familyName(c.set.Table.Family), c.set.Name, e.Key, e.Val, e.Comment); !c.del && !strings.Contains(text, want) {
							t.Errorf("added element %s not in the kernel:\n%s", want, text)
						}
					}
				}
			}
			before, _ := run(t, tt.before, nil, false)
			if tt.wantErr != nil && !slices.Equal(before, gotSets) {
				t.Errorf("a rejected transaction changed the sets:\nbefore %q\nafter  %q", before, gotSets)
			}
			var failed []string
			var errs []error
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				errs = j.Unwrap()
			} else if err != nil {
				errs = []error{err}
			}
			for _, e := range errs {
				var ee *elemError
				if !errors.As(e, &ee) {
					t.Errorf("error %v names no element message", e)
					continue
				}
				s := "add to " + ee.Set
				if ee.Del {
					s = "delete from " + ee.Set
				}
				failed = append(failed, fmt.Sprintf("%s, element %d", s, ee.Elem))
				if ee.Elem >= 0 && !strings.Contains(e.Error(), fmt.Sprintf("%x", ee.Key)) {
					t.Errorf("error %q does not show the element's key", e)
				}
			}
			if diff := cmp.Diff(tt.wantFailed, failed); diff != "" {
				t.Errorf("failing messages (-want +got):\n%s", diff)
			}
			if cs.recvs != tt.wantRecvs {
				t.Errorf("%d reads of the answer, want %d", cs.recvs, tt.wantRecvs)
			}
		})
	}
}

// TestElemBatchLarge: a transaction larger than one attribute (its list is
// split) and than the socket's default send buffer (made larger) is
// committed whole, and deleted whole again.
func TestElemBatchLarge(t *testing.T) {
	_, _, m := installed(t, func(c *Config) { c.Accept, c.IPv6 = false, false })
	o := m.tables[0]
	var elems, keys []nftables.SetElement
	for i := range 20000 {
		h := Hole{Peer: netip.MustParseAddr("192.0.2.7"), Addr: netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i/50000)}), Port: uint16(1024 + i%50000), Timeout: time.Minute,
			Owner: Flow{Src: netip.MustParseAddrPort("10.1.2.3:40000"), Dst: netip.MustParseAddrPort("192.0.2.7:21")}}
		elems = append(elems, nftables.SetElement{Key: h.expectKey(), Timeout: h.timeoutDuration(), Comment: h.Owner.String()})
		keys = append(keys, nftables.SetElement{Key: h.expectKey()})
	}
	count := func() int {
		got, err := m.conn.GetSetElements(o.expect)
		if err != nil {
			t.Fatal(err)
		}
		return len(got)
	}
	if err := m.locked(func() error {
		if err := m.elems.add(o.expect, elems); err != nil {
			return err
		}
		return m.elems.commit()
	}); err != nil {
		t.Fatalf("add %d elements: %v", len(elems), err)
	}
	if n := count(); n != len(elems) {
		t.Fatalf("%d elements in the set, want %d", n, len(elems))
	}
	if err := m.locked(func() error {
		if err := m.elems.del(o.expect, keys); err != nil {
			return err
		}
		return m.elems.commit()
	}); err != nil {
		t.Fatalf("delete %d elements: %v", len(keys), err)
	}
	if n := count(); n != 0 {
		t.Fatalf("%d elements left in the set, want 0", n)
	}
}

// TestElemBatchNoPermission: a socket opened without CAP_NET_ADMIN
// (nfnetlink checks the opener's credentials) has its transaction refused
// at the batch begin, EPERM, which ends the wait for the answer; the
// Manager's hint says what is missing, and nothing is added.
func TestElemBatchNoPermission(t *testing.T) {
	_, _, m := installed(t, ip4NoAccept)
	o := m.tables[0]
	var sock elemSocket
	// On a thread of its own in the namespace, CAP_NET_ADMIN dropped
	// from its effective set for the socket's creation; the thread ends
	// with its goroutine (netnstest.In).
	err := netnstest.In(t, m.cfg.NetNS, func() error {
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			return err
		}
		data[0].Effective &^= 1 << unix.CAP_NET_ADMIN
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			return err
		}
		s, err := dialElemSocket(0)
		sock = s
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	b := newElemBatch(sock)
	defer b.close()
	h := Hole{Peer: netip.MustParseAddr("192.0.2.7"), Addr: netip.MustParseAddr("198.51.100.1"), Port: 2000, Timeout: time.Minute}
	if err := b.add(o.expect, []nftables.SetElement{{Key: h.expectKey(), Timeout: h.timeoutDuration()}}); err != nil {
		t.Fatal(err)
	}
	err = hint(b.commit())
	if !errors.Is(err, unix.EPERM) || !strings.Contains(err.Error(), "CAP_NET_ADMIN") {
		t.Fatalf("commit without CAP_NET_ADMIN: %v, want EPERM with the hint", err)
	}
	if got := setContents(t, m, o.expect); len(got) != 0 {
		t.Errorf("refused transaction added %q", got)
	}
	// The socket is not left with an answer the next transaction reads.
	if err := b.add(o.expect, []nftables.SetElement{{Key: h.expectKey(), Timeout: h.timeoutDuration()}}); err != nil {
		t.Fatal(err)
	}
	if err := b.commit(); !errors.Is(err, unix.EPERM) {
		t.Errorf("second commit: %v, want EPERM", err)
	}
}
