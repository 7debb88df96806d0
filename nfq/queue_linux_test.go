//go:build linux

package nfq

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// wait bounds every wait for something that must happen.
const wait = 5 * time.Second

// fakeRead is what one read of a fakeSock returns.
type fakeRead struct {
	b   []byte
	err error
}

// fakeSock is a netlink socket without a kernel: reads return what the test
// queues on in, writes are recorded, and the bind request is answered with
// bindErrno (unless noAck).
type fakeSock struct {
	in        chan fakeRead
	bindErrno syscall.Errno
	noAck     bool
	// record keeps a copy of every write in writes; without it a write
	// only signals wrote, allocating nothing.
	record   bool
	writeErr error

	wrote    chan struct{}
	mu       sync.Mutex
	writes   [][]byte
	stopped  chan struct{}
	stopOnce sync.Once
	next     *fakeRead // taken from in, for the next read (a read's error after datagrams)
	reads    atomic.Int32
	closes   atomic.Int32
	tb       testing.TB
}

func newFakeSock(tb testing.TB) *fakeSock {
	return &fakeSock{
		in:      make(chan fakeRead, 64),
		record:  true,
		wrote:   make(chan struct{}, 1024),
		stopped: make(chan struct{}),
		tb:      tb,
	}
}

// read returns the first queued read, and, as recvmmsg does, the
// datagrams queued behind it, up to len(bufs) in all, stopping before an
// error (returned by the next read).
func (f *fakeSock) read(bufs [][]byte, ns []int) (int, error) {
	f.reads.Add(1)
	select {
	case <-f.stopped: // a deadline in the past wins over queued data
		return 0, os.ErrDeadlineExceeded
	default:
	}
	var r fakeRead
	if f.next != nil {
		r, f.next = *f.next, nil
	} else {
		select {
		case r = <-f.in:
		case <-f.stopped:
			return 0, os.ErrDeadlineExceeded
		}
	}
	if r.err != nil {
		return 0, r.err
	}
	ns[0] = copy(bufs[0], r.b)
	n := 1
	for n < len(bufs) {
		select {
		case r := <-f.in:
			if r.err != nil {
				f.next = &r
				return n, nil
			}
			ns[n] = copy(bufs[n], r.b)
			n++
		default:
			return n, nil
		}
	}
	return n, nil
}

// write records b and signals wrote once per netlink message in it.
func (f *fakeSock) write(b []byte) error {
	if f.record {
		f.mu.Lock()
		f.writes = append(f.writes, bytes.Clone(b))
		first := len(f.writes) == 1
		f.mu.Unlock()
		if first && !f.noAck {
			// The bind request: answer it.
			f.in <- fakeRead{b: errorMsg(f.tb, bindSeq, f.bindErrno)}
		}
	}
	for len(b) > 0 {
		_, _, rest, err := nextMessage(b)
		if err != nil {
			f.tb.Errorf("write of a malformed message: %v", err)
			break
		}
		b = rest
		f.wrote <- struct{}{}
	}
	return f.writeErr
}

func (f *fakeSock) interrupt() { f.stopOnce.Do(func() { close(f.stopped) }) }

func (f *fakeSock) close() error {
	f.closes.Add(1)
	return nil
}

// verdicts decodes every message written after the bind request.
func (f *fakeSock) verdicts(tb testing.TB) []decodedVerdict {
	tb.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var vs []decodedVerdict
	for _, w := range f.writes[1:] {
		for len(w) > 0 {
			_, _, rest, err := nextMessage(w)
			if err != nil {
				tb.Fatalf("written: %v", err)
			}
			vs = append(vs, decodeVerdict(tb, w[:len(w)-len(rest)]))
			w = rest
		}
	}
	return vs
}

// waitWrites waits until n messages were written in all.
func (f *fakeSock) waitWrites(tb testing.TB, n int) {
	tb.Helper()
	timeout := time.After(wait)
	for range n {
		select {
		case <-f.wrote:
		case <-timeout:
			tb.Fatalf("fewer than %d writes within %v", n, wait)
		}
	}
}

// startFake binds a queue over f; the queue is closed by t.Cleanup.
func startFake(tb testing.TB, ctx context.Context, f *fakeSock, h Handler) *Queue {
	tb.Helper()
	return startFakeMark(tb, ctx, f, 0, h)
}

