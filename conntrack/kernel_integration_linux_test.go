//go:build integration

package conntrack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/ftpct/ftpct/internal/netnstest"
)

// Integration tests: go test -tags integration ./conntrack/
// They need root and the ip and nft binaries; each runs in its own network
// namespace.

func requireRoot(t testing.TB) { netnstest.RequireRoot(t) }

// newNS creates a network namespace with lo up and conntrack active (a rule
// that uses it), removed at cleanup; it returns its name and path.
func newNS(t testing.TB) (string, string) {
	t.Helper()
	name, path := netnstest.New(t, "ftpct-ct")
	nft(t, name, "add table ip t; add chain ip t out { type filter hook output priority 0; }; add rule ip t out ct state new counter")
	return name, path
}

func nsExec(t testing.TB, ns string, args ...string) string {
	t.Helper()
	return netnstest.Exec(t, ns, args...)
}

func nft(t testing.TB, ns, script string) {
	t.Helper()
	nsExec(t, ns, "nft", script)
}

// inNetNS runs f on a thread in the namespace at path; sockets f opens stay
// in it.
func inNetNS(t testing.TB, path string, f func() error) error {
	t.Helper()
	return netnstest.In(t, path, f)
}

// connect opens a TCP connection over lo inside the namespace, exchanges a
// byte each way and returns the client side's tuple (the conntrack original).
func connect(t testing.TB, path string) Tuple {
	t.Helper()
	var c, a net.Conn
	if err := inNetNS(t, path, func() error {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer ln.Close()
		if c, err = net.Dial("tcp", ln.Addr().String()); err != nil {
			return err
		}
		a, err = ln.Accept()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); a.Close() })
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	l, r := c.LocalAddr().(*net.TCPAddr).AddrPort(), c.RemoteAddr().(*net.TCPAddr).AddrPort()
	return Tuple{Src: l.Addr().Unmap(), Dst: r.Addr().Unmap(), SrcPort: l.Port(), DstPort: r.Port()}
}

