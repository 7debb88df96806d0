//go:build linux

package nfq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	nfqueue "github.com/florianl/go-nfqueue/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// libLogger forwards the library's messages (such as messages it could not
// parse, whose packets then wait for no verdict) to slog.
type libLogger struct{ l *slog.Logger }

func (l libLogger) Debugf(format string, args ...any) {
	if l.l != nil && l.l.Enabled(context.Background(), slog.LevelDebug) {
		l.l.Debug("nfqueue: " + fmt.Sprintf(format, args...))
	}
}

func (l libLogger) Errorf(format string, args ...any) {
	if l.l == nil {
		return
	}
	msg := "nfqueue: " + fmt.Sprintf(format, args...)
	// On shutdown the library tries to unbind after its own read deadline
	// has passed, and says so; closing the socket unbinds the queue anyway.
	if strings.HasPrefix(format, "Could not unbind") || strings.HasPrefix(format, "Stop receiving") {
		l.l.Debug(msg)
		return
	}
	l.l.Warn(msg)
}

// Queue is a bound NFQUEUE with its reader goroutine.
type Queue struct {
	cfg   Config
	nf    *nfqueue.Nfqueue
	stats Stats

	cancel   context.CancelFunc
	done     chan struct{}
	closeErr error // set before done is closed
	errMu    sync.Mutex
	err      error
}

// Open binds queue cfg.Num and starts reading; h is called for each packet
// until ctx is cancelled or Close is called. Binding errors are returned here.
func Open(ctx context.Context, cfg Config, h Handler) (*Queue, error) {
	d := DefaultConfig()
	if cfg.MaxQueueLen == 0 {
		cfg.MaxQueueLen = d.MaxQueueLen
	}
	if cfg.ReadBuffer == 0 {
		cfg.ReadBuffer = d.ReadBuffer
	}
	nf, err := nfqueue.Open(&nfqueue.Config{
		NfQueue:      cfg.Num,
		MaxPacketLen: 0xffff,
		MaxQueueLen:  cfg.MaxQueueLen,
		Copymode:     nfqueue.NfQnlCopyPacket,
		AfFamily:     unix.AF_UNSPEC,
		// No FailOpen: a packet passed un-inspected when the queue is full
		// would carry an un-rewritten PORT. Dropped ones are retransmitted.
		Logger: libLogger{cfg.Logger},
	})
	if err != nil {
		return nil, fmt.Errorf("open nfqueue socket: %w", err)
	}
	_ = nf.Con.SetReadBuffer(cfg.ReadBuffer)
	if err := nf.SetOption(netlink.NoENOBUFS, true); err != nil {
		nf.Close()
		return nil, fmt.Errorf("nfqueue socket option: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	q := &Queue{cfg: cfg, nf: nf, cancel: cancel, done: make(chan struct{})}
	hook := func(a nfqueue.Attribute) int {
		if a.PacketID == nil {
			return 0
		}
		p := Packet{ID: *a.PacketID}
		if a.Hook != nil {
			p.Hook = *a.Hook
		}
		if a.Payload != nil {
			p.Data = *a.Payload
		}
		q.stats.Packets.Add(1)
		v, out := h(p)
		var verr error
		switch {
		case v == Drop:
			q.stats.Dropped.Add(1)
			verr = nf.SetVerdict(p.ID, nfqueue.NfDrop)
		case out != nil:
			q.stats.Modified.Add(1)
			verr = nf.SetVerdictModPacket(p.ID, nfqueue.NfAccept, out)
		default:
			verr = nf.SetVerdict(p.ID, nfqueue.NfAccept)
		}
		if verr != nil {
			q.stats.VerdictErrors.Add(1)
		}
		return 0
	}
	errfn := func(err error) int {
		if ctx.Err() != nil {
			return 1
		}
		var op *netlink.OpError
		if errors.Is(err, unix.ENOBUFS) {
			q.stats.Overruns.Add(1)
			return 0
		}
		if errors.As(err, &op) && (op.Timeout() || op.Temporary()) {
			return 0
		}
		q.setErr(fmt.Errorf("nfqueue %d: read: %w", cfg.Num, err))
		cancel()
		return 1
	}
	if err := nf.RegisterWithErrorFunc(ctx, hook, errfn); err != nil {
		cancel()
		nf.Close()
		// The kernel answers a bind of a queue owned by another socket
		// with EPERM (nfqnl_recv_config, net/netfilter/nfnetlink_queue.c),
		// the same errno as a missing CAP_NET_ADMIN (nfnetlink_rcv_msg).
		if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST) ||
			(errors.Is(err, unix.EPERM) && hasNetAdmin()) {
			return nil, fmt.Errorf("bind queue %d: %w", cfg.Num, ErrQueueBusy)
		}
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("bind queue %d: %w (ftpct needs root or CAP_NET_ADMIN)", cfg.Num, err)
		}
		return nil, fmt.Errorf("bind queue %d: %w", cfg.Num, err)
	}
	go func() {
		<-ctx.Done()
		// Waits for the reader, closes the socket (the kernel unbinds
		// the queue on release), then reports the reader stopped.
		q.closeErr = nf.Close()
		close(q.done)
	}()
	return q, nil
}

func (q *Queue) setErr(err error) {
	q.errMu.Lock()
	if q.err == nil {
		q.err = err
	}
	q.errMu.Unlock()
}

// Done is closed when the reader stopped (Close, ctx, or a fatal error).
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
// idempotent.
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
