//go:build linux

package nfq

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// bindSeq is the sequence number of the bind request; verdicts carry their
// packet id instead.
const bindSeq = 1

const (
	// readBatch is how many datagrams one read takes at most, when that
	// many wait (recvmmsg(2)): under load a reader finds several packets
	// queued each time it wakes (BENCHMARKS.md). Each slot holds the
	// largest message; its pages are touched only as far as messages fill
	// them.
	readBatch = 8
	// flushAt: the verdicts decided in one batch are written together, in
	// one write of at most about this many bytes (a single verdict, with
	// a payload of up to 64 KiB, may exceed it alone); the kernel refuses
	// a write larger than the socket's send buffer (EMSGSIZE; 208 KiB
	// by default, net.core.wmem_default).
	flushAt = 16 << 10
)

// Queue is a bound NFQUEUE with its reader goroutine.
type Queue struct {
	cfg   Config
	s     sock
	h     Handler
	stats Stats

	// wmu serialises writes to s: the reader's verdicts and Verdict's.
	// wbuf holds the verdicts the reader decided and has not written yet
	// (nwait of them): a verdict given with Verdict is written after them,
	// so verdicts reach the kernel in the order they were decided.
	wmu   sync.Mutex
	wbuf  []byte
	nwait int

	// Owned by the reader goroutine.
	rbufs    [][]byte // datagrams from the kernel, one read's worth
	rlens    []int    // their lengths
	bound    chan error
	isBound  bool
	loggedV  bool // a verdict error was logged
	loggedW  bool // a failed verdict write was logged
	loggedM  bool // a malformed message was logged
	cancel   context.CancelFunc
	done     chan struct{}
	closeErr error // set before done is closed
	errMu    sync.Mutex
	err      error
}

// Open binds queue cfg.Num and starts reading; h is called for each packet
// until ctx is cancelled or Close is called. Binding errors are returned here.
// The socket belongs to the network namespace of the calling thread.
func Open(ctx context.Context, cfg Config, h Handler) (*Queue, error) {
	cfg = cfg.withDefaults()
	s, err := dialSock(cfg.ReadBuffer)
	if err != nil {
		return nil, err
	}
	q, err := start(ctx, s, cfg, h)
	if err != nil {
		return nil, bindError(cfg.Num, err, hasNetAdmin())
	}
	return q, nil
}