// startFakeMark is startFake with Config.Mark mark.
func startFakeMark(tb testing.TB, ctx context.Context, f *fakeSock, mark uint32, h Handler) *Queue {
	tb.Helper()
	return startFakeMarks(tb, ctx, f, mark, 0, h)
}

// startFakeMarks is startFake with Config.Mark mark and Config.HoldMark hold.
func startFakeMarks(tb testing.TB, ctx context.Context, f *fakeSock, mark, hold uint32, h Handler) *Queue {
	tb.Helper()
	q, err := start(ctx, f, Config{Num: 7, MaxQueueLen: 100, ReadBuffer: 1 << 20, Mark: mark, HoldMark: hold}, h)
	if err != nil {
		tb.Fatalf("start: %v", err)
	}
	tb.Cleanup(func() { q.Close() })
	return q
}

func doneWithin(tb testing.TB, q *Queue) {
	tb.Helper()
	select {
	case <-q.Done():
	case <-time.After(wait):
		tb.Fatalf("Done() not closed within %v", wait)
	}
}

type counters struct{ Packets, Modified, Dropped, VerdictErrors, Overruns, Malformed uint64 }

func countersOf(q *Queue) counters {
	s := q.Stats()
	return counters{s.Packets.Load(), s.Modified.Load(), s.Dropped.Load(), s.VerdictErrors.Load(), s.Overruns.Load(), s.Malformed.Load()}
}

func accept(Packet) (Verdict, []byte) { return Accept, nil }

func TestBind(t *testing.T) {
	tests := []struct {
		name string
		sock func(*fakeSock)
		// before is read before the kernel's answer to the bind.
		before  []fakeRead
		cancel  bool
		wantErr error
		// wantPackets is how many packets the Handler saw.
		wantPackets uint64
	}{
		{name: "acknowledged"},
		{
			name:    "refused",
			sock:    func(f *fakeSock) { f.bindErrno = syscall.EPERM },
			wantErr: syscall.EPERM,
		},
		{
			name:    "queue exists",
			sock:    func(f *fakeSock) { f.bindErrno = syscall.EBUSY },
			wantErr: syscall.EBUSY,
		},
		{
			// The queue is live before its acknowledgement is sent:
			// a packet may come first and must get its verdict.
			name:        "packet before the acknowledgement",
			before:      []fakeRead{{b: packetMsg(t, 1, 3, []byte{0x45})}},
			wantPackets: 1,
		},
		{
			// The kernel refused that packet's verdict: its error is
			// not the answer to the bind.
			name:        "verdict error before the acknowledgement",
			before:      []fakeRead{{b: packetMsg(t, 5, 3, []byte{0x45})}, {b: errorMsg(t, 5, syscall.ENOENT)}},
			wantPackets: 1,
		},
		{
			name:    "read fails before the acknowledgement",
			sock:    func(f *fakeSock) { f.noAck = true },
			before:  []fakeRead{{err: syscall.EIO}},
			wantErr: syscall.EIO,
		},
		{
			name:    "context cancelled",
			sock:    func(f *fakeSock) { f.noAck = true },
			cancel:  true,
			wantErr: context.Canceled,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeSock(t)
			if tc.sock != nil {
				tc.sock(f)
			}
			for _, r := range tc.before {
				f.in <- r
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				cancel()
			}
			var handled atomic.Uint64
			var q *Queue
			var err error
			started := make(chan struct{})
			go func() {
				defer close(started)
				q, err = start(ctx, f, Config{Num: 300, MaxQueueLen: 8192}, func(Packet) (Verdict, []byte) {
					handled.Add(1)
					return Accept, nil
				})
			}()
			select {
			case <-started:
			case <-time.After(wait):
				t.Fatalf("start did not return within %v", wait)
			}
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("start = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				if got := f.closes.Load(); got != 1 {
					t.Errorf("socket closed %d times after a failed bind, want 1", got)
				}
			} else {
				if err := q.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}
			want, err := configMessage(bindSeq, 300, 8192)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, f.writes[0]); diff != "" {
				t.Errorf("bind request (-want +got):\n%s", diff)
			}
			if got := handled.Load(); got != tc.wantPackets {
				t.Errorf("Handler called %d times, want %d", got, tc.wantPackets)
			}
		})
	}
}