func dialIn(t testing.TB, path string) *Kernel {
	t.Helper()
	var k *Kernel
	if err := inNetNS(t, path, func() (err error) { k, err = DialKernel(); return err }); err != nil {
		t.Fatalf("DialKernel: %v", err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// labelRule makes the kernel give new conntrack entries a labels extension:
// a rule that sets ct labels in a chain nothing jumps to.
const labelRule = "add chain ip t keep; add rule ip t keep ct label set 127"

// TestLabels checks the kernel facts ftpct's persistence relies on: an entry
// gets room for labels only if a rule setting labels existed when it was
// created, SetResized replaces all 128 bits, and Lookup returns them by either
// direction's tuple; SetResized makes the entry liberal, also when it has no
// room for labels (the kernel applies CTA_PROTOINFO before CTA_LABELS).
func TestLabels(t *testing.T) {
	requireRoot(t)
	ns, path := newNS(t)
	k := dialIn(t, path)
	before := connect(t, path)
	nft(t, ns, labelRule)
	after := connect(t, path)

	var labels [LabelsSize]byte
	for i := range labels {
		labels[i] = byte(0xa0 + i)
	}
	for _, tu := range []Tuple{before, after} {
		if b, err := k.Lookup(tu); err != nil || b.Liberal {
			t.Fatalf("Lookup(%v) before SetResized: liberal %v, err %v; want strict", tu, b.Liberal, err)
		}
	}
	if err := k.SetResized(before, labels); !errors.Is(err, ErrNoLabels) {
		t.Errorf("SetResized on an entry created before the label rule: %v, want ErrNoLabels", err)
	}
	if b, err := k.Lookup(before); err != nil || !b.Liberal {
		t.Errorf("Lookup(%v) after SetResized without room for labels: liberal %v, err %v; want liberal", before, b.Liberal, err)
	}
	if err := k.SetResized(after, labels); err != nil {
		t.Fatalf("SetResized: %v", err)
	}
	for _, tu := range []Tuple{after, after.Reverse()} {
		b, err := k.Lookup(tu)
		if err != nil {
			t.Fatalf("Lookup(%v): %v", tu, err)
		}
		if diff := cmp.Diff(labels, b.Labels); diff != "" {
			t.Errorf("Lookup(%v) labels (-want +got):\n%s", tu, diff)
		}
		if !b.Liberal {
			t.Errorf("Lookup(%v): not liberal after SetResized", tu)
		}
	}
	// All bits are replaced, not or-ed.
	var other [LabelsSize]byte
	other[0] = 0x10
	if err := k.SetResized(after.Reverse(), other); err != nil {
		t.Fatalf("SetResized by the reply tuple: %v", err)
	}
	if b, err := k.Lookup(after); err != nil || b.Labels != other {
		t.Errorf("after replace: labels %x, err %v; want %x", b.Labels, err, other)
	}
	// Zero labels: the kernel omits CTA_LABELS; Lookup gives zero.
	if err := k.SetResized(after, [LabelsSize]byte{}); err != nil {
		t.Fatalf("SetResized zero: %v", err)
	}
	if b, err := k.Lookup(after); err != nil || b.Labels != [LabelsSize]byte{} {
		t.Errorf("after clearing: labels %x, err %v; want zero", b.Labels, err)
	}
	gone := Tuple{Src: netip.MustParseAddr("127.0.0.1"), Dst: netip.MustParseAddr("127.0.0.1"), SrcPort: 1, DstPort: 1}
	if err := k.SetResized(gone, labels); !errors.Is(err, ErrNoEntry) {
		t.Errorf("SetResized on an untracked tuple: %v, want ErrNoEntry", err)
	}
}

// TestCloseDuringRequest: Close returns at once while a request holds the
// socket in a blocked read (as a Lookup waiting for a lost answer); that
// read ends with an error within the reply timeout, and requests after
// Close fail.
func TestCloseDuringRequest(t *testing.T) {
	requireRoot(t)
	_, path := newNS(t)
	k := dialIn(t, path)
	// A request in progress: the lock held and a read with nothing to
	// come (no request was sent).
	k.mu.Lock()
	readDone := make(chan error, 1)
	go func() {
		defer k.mu.Unlock()
		k.io.buf = k.buf[:]
		if err := k.rc.Read(k.readFn); err != nil {
			readDone <- err
			return
		}
		readDone <- k.io.err
	}()
	time.Sleep(50 * time.Millisecond) // let the read block
	closed := make(chan error, 1)
	go func() { closed <- k.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(replyTimeout / 2):
		t.Fatal("Close blocked behind a request in progress")
	}
	select {
	case err := <-readDone:
		if !errors.Is(err, errReplyTimeout) {
			t.Errorf("the blocked read ended with %v, want errReplyTimeout", err)
		}
	case <-time.After(replyTimeout + 2*time.Second):
		t.Fatal("the blocked read did not end within the reply timeout")
	}
	if _, err := k.Lookup(Tuple{Src: netip.MustParseAddr("127.0.0.1"), Dst: netip.MustParseAddr("127.0.0.1"), SrcPort: 1, DstPort: 2}); !errors.Is(err, errClosed) {
		t.Errorf("Lookup after Close: %v, want errClosed", err)
	}
	if err := k.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestKernelSocketNotPolled: the request socket is blocking and not in the
// runtime's poller, so the answers the kernel queues on it wake no thread
// (the Kernel type's doc): a poller deadline cannot be set on it.
func TestKernelSocketNotPolled(t *testing.T) {
	requireRoot(t)
	ns, path := newNS(t)
	nft(t, ns, labelRule)
	k := dialIn(t, path)
	if err := k.f.SetReadDeadline(time.Now().Add(time.Second)); !errors.Is(err, os.ErrNoDeadline) {
		t.Errorf("SetReadDeadline on the request socket: %v, want os.ErrNoDeadline (not in the poller)", err)
	}
	var flags int
	if err := k.rc.Control(func(fd uintptr) { flags, _ = unix.FcntlInt(fd, unix.F_GETFL, 0) }); err != nil {
		t.Fatal(err)
	}
	if flags&unix.O_NONBLOCK != 0 {
		t.Errorf("the request socket is non-blocking (flags %#x)", flags)
	}
	// And it still answers: a lookup and an update of a real entry.
	tu := connect(t, path)
	var labels [LabelsSize]byte
	labels[3] = 0x42
	if err := k.SetResized(tu, labels); err != nil {
		t.Fatalf("SetResized: %v", err)
	}
	if b, err := k.Lookup(tu); err != nil || b.Labels != labels {
		t.Errorf("Lookup: labels %x, err %v; want %x", b.Labels, err, labels)
	}
}

// marshal is m as it goes on the wire, its header's length set (as
// netlink.Conn.Send sets it).
func marshal(m netlink.Message) ([]byte, error) {
	m.Header.Length = uint32(nlmsgHdrLen + len(m.Data))
	return m.MarshalBinary()
}

// send writes b to k's socket as one datagram, outside any request (the
// caller holds no lock: tests only).
func (k *Kernel) send(b []byte) error {
	var werr error
	if err := k.rc.Write(func(fd uintptr) bool { _, werr = unix.Write(int(fd), b); return true }); err != nil {
		return err
	}
	return werr
}

// TestSetResizedAllocs: SetResized on an existing entry, the request and
// its ACK over the real kernel, allocates nothing (it runs on the packet
// path, for every rewritten announcement); a miss still answers ErrNoEntry
// afterwards, and a request's stale ACK does not end the next one.
func TestSetResizedAllocs(t *testing.T) {
	requireRoot(t)
	ns, path := newNS(t)
	nft(t, ns, labelRule)
	k := dialIn(t, path)
	tu := connect(t, path)
	var labels [LabelsSize]byte
	labels[0] = 0x18
	var err error
	allocs := testing.AllocsPerRun(200, func() {
		labels[15]++
		if e := k.SetResized(tu, labels); e != nil && err == nil {
			err = e
		}
	})
	if err != nil {
		t.Fatalf("SetResized: %v", err)
	}
	if allocs != 0 {
		t.Errorf("SetResized: %v allocations per call, want 0", allocs)
	}
	if b, err := k.Lookup(tu.Reverse()); err != nil || b.Labels != labels || !b.Liberal {
		t.Errorf("Lookup after SetResized: labels %x liberal %v, err %v; want %x liberal", b.Labels, b.Liberal, err, labels)
	}
	// A request whose answer nobody read (as one that timed out): its ACK
	// waits in the socket and must not be taken for the next request's.
	stale, err := resizedRequest(tu, labels)
	if err != nil {
		t.Fatal(err)
	}
	stale.Header.Sequence = k.seq + 1000
	sb, err := marshal(stale)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.send(sb); err != nil {
		t.Fatal(err)
	}
	gone := Tuple{Src: netip.MustParseAddr("127.0.0.1"), Dst: netip.MustParseAddr("127.0.0.1"), SrcPort: 1, DstPort: 1}
	if err := k.SetResized(gone, labels); !errors.Is(err, ErrNoEntry) {
		t.Errorf("SetResized on an untracked tuple after a stale ACK: %v, want ErrNoEntry", err)
	}
}

// TestLookupAllocs: Lookup of an existing entry, over the real kernel,
// allocates nothing.
func TestLookupAllocs(t *testing.T) {
	requireRoot(t)
	ns, path := newNS(t)
	nft(t, ns, labelRule)
	k := dialIn(t, path)
	tu := connect(t, path)
	var (
		b   Binding
		err error
	)
	allocs := testing.AllocsPerRun(200, func() {
		var e error
		if b, e = k.Lookup(tu); e != nil && err == nil {
			err = e
		}
	})
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if allocs != 0 {
		t.Errorf("Lookup: %v allocations per call, want 0", allocs)
	}
	if b.Orig != tu || b.Reply != tu.Reverse() {
		t.Errorf("Lookup(%v): orig %v reply %v", tu, b.Orig, b.Reply)
	}
}

// BenchmarkSetResized is the per-packet cost ftpct pays when a packet
// changes a session's stored state: one ctnetlink update, answered by an ACK.
func BenchmarkSetResized(b *testing.B) {
	requireRoot(b)
	ns, path := newNS(b)
	nft(b, ns, labelRule)
	k := dialIn(b, path)
	tu := connect(b, path)
	var labels [LabelsSize]byte
	labels[0] = 0x18
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		labels[15] = byte(i)
		if err := k.SetResized(tu, labels); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSetResizedBatch measures what batching would save (engine
// BENCHMARKS.md): n SetResized requests for n connections in one sendmsg,
// then their n ACKs read; ns/op is per pass, ns/entry per connection.
// Compare BenchmarkSetResized, one request and its ACK per connection.
func BenchmarkSetResizedBatch(b *testing.B) {
	for _, n := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			requireRoot(b)
			ns, path := newNS(b)
			nft(b, ns, labelRule)
			k := dialIn(b, path)
			tus := make([]Tuple, n)
			for i := range tus {
				tus[i] = connect(b, path)
			}
			var labels [LabelsSize]byte
			labels[0] = 0x18
			var batch []byte
			buf := make([]byte, 8192)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				labels[15] = byte(i)
				batch = batch[:0]
				acked := map[uint32]bool{}
				for j, tu := range tus {
					m, err := resizedRequest(tu, labels)
					if err != nil {
						b.Fatal(err)
					}
					m.Header.Sequence = uint32(i*n + j + 1)
					mb, err := marshal(m)
					if err != nil {
						b.Fatal(err)
					}
					batch = append(batch, mb...)
					acked[m.Header.Sequence] = false
				}
				if err := k.send(batch); err != nil {
					b.Fatal(err)
				}
				for left := n; left > 0; {
					var nr int
					var rerr error
					if err := k.rc.Read(func(fd uintptr) bool { nr, rerr = unix.Read(int(fd), buf); return true }); err != nil || rerr != nil {
						b.Fatal(err, rerr)
					}
					for rest := buf[:nr]; len(rest) > 0; {
						h, _, next, err := nextMessage(rest)
						if err != nil {
							b.Fatal(err)
						}
						rest = next
						if done, ok := acked[h.Seq]; ok && !done && h.Type == nlmsgError {
							acked[h.Seq] = true
							left--
						}
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
		})
	}
}

// BenchmarkLookup is the GET ftpct makes once per new session.
func BenchmarkLookup(b *testing.B) {
	requireRoot(b)
	ns, path := newNS(b)
	nft(b, ns, labelRule)
	k := dialIn(b, path)
	tu := connect(b, path)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Lookup(tu); err != nil {
			b.Fatal(err)
		}
	}
}

// TestLabelsUnseenBeforeConntrack records why ftpct's divert chains (at raw
// priority, before conntrack) cannot select connections by their labels: a
// ct expression there finds no conntrack entry yet. Only chains after
// conntrack (priority > -200) see them.
func TestLabelsUnseenBeforeConntrack(t *testing.T) {
	requireRoot(t)
	ns, path := newNS(t)
	nft(t, ns, labelRule+"; add chain ip t raw { type filter hook output priority raw; }; add rule ip t raw tcp sport != 0 ct label 5 counter"+
		"; add chain ip t mangle { type filter hook output priority mangle; }; add rule ip t mangle tcp sport != 0 ct label 5 counter")
	k := dialIn(t, path)
	var c, a net.Conn
	if err := inNetNS(t, path, func() error {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer ln.Close()
		if c, err = net.Dial("tcp", ln.Addr().String()); err != nil {
			return err
		}
		a, err = ln.Accept()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	defer a.Close()
	l, r := c.LocalAddr().(*net.TCPAddr).AddrPort(), c.RemoteAddr().(*net.TCPAddr).AddrPort()
	tu := Tuple{Src: l.Addr().Unmap(), Dst: r.Addr().Unmap(), SrcPort: l.Port(), DstPort: r.Port()}
	var all [LabelsSize]byte
	for i := range all {
		all[i] = 0xff
	}
	if err := k.SetResized(tu, all); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
	}
	out := nsExec(t, ns, "nft", "list", "table", "ip", "t")
	raw := strings.Contains(out, "ct label 5 counter packets 0 ")
	mangleSaw := !strings.Contains(out, "priority mangle; policy accept;\n\t\ttcp sport != 0 ct label 5 counter packets 0 ")
	if !raw || !mangleSaw {
		t.Errorf("want no match at raw priority and matches at mangle priority:\n%s", out)
	}
}

// listenDestroyIn subscribes to DESTROY events in the namespace at path and
// runs the watcher until the test ends; gone and lost are called from its
// goroutine. A buf above 0 sets the socket's receive buffer (small: to lose
// events).
func listenDestroyIn(t *testing.T, path string, buf int, gone func(Tuple), lost func()) {
	t.Helper()
	var w *DestroyWatcher
	if err := inNetNS(t, path, func() (err error) {
		w, err = ListenDestroy()
		if err == nil && buf > 0 {
			err = w.ev.c.SetReadBuffer(buf) // SO_RCVBUF: the kernel doubles it, and keeps a minimum
		}
		return err
	}); err != nil {
		t.Fatalf("ListenDestroy: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, gone, lost) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// deleteEntry deletes the conntrack entry of TCP connection tu by hand.
func deleteEntry(t *testing.T, ns string, tu Tuple) {
	t.Helper()
	nsExec(t, ns, "conntrack", "-D", "-p", "tcp", "--orig-src", tu.Src.String(), "--orig-dst", tu.Dst.String(),
		"--sport", fmt.Sprint(tu.SrcPort), "--dport", fmt.Sprint(tu.DstPort))
}

// TestDestroyEvents: an entry deleted with conntrack -D is reported by its
// original tuple, and the kernel then has no entry for it (what
// engine.SessionGone checks before it forgets a session); other
// connections are not reported.
func TestDestroyEvents(t *testing.T) {
	requireRoot(t)
	ns, path := newNS(t)
	k := dialIn(t, path)
	gone := make(chan Tuple, 16)
	before := connect(t, path) // before any listener: no event cache (see below)
	listenDestroyIn(t, path, 0, func(tu Tuple) { gone <- tu }, func() { t.Error("events lost") })
	keep, del := connect(t, path), connect(t, path)
	// With net.netfilter.nf_conntrack_events = 2 (the default) an entry
	// made while nobody listened sends no DESTROY event: ftpct's slow
	// sweep finds such sessions (those of a restart, say).
	deleteEntry(t, ns, before)
	select {
	case got := <-gone:
		t.Logf("an entry made before the listener was reported too (%v): this kernel adds the event cache anyway", got)
	case <-time.After(300 * time.Millisecond):
	}
	deleteEntry(t, ns, del)
	select {
	case got := <-gone:
		if got != del {
			t.Errorf("DESTROY event tuple %v, want %v", got, del)
		}
		if _, err := k.Lookup(got); !errors.Is(err, ErrNoEntry) {
			t.Errorf("Lookup after the event: %v, want ErrNoEntry", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no DESTROY event within 5 s of conntrack -D")
	}
	select {
	case got := <-gone:
		t.Errorf("unexpected DESTROY event for %v", got)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := k.Lookup(keep); err != nil {
		t.Errorf("the other connection: %v", err)
	}
}

// TestDestroyEventsLost: when events come faster than they are read, the
// kernel drops some and the watcher reports it (ENOBUFS) and goes on: a
// later deletion is still reported.
func TestDestroyEventsLost(t *testing.T) {
	requireRoot(t)
	ns, path := newNS(t)
	const many = 300
	var (
		mu    sync.Mutex
		seen  = map[Tuple]bool{}
		lostN int
	)
	block := make(chan struct{})
	listenDestroyIn(t, path, 1, func(tu Tuple) {
		<-block // a slow reader: the socket's small buffer overflows
		mu.Lock()
		seen[tu] = true
		mu.Unlock()
	}, func() {
		mu.Lock()
		lostN++
		mu.Unlock()
	})
	// Made after the listener: with net.netfilter.nf_conntrack_events = 2
	// (the default) the kernel gives an entry its event cache only while a
	// listener exists, and entries made before send no DESTROY event.
	for range many {
		connect(t, path)
	}
	nsExec(t, ns, "conntrack", "-F") // 300 DESTROY events at once
	close(block)
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		l := lostN
		mu.Unlock()
		if l > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	last := connect(t, path)
	deleteEntry(t, ns, last)
	for {
		mu.Lock()
		ok, l, n := seen[last], lostN, len(seen)
		mu.Unlock()
		if ok {
			if l == 0 {
				t.Errorf("%d of %d events read and none reported lost", n, many+1)
			}
			t.Logf("%d of %d events read, %d losses reported", n, many+1, l)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deletion after the loss was not reported (losses reported: %d, events read: %d)", l, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// markRule gives the new connections of the namespace conntrack mark bit
// 0x100 (as ftpct's holes mark data connections), from the output chain:
// before conntrack confirms the entry and reports it.
const markRule = "add rule ip t out ct state new ct mark set ct mark or 0x100"

// listenNewIn subscribes to NEW events of connections marked 0x100 in the
// namespace at path; the watcher is closed when the test ends (a Run the
// test starts returns then).
func listenNewIn(t *testing.T, path string, buf int, seen func(Binding), lost func()) *NewWatcher {
	t.Helper()
	var w *NewWatcher
	if err := inNetNS(t, path, func() (err error) {
		w, err = ListenNew(0x100, seen, lost)
		if err == nil && buf > 0 {
			err = w.ev.c.SetReadBuffer(buf)
		}
		return err
	}); err != nil {
		t.Fatalf("ListenNew: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// TestNewEvents: Sync hands over every marked connection the kernel has
// confirmed so far, read or not by Run, and no unmarked one. The engine
// relies on it to tell a used expectation from an evicted one.
func TestNewEvents(t *testing.T) {
	requireRoot(t)
	ns, path := newNS(t)
	var (
		mu   sync.Mutex
		seen []Tuple
	)
	w := listenNewIn(t, path, 0, func(b Binding) {
		if b.Mark&0x100 == 0 {
			t.Errorf("connection %v with mark %#x reported", b.Orig, b.Mark)
		}
		mu.Lock()
		seen = append(seen, b.Orig)
		mu.Unlock()
	}, func() { t.Error("events lost") })
	taken := func() []Tuple {
		mu.Lock()
		defer mu.Unlock()
		s := seen
		seen = nil
		return s
	}

	unmarked := connect(t, path)
	nft(t, ns, markRule)
	marked := connect(t, path)
	w.Sync() // no Run yet: Sync reads what the kernel queued
	if diff := cmp.Diff([]Tuple{marked}, taken(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("after Sync, without Run (-want +got):\n%s (unmarked: %v)", diff, unmarked)
	}
	w.Sync()
	if got := taken(); len(got) != 0 {
		t.Errorf("a second Sync reported %v again", got)
	}

	// With Run reading too, each connection is reported once, by either,
	// by the time Sync returns.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var all []Tuple
	for i := range 50 {
		tu := connect(t, path)
		w.Sync()
		got := taken()
		if len(got) != 1 || got[0] != tu {
			t.Fatalf("connection %d: reported %v by the time Sync returned, want [%v]", i, got, tu)
		}
		all = append(all, got...)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	t.Logf("%d connections reported in order", len(all))
}

// TestNewEventsLost: events the kernel dropped (ENOBUFS) are reported to
// lost, by Sync as by Run, and the watcher goes on.
func TestNewEventsLost(t *testing.T) {
	requireRoot(t)
	ns, path := newNS(t)
	nft(t, ns, markRule)
	var (
		seen = map[Tuple]bool{}
		lost int
	)
	w := listenNewIn(t, path, 1, func(b Binding) { seen[b.Orig] = true }, func() { lost++ })
	for range 300 { // nobody reads: the small buffer overflows
		connect(t, path)
	}
	w.Sync()
	if lost == 0 {
		t.Errorf("%d of 300 events read and no loss reported", len(seen))
	}
	last := connect(t, path)
	w.Sync()
	if !seen[last] {
		t.Errorf("the connection after the loss was not reported (losses: %d, events read: %d)", lost, len(seen))
	}
	t.Logf("%d of 301 events read, %d losses reported", len(seen), lost)
}