// start binds the queue through s and starts the reader. It returns once the
// kernel acknowledged the bind (packets may have been handled by then), or
// with the bind's error after the reader stopped and s is closed.
func start(ctx context.Context, s sock, cfg Config, h Handler) (*Queue, error) {
	msg, err := configMessage(bindSeq, cfg.Num, cfg.MaxQueueLen)
	if err != nil {
		s.close()
		return nil, err
	}
	if err := s.write(msg); err != nil {
		s.close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	q := &Queue{
		cfg:    cfg,
		s:      s,
		h:      h,
		rbufs:  make([][]byte, readBatch),
		rlens:  make([]int, readBatch),
		wbuf:   make([]byte, 0, 4096),
		bound:  make(chan error, 1),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	for i := range q.rbufs {
		q.rbufs[i] = make([]byte, recvBufLen)
	}
	go q.run(ctx)
	if err := <-q.bound; err != nil {
		cancel()
		<-q.done
		return nil, err
	}
	return q, nil
}

// bindError explains an error of the bind request.
func bindError(num uint16, err error, netAdmin bool) error {
	// The kernel answers a bind of a queue owned by another socket with
	// EPERM (nfqnl_recv_config, net/netfilter/nfnetlink_queue.c), the same
	// errno as a missing CAP_NET_ADMIN (nfnetlink_rcv_msg).
	switch {
	case errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST) ||
		(errors.Is(err, unix.EPERM) && netAdmin):
		return fmt.Errorf("bind queue %d: %w", num, ErrQueueBusy)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("bind queue %d: %w (ftpct needs root or CAP_NET_ADMIN)", num, err)
	}
	return fmt.Errorf("bind queue %d: %w", num, err)
}

// run reads until ctx is cancelled or the socket fails, then closes it.
func (q *Queue) run(ctx context.Context) {
	stop := context.AfterFunc(ctx, q.s.interrupt)
	defer func() {
		stop()
		q.cancel()
		if !q.isBound {
			err := q.Err()
			if err == nil {
				err = ctx.Err()
			}
			q.bound <- err
		}
		// Under wmu: no Verdict writes to a closed socket.
		q.wmu.Lock()
		q.closeErr = q.s.close()
		close(q.done)
		q.wmu.Unlock()
	}()
	for {
		n, err := q.s.read(q.rbufs, q.rlens)
		if err != nil {
			if q.stopOn(ctx, err) {
				return
			}
			continue
		}
		for i := range n {
			if !q.datagram(q.rbufs[i][:q.rlens[i]]) {
				q.flush()
				return
			}
		}
		// Before the next read, which may wait.
		q.flush()
	}
}

// stopOn decides whether a read error stops the reader.
func (q *Queue) stopOn(ctx context.Context, err error) bool {
	switch {
	case ctx.Err() != nil:
		return true // interrupted: Close or ctx
	case errors.Is(err, unix.ENOBUFS):
		// The kernel dropped packets it could not queue to us; the
		// socket is fine.
		q.stats.Overruns.Add(1)
		return false
	}
	// Anything else (a closed socket included) would fail again at once.
	q.setErr(fmt.Errorf("nfqueue %d: read: %w", q.cfg.Num, err))
	return true
}

// datagram handles each message in b; false stops the reader.
func (q *Queue) datagram(b []byte) bool {
	for len(b) > 0 {
		h, body, rest, err := nextMessage(b)
		if err != nil {
			q.malformed(err)
			return true
		}
		b = rest
		switch h.Type {
		case typePacket:
			p, err := parsePacket(body)
			if err != nil {
				q.malformed(err)
				continue
			}
			q.packet(p)
		case nlmsgError:
			errno, err := parseError(body)
			if err != nil {
				q.malformed(err)
				continue
			}
			if !q.isBound && h.Seq == bindSeq {
				q.isBound = true
				if errno != 0 {
					q.bound <- errno
					return false
				}
				q.bound <- nil
				continue
			}
			if errno != 0 {
				// The verdict for packet h.Seq failed: no such
				// packet (ENOENT) or a malformed verdict.
				q.stats.VerdictErrors.Add(1)
				if !q.loggedV && q.cfg.Logger != nil {
					q.loggedV = true
					q.cfg.Logger.Warn("nfqueue: the kernel refused a verdict (logged once; see the verdict error counter)",
						"queue", q.cfg.Num, "packet_id", h.Seq, "err", errno)
				}
			}
		}
	}
	return true
}

// packet asks the Handler for p's verdict and adds it to those to write.
func (q *Queue) packet(p Packet) {
	q.stats.Packets.Add(1)
	v, out := q.h(p)
	if v == Pending {
		q.stats.Deferred.Add(1)
		return
	}
	out = q.count(v, out)
	q.wmu.Lock()
	if q.nwait > 0 && len(q.wbuf)+verdictLen+2*nlaHdrLen+4+len(out) > flushAt {
		q.writeLocked()
	}
	mark, setMark := q.cfg.markFor(v, p.Mark)
	q.wbuf = appendVerdict(q.wbuf, q.cfg.Num, p.ID, v, mark, setMark, out)
	q.nwait++
	q.wmu.Unlock()
	if q.cfg.Decided != nil {
		q.cfg.Decided()
	}
}

// flush writes the verdicts the reader decided and has not written yet.
func (q *Queue) flush() {
	q.wmu.Lock()
	if q.nwait > 0 {
		q.writeLocked()
	}
	q.wmu.Unlock()
}

// writeLocked writes the verdicts in wbuf, in one datagram (the kernel
// handles each message of it in turn, and answers a refused one with an
// error carrying its packet id), and empties wbuf; under wmu. A failed
// write fails all of them.
func (q *Queue) writeLocked() error {
	err := q.s.write(q.wbuf)
	if err != nil {
		q.stats.VerdictErrors.Add(uint64(q.nwait))
		if !q.loggedW && q.cfg.Logger != nil {
			q.loggedW = true
			q.cfg.Logger.Warn("nfqueue: writing verdicts failed (logged once; see the verdict error counter)",
				"queue", q.cfg.Num, "verdicts", q.nwait, "err", err)
		}
	}
	q.wbuf, q.nwait = q.wbuf[:0], 0
	return err
}

// count counts verdict v and returns the payload it carries.
func (q *Queue) count(v Verdict, out []byte) []byte {
	switch {
	case v == Drop:
		q.stats.Dropped.Add(1)
		return nil
	case v == AcceptMark || v == AcceptMarkHold:
		q.stats.Marked.Add(1)
	case v == Repeat:
		q.stats.Repeated.Add(1)
		return nil
	}
	switch {
	case out != nil:
		q.stats.Modified.Add(1)
	}
	return out
}

// Verdict gives packet id, left Pending by the Handler, its verdict v (Accept
// or Drop; a non-nil payload replaces the packet). It is safe to call from
// any goroutine, and returns ErrClosed once the queue is closed: the kernel
// then dropped the packet (nfqnl_flush at unbind).
func (q *Queue) Verdict(id uint32, v Verdict, payload []byte) error {
	switch v {
	case Pending:
		return fmt.Errorf("%w: a verdict cannot be pending", ErrVerdict)
	case AcceptMark, Repeat, AcceptHold, AcceptMarkHold:
		return fmt.Errorf("%w: a deferred verdict cannot mark (the packet's mark is not known)", ErrVerdict)
	}
	q.wmu.Lock()
	defer q.wmu.Unlock()
	select {
	case <-q.done:
		return ErrClosed
	default:
	}
	payload = q.count(v, payload)
	if q.nwait > 0 && len(q.wbuf)+verdictLen+nlaHdrLen+len(payload) > flushAt {
		// Failed, these count as verdict errors; this one is still sent.
		_ = q.writeLocked()
	}
	// With the reader's verdicts not written yet, if any: decided before.
	q.wbuf = appendVerdict(q.wbuf, q.cfg.Num, id, v, 0, false, payload)
	q.nwait++
	if err := q.writeLocked(); err != nil {
		return fmt.Errorf("nfqueue %d: verdict for packet %d: %w", q.cfg.Num, id, err)
	}
	return nil
}

func (q *Queue) malformed(err error) {
	q.stats.Malformed.Add(1)
	if !q.loggedM && q.cfg.Logger != nil {
		q.loggedM = true
		q.cfg.Logger.Warn("nfqueue: unreadable message from the kernel (logged once; see the malformed counter)",
			"queue", q.cfg.Num, "err", err)
	}
}

func (q *Queue) setErr(err error) {
	q.errMu.Lock()
	if q.err == nil {
		q.err = err
	}
	q.errMu.Unlock()
}

// Done is closed when the reader stopped (Close, ctx, or a fatal error) and
// the socket is closed, which unbinds the queue.
func (q *Queue) Done() <-chan struct{} { return q.done }

// Err returns the fatal read error that stopped the reader, if any.
func (q *Queue) Err() error {
	q.errMu.Lock()
	defer q.errMu.Unlock()
	return q.err
}

// Stats returns the queue's counters.
func (q *Queue) Stats() *Stats { return &q.stats }

// Close stops the reader, unbinds the queue and closes the socket. It is
// idempotent. Packets still waiting in the kernel for a verdict are dropped
// (nfqnl_flush at unbind).
func (q *Queue) Close() error {
	q.cancel()
	<-q.done
	return q.closeErr
}

// hasNetAdmin reports whether the process has CAP_NET_ADMIN in its
// effective set.
func hasNetAdmin() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[unix.CAP_NET_ADMIN/32].Effective&(1<<(unix.CAP_NET_ADMIN%32)) != 0
}