func TestBindError(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		netAdmin bool
		want     error
		wantText string
	}{
		{"EBUSY", syscall.EBUSY, true, ErrQueueBusy, "bind queue 5: NFQUEUE already bound"},
		{"EPERM with CAP_NET_ADMIN", syscall.EPERM, true, ErrQueueBusy, "bind queue 5: NFQUEUE already bound"},
		{"EPERM without CAP_NET_ADMIN", syscall.EPERM, false, syscall.EPERM, "needs root or CAP_NET_ADMIN"},
		{"other", syscall.EINVAL, true, syscall.EINVAL, "bind queue 5: invalid argument"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := bindError(5, tc.err, tc.netAdmin)
			if !errors.Is(got, tc.want) || !strings.Contains(got.Error(), tc.wantText) {
				t.Errorf("bindError = %q, want one wrapping %v and containing %q", got, tc.want, tc.wantText)
			}
		})
	}
}

func TestVerdicts(t *testing.T) {
	ip := []byte{0x45, 0, 0, 21, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 'x'}
	tests := []struct {
		name    string
		verdict Verdict
		payload []byte
		want    decodedVerdict
		wantC   counters
	}{
		{
			name:    "accept",
			verdict: Accept,
			want:    decodedVerdict{Verdict: nfAccept},
			wantC:   counters{Packets: 1},
		},
		{
			name:    "drop",
			verdict: Drop,
			want:    decodedVerdict{Verdict: nfDrop},
			wantC:   counters{Packets: 1, Dropped: 1},
		},
		{
			name:    "drop ignores a payload",
			verdict: Drop,
			payload: []byte{1},
			want:    decodedVerdict{Verdict: nfDrop},
			wantC:   counters{Packets: 1, Dropped: 1},
		},
		{
			name:    "modified, longer",
			verdict: Accept,
			payload: append(bytes.Clone(ip), "yz"...),
			want:    decodedVerdict{Verdict: nfAccept, Payload: append(bytes.Clone(ip), "yz"...), HasPload: true},
			wantC:   counters{Packets: 1, Modified: 1},
		},
		{
			name:    "modified, empty",
			verdict: Accept,
			payload: []byte{},
			want:    decodedVerdict{Verdict: nfAccept, Payload: []byte{}, HasPload: true},
			wantC:   counters{Packets: 1, Modified: 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeSock(t)
			var got []Packet
			q := startFake(t, context.Background(), f, func(p Packet) (Verdict, []byte) {
				got = append(got, Packet{ID: p.ID, Hook: p.Hook, Data: bytes.Clone(p.Data)})
				return tc.verdict, tc.payload
			})
			f.in <- fakeRead{b: packetMsg(t, 0x10203, 1, ip)}
			f.waitWrites(t, 2)
			if err := q.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if diff := cmp.Diff([]Packet{{ID: 0x10203, Hook: 1, Data: ip}}, got); diff != "" {
				t.Errorf("packets handled (-want +got):\n%s", diff)
			}
			tc.want.Type, tc.want.Flags, tc.want.Seq, tc.want.ID = typeVerdict, 1, 0x10203, 0x10203
			tc.want.NfGen = []byte{0, 0, 0, 7}
			if diff := cmp.Diff([]decodedVerdict{tc.want}, f.verdicts(t)); diff != "" {
				t.Errorf("verdicts sent (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantC, countersOf(q)); diff != "" {
				t.Errorf("Stats() (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMarkVerdicts: AcceptMark sets Config.Mark's bits and keeps the
// packet's own; other verdicts carry no mark; Verdict refuses AcceptMark.
func TestMarkVerdicts(t *testing.T) {
	ip := []byte{0x45, 0, 0, 20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	tests := []struct {
		name    string
		msg     []byte
		verdict Verdict
		payload []byte
		want    decodedVerdict
	}{
		{
			name:    "unmarked packet",
			msg:     packetMsg(t, 1, 0, ip),
			verdict: AcceptMark,
			want:    decodedVerdict{Verdict: nfAccept, Mark: 0x00100000, HasMark: true},
		},
		{
			name:    "marked packet keeps its bits",
			msg:     markedPacketMsg(t, 1, 0, 0x80000003, ip),
			verdict: AcceptMark,
			want:    decodedVerdict{Verdict: nfAccept, Mark: 0x80100003, HasMark: true},
		},
		{
			name:    "bit already set",
			msg:     markedPacketMsg(t, 1, 0, 0x00100000, ip),
			verdict: AcceptMark,
			payload: []byte{1, 2},
			want:    decodedVerdict{Verdict: nfAccept, Mark: 0x00100000, HasMark: true, Payload: []byte{1, 2}, HasPload: true},
		},
		{
			name:    "accept leaves the mark alone",
			msg:     markedPacketMsg(t, 1, 0, 0x80000003, ip),
			verdict: Accept,
			want:    decodedVerdict{Verdict: nfAccept},
		},
		{
			name:    "repeat sets the hold bits, drops the payload",
			msg:     markedPacketMsg(t, 1, 0, 0x80000003, ip),
			verdict: Repeat,
			payload: []byte{1, 2},
			want:    decodedVerdict{Verdict: nfRepeat, Mark: 0x80200003, HasMark: true},
		},
		{
			name:    "accept clears the hold bits",
			msg:     markedPacketMsg(t, 1, 0, 0x80200003, ip),
			verdict: Accept,
			want:    decodedVerdict{Verdict: nfAccept, Mark: 0x80000003, HasMark: true},
		},
		{
			name:    "marked accept clears the hold bits",
			msg:     markedPacketMsg(t, 1, 0, 0x00200000, ip),
			verdict: AcceptMark,
			want:    decodedVerdict{Verdict: nfAccept, Mark: 0x00100000, HasMark: true},
		},
		{
			name:    "accept-hold keeps them",
			msg:     markedPacketMsg(t, 1, 0, 0x00200000, ip),
			verdict: AcceptHold,
			payload: []byte{1, 2},
			want:    decodedVerdict{Verdict: nfAccept, Mark: 0x00200000, HasMark: true, Payload: []byte{1, 2}, HasPload: true},
		},
		{
			name:    "accept-mark-hold sets both",
			msg:     markedPacketMsg(t, 1, 0, 0x00200001, ip),
			verdict: AcceptMarkHold,
			want:    decodedVerdict{Verdict: nfAccept, Mark: 0x00300001, HasMark: true},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeSock(t)
			q := startFakeMarks(t, context.Background(), f, 0x00100000, 0x00200000, func(p Packet) (Verdict, []byte) { return tc.verdict, tc.payload })
			f.in <- fakeRead{b: tc.msg}
			f.waitWrites(t, 2)
			if err := q.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			tc.want.Type, tc.want.Flags, tc.want.Seq, tc.want.ID = typeVerdict, 1, 1, 1
			tc.want.NfGen = []byte{0, 0, 0, 7}
			if diff := cmp.Diff([]decodedVerdict{tc.want}, f.verdicts(t)); diff != "" {
				t.Errorf("verdicts sent (-want +got):\n%s", diff)
			}
			wantMarked, wantRepeated := uint64(0), uint64(0)
			switch tc.verdict {
			case AcceptMark, AcceptMarkHold:
				wantMarked = 1
			case Repeat:
				wantRepeated = 1
			}
			if got := q.Stats().Marked.Load(); got != wantMarked {
				t.Errorf("Stats().Marked = %d, want %d", got, wantMarked)
			}
			if got := q.Stats().Repeated.Load(); got != wantRepeated {
				t.Errorf("Stats().Repeated = %d, want %d", got, wantRepeated)
			}
		})
	}
	f := newFakeSock(t)
	q := startFakeMark(t, context.Background(), f, 0x00100000, accept)
	for _, v := range []Verdict{AcceptMark, Repeat, AcceptHold, AcceptMarkHold} {
		if err := q.Verdict(1, v, nil); !errors.Is(err, ErrVerdict) {
			t.Errorf("Verdict(%v) = %v, want ErrVerdict", v, err)
		}
	}
}

func TestReadErrors(t *testing.T) {
	pkt := func(id uint32) fakeRead { return fakeRead{b: packetMsg(t, id, 3, []byte{0x45, 0, 0, 1})} }
	tests := []struct {
		name     string
		reads    []fakeRead
		writeErr error
		// wantIDs are the packets that got a verdict, in order.
		wantIDs []uint32
		// stops: the reader stops by itself, with Err wrapping wantErr.
		stops   bool
		wantErr error
		wantC   counters
	}{
		{
			name:    "ENOBUFS counted, reading goes on",
			reads:   []fakeRead{pkt(1), {err: syscall.ENOBUFS}, {err: syscall.ENOBUFS}, pkt(2)},
			wantIDs: []uint32{1, 2},
			wantC:   counters{Packets: 2, Overruns: 2},
		},
		{
			name:    "closed socket stops the reader",
			reads:   []fakeRead{pkt(1), {err: net.ErrClosed}, pkt(2)},
			wantIDs: []uint32{1},
			stops:   true,
			wantErr: net.ErrClosed,
			wantC:   counters{Packets: 1},
		},
		{
			name:    "other error stops the reader",
			reads:   []fakeRead{{err: syscall.EIO}, pkt(2)},
			stops:   true,
			wantErr: syscall.EIO,
		},
		{
			name:    "refused verdict counted, reading goes on",
			reads:   []fakeRead{pkt(1), {b: errorMsg(t, 1, syscall.ENOENT)}, {b: errorMsg(t, 1, 0)}, pkt(2)},
			wantIDs: []uint32{1, 2},
			wantC:   counters{Packets: 2, VerdictErrors: 1},
		},
		{
			name:     "failed verdict write counted",
			reads:    []fakeRead{pkt(1), pkt(2)},
			writeErr: syscall.EMSGSIZE,
			wantIDs:  []uint32{1, 2},
			wantC:    counters{Packets: 2, VerdictErrors: 2},
		},
		{
			name: "malformed messages counted, reading goes on",
			reads: []fakeRead{
				{b: []byte{1, 2, 3}},
				{b: nlMessage(t, typePacket, 0, 0, 2, 7, attr{attrPayload, []byte{0x45}})},
				pkt(2),
			},
			wantIDs: []uint32{2},
			wantC:   counters{Packets: 1, Malformed: 2},
		},
		{
			name:    "other message types ignored",
			reads:   []fakeRead{{b: nlMessage(t, 0x0301, 0, 0, 2, 7)}, {b: nlMessage(t, 3 /* NLMSG_DONE */, 0, 0, 0, 0)}, pkt(2)},
			wantIDs: []uint32{2},
			wantC:   counters{Packets: 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeSock(t)
			var logs bytes.Buffer
			q, err := start(context.Background(), f, Config{Num: 7, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, accept)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { q.Close() })
			f.writeErr = tc.writeErr
			for _, r := range tc.reads {
				f.in <- r
			}
			f.waitWrites(t, 1+len(tc.wantIDs))
			if tc.stops {
				doneWithin(t, q)
				// A reader that kept going on the error would have
				// read the packet queued after it.
				if got := len(f.in); got != 1 && tc.wantErr != nil {
					t.Errorf("%d reads left unread after the reader stopped, want 1", got)
				}
			} else {
				// Every queued read was taken before Close.
				deadline := time.Now().Add(wait)
				for len(f.in) > 0 && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond)
				}
				if err := q.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}
			if !errors.Is(q.Err(), tc.wantErr) || (q.Err() == nil) != (tc.wantErr == nil) {
				t.Errorf("Err() = %v, want %v", q.Err(), tc.wantErr)
			}
			if tc.wantErr != nil && !strings.Contains(q.Err().Error(), "nfqueue 7") {
				t.Errorf("Err() = %q, does not name the queue", q.Err())
			}
			var ids []uint32
			for _, v := range f.verdicts(t) {
				ids = append(ids, v.ID)
			}
			if diff := cmp.Diff(tc.wantIDs, ids); diff != "" {
				t.Errorf("verdicts for packets (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantC, countersOf(q)); diff != "" {
				t.Errorf("Stats() (-want +got):\n%s", diff)
			}
			if got := f.closes.Load(); got != 1 {
				t.Errorf("socket closed %d times, want 1", got)
			}
			// Each kind of complaint is logged once, however often it happens.
			for _, kind := range []string{"refused a verdict", "unreadable message"} {
				if n := strings.Count(logs.String(), kind); n > 1 {
					t.Errorf("%q logged %d times, want at most once:\n%s", kind, n, logs.String())
				}
			}
		})
	}
}

func TestClose(t *testing.T) {
	tests := []struct {
		name string
		stop func(tb testing.TB, q *Queue, cancel context.CancelFunc)
	}{
		{
			name: "Close twice",
			stop: func(tb testing.TB, q *Queue, _ context.CancelFunc) {
				for i := range 2 {
					if err := q.Close(); err != nil {
						tb.Errorf("Close #%d: %v", i+1, err)
					}
				}
			},
		},
		{
			name: "cancel context",
			stop: func(tb testing.TB, q *Queue, cancel context.CancelFunc) {
				cancel()
				doneWithin(tb, q)
			},
		},
		{
			name: "concurrent Close",
			stop: func(tb testing.TB, q *Queue, _ context.CancelFunc) {
				var wg sync.WaitGroup
				for range 4 {
					wg.Go(func() {
						if err := q.Close(); err != nil {
							tb.Errorf("Close: %v", err)
						}
					})
				}
				wg.Wait()
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeSock(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			q := startFake(t, ctx, f, accept)
			// The reader is blocked in a read: Close must interrupt it.
			deadline := time.Now().Add(wait)
			for f.reads.Load() < 2 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			stopped := make(chan struct{})
			go func() { tc.stop(t, q, cancel); close(stopped) }()
			select {
			case <-stopped:
			case <-time.After(wait):
				t.Fatalf("not stopped within %v", wait)
			}
			doneWithin(t, q)
			if q.Err() != nil {
				t.Errorf("Err() = %v after a requested stop, want nil", q.Err())
			}
			if got := f.closes.Load(); got != 1 {
				t.Errorf("socket closed %d times, want 1", got)
			}
			// A packet that arrives now is not read.
			f.in <- fakeRead{b: packetMsg(t, 1, 3, nil)}
			if got := q.Stats().Packets.Load(); got != 0 {
				t.Errorf("Stats().Packets = %d, want 0", got)
			}
		})
	}
}

// TestPacketPathAllocs checks that a packet costs no allocation from the
// read to the verdict, the reader's loop and both messages included.
func TestPacketPathAllocs(t *testing.T) {
	ip := bytes.Repeat([]byte{0x45}, 60)
	modified := bytes.Repeat([]byte{0x46}, 63)
	tests := []struct {
		name    string
		verdict Verdict
		payload []byte
	}{
		{"accept", Accept, nil},
		{"drop", Drop, nil},
		{"modified", Accept, modified},
		{"marked", AcceptMark, modified},
		{"repeat", Repeat, nil},
		{"held and marked", AcceptMarkHold, modified},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeSock(t)
			q := startFakeMark(t, context.Background(), f, 0x00100000, func(p Packet) (Verdict, []byte) { return tc.verdict, tc.payload })
			f.waitWrites(t, 1)
			f.record = false // no copies from here on; the reader has not written since
			msg := fakeRead{b: markedPacketMsg(t, 1, 3, 0x2, ip)}
			var timeout bool
			timer := time.NewTimer(4 * wait)
			defer timer.Stop()
			allocs := testing.AllocsPerRun(1000, func() {
				if timeout {
					return
				}
				f.in <- msg
				select {
				case <-f.wrote:
				case <-timer.C:
					timeout = true
				}
			})
			if timeout {
				t.Fatal("no verdict within " + wait.String())
			}
			if allocs != 0 {
				t.Errorf("%v allocations per packet, want 0", allocs)
			}
			if got := q.Stats().Packets.Load(); got < 1000 {
				t.Errorf("Stats().Packets = %d, want at least 1000", got)
			}
		})
	}
}

// BenchmarkPacketPath measures nfq's own work per packet: the reader's loop,
// decoding, the Handler call and encoding the verdict, without a kernel.
func BenchmarkPacketPath(b *testing.B) {
	for _, bc := range []struct {
		name    string
		payload []byte
	}{
		{"accept", nil},
		{"modify", bytes.Repeat([]byte{0x46}, 60)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := newFakeSock(b)
			startFake(b, context.Background(), f, func(p Packet) (Verdict, []byte) { return Accept, bc.payload })
			f.waitWrites(b, 1)
			f.record = false
			msg := fakeRead{b: packetMsg(b, 1, 3, bytes.Repeat([]byte{0x45}, 60))}
			b.ReportAllocs()
			for b.Loop() {
				f.in <- msg
				<-f.wrote
			}
		})
	}
}

// TestDeferredVerdicts: a Handler leaves packets Pending; the reader goes
// on with the next packets, and Verdict gives the pending ones theirs
// later, from another goroutine, by packet id.
func TestDeferredVerdicts(t *testing.T) {
	ip := []byte{0x45, 0, 0, 21, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 'x'}
	mod := append(bytes.Clone(ip), "yz"...)
	tests := []struct {
		name string
		// later are the verdicts given with Verdict for packets 1 and 3
		// (packet 2 is decided by the Handler at once).
		later   [2]Verdict
		payload []byte
		want    []decodedVerdict
		wantC   counters
		wantDef uint64
	}{
		{
			name:  "accept later",
			later: [2]Verdict{Accept, Accept},
			want: []decodedVerdict{
				{ID: 2, Verdict: nfAccept}, {ID: 3, Verdict: nfAccept}, {ID: 1, Verdict: nfAccept},
			},
			wantC:   counters{Packets: 3},
			wantDef: 2,
		},
		{
			name:    "modified and dropped later",
			later:   [2]Verdict{Accept, Drop},
			payload: mod,
			want: []decodedVerdict{
				{ID: 2, Verdict: nfAccept}, {ID: 3, Verdict: nfDrop}, {ID: 1, Verdict: nfAccept, Payload: mod, HasPload: true},
			},
			wantC:   counters{Packets: 3, Modified: 1, Dropped: 1},
			wantDef: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeSock(t)
			pending := make(chan uint32, 2)
			q := startFake(t, context.Background(), f, func(p Packet) (Verdict, []byte) {
				if p.ID == 2 {
					return Accept, nil
				}
				pending <- p.ID
				return Pending, nil
			})
			for id := uint32(1); id <= 3; id++ {
				f.in <- fakeRead{b: packetMsg(t, id, 1, ip)}
			}
			f.waitWrites(t, 2) // the bind and packet 2's verdict
			errc := make(chan error, 2)
			go func() {
				// The later packet first: verdicts need not follow arrival.
				a, b := <-pending, <-pending
				errc <- q.Verdict(b, tc.later[1], nil)
				errc <- q.Verdict(a, tc.later[0], tc.payload)
			}()
			for range 2 {
				if err := <-errc; err != nil {
					t.Fatalf("Verdict: %v", err)
				}
			}
			f.waitWrites(t, 2)
			if err := q.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			for i := range tc.want {
				w := &tc.want[i]
				w.Type, w.Flags, w.Seq = typeVerdict, 1, w.ID
				w.NfGen = []byte{0, 0, 0, 7}
			}
			if diff := cmp.Diff(tc.want, f.verdicts(t)); diff != "" {
				t.Errorf("verdicts sent (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantC, countersOf(q)); diff != "" {
				t.Errorf("Stats() (-want +got):\n%s", diff)
			}
			if got := q.Stats().Deferred.Load(); got != tc.wantDef {
				t.Errorf("Deferred = %d, want %d", got, tc.wantDef)
			}
		})
	}
}

// TestVerdictAfterClose: a verdict for a packet the closed queue's kernel
// side dropped fails with ErrClosed and writes nothing; a Pending verdict
// is refused.
func TestVerdictAfterClose(t *testing.T) {
	f := newFakeSock(t)
	q := startFake(t, context.Background(), f, accept)
	if err := q.Verdict(1, Pending, nil); !errors.Is(err, ErrVerdict) {
		t.Errorf("Verdict(Pending) = %v, want %v", err, ErrVerdict)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := q.Verdict(1, Accept, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Verdict after Close = %v, want %v", err, ErrClosed)
	}
	if got := f.verdicts(t); len(got) != 0 {
		t.Errorf("verdicts written: %v, want none", got)
	}
}

// TestBatchedVerdicts: the datagrams one read returns get their verdicts in
// one write, in order, split only where the write would grow past flushAt;
// a verdict given with Verdict meanwhile is written after the ones the
// reader decided before it.
func TestBatchedVerdicts(t *testing.T) {
	ip := []byte{0x45, 0, 0, 21, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 'x'}
	big := bytes.Repeat([]byte{0x46}, 10<<10)
	tests := []struct {
		name string
		// verdicts of packets 2, 3 and 4, read together (packet 1, read
		// alone, is accepted). Pending ones get Accept with Verdict, from
		// another goroutine, before packet 4 is decided.
		verdicts [3]Verdict
		payload  []byte // of every accepted packet of the batch
		// wantWrites are the packet ids of each write after the bind.
		wantWrites [][]uint32
	}{
		{
			name:       "accepts in one write",
			verdicts:   [3]Verdict{Accept, Drop, Accept},
			wantWrites: [][]uint32{{1}, {2, 3, 4}},
		},
		{
			name:       "pending verdict after the ones decided before",
			verdicts:   [3]Verdict{Accept, Pending, Accept},
			wantWrites: [][]uint32{{1}, {2, 3}, {4}},
		},
		{
			name:       "split at flushAt",
			verdicts:   [3]Verdict{Accept, Accept, Accept},
			payload:    big,
			wantWrites: [][]uint32{{1}, {2}, {3}, {4}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeSock(t)
			in1, gate := make(chan struct{}), make(chan struct{})
			given := make(chan error, 1)
			var q *Queue
			q = startFake(t, context.Background(), f, func(p Packet) (Verdict, []byte) {
				if p.ID == 1 {
					close(in1)
					<-gate // until 2, 3 and 4 are queued
					return Accept, nil
				}
				if p.ID == 4 && tc.verdicts[1] == Pending {
					if err := <-given; err != nil {
						t.Errorf("Verdict: %v", err)
					}
				}
				v := tc.verdicts[p.ID-2]
				switch v {
				case Pending:
					go func() { given <- q.Verdict(p.ID, Accept, nil) }()
				case Accept:
					return v, tc.payload
				}
				return v, nil
			})
			f.waitWrites(t, 1)
			f.in <- fakeRead{b: packetMsg(t, 1, 1, ip)}
			<-in1 // read alone
			for id := uint32(2); id <= 4; id++ {
				f.in <- fakeRead{b: packetMsg(t, id, 1, ip)}
			}
			close(gate)
			f.waitWrites(t, 4)
			if err := q.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			var got [][]uint32
			f.mu.Lock()
			for _, w := range f.writes[1:] {
				var ids []uint32
				for len(w) > 0 {
					h, _, rest, err := nextMessage(w)
					if err != nil {
						t.Fatal(err)
					}
					ids = append(ids, h.Seq)
					w = rest
				}
				got = append(got, ids)
			}
			f.mu.Unlock()
			if diff := cmp.Diff(tc.wantWrites, got); diff != "" {
				t.Errorf("packet ids per write (-want +got):\n%s", diff)
			}
			if got := q.Stats().Packets.Load(); got != 4 {
				t.Errorf("Stats().Packets = %d, want 4", got)
			}
		})
	}
}

// TestDecidedAfterVerdict: Config.Decided runs once the Handler's verdict
// is in line, so a deferred verdict it gives (packet 1, waiting behind
// packet 2's decision) is written after that verdict, not before it; it is
// not called for a Pending one.
func TestDecidedAfterVerdict(t *testing.T) {
	ip := []byte{0x45, 0, 0, 21, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 'x'}
	f := newFakeSock(t)
	var q *Queue
	var calls []uint32 // packets after whose verdict Decided ran
	var last uint32
	cfg := Config{Num: 7, MaxQueueLen: 100, ReadBuffer: 1 << 20}
	cfg.Decided = func() {
		calls = append(calls, last)
		if last == 2 {
			if err := q.Verdict(1, Accept, nil); err != nil {
				t.Errorf("Verdict(1): %v", err)
			}
		}
	}
	q, err := start(context.Background(), f, cfg, func(p Packet) (Verdict, []byte) {
		last = p.ID
		if p.ID == 1 {
			return Pending, nil
		}
		return Accept, nil
	})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	for id := uint32(1); id <= 2; id++ {
		f.in <- fakeRead{b: packetMsg(t, id, 1, ip)}
	}
	f.waitWrites(t, 3) // the bind, then packets 2 and 1
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	want := []decodedVerdict{{ID: 2, Verdict: nfAccept}, {ID: 1, Verdict: nfAccept}}
	for i := range want {
		w := &want[i]
		w.Type, w.Flags, w.Seq = typeVerdict, 1, w.ID
		w.NfGen = []byte{0, 0, 0, 7}
	}
	if diff := cmp.Diff(want, f.verdicts(t)); diff != "" {
		t.Errorf("verdicts sent (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]uint32{2}, calls); diff != "" {
		t.Errorf("Decided after packets (-want +got):\n%s", diff)
	}
}
