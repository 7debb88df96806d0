//go:build integration

package rules

import (
	"net"
	"testing"
	"time"

	"github.com/ftpct/ftpct/nfq"
)

// TestAdoptKeepsQueuedPackets: a restarted daemon binds its queue, then
// adopts the table an earlier run left (Install). A packet the divert chain
// queued before the adoption must still take its verdict afterwards: the
// adoption keeps the base chains (and their hooks) instead of deleting and
// making them again, which would make the kernel drop the queued packet
// (the verdict then fails with ENOENT and TCP has to retransmit).
func TestAdoptKeepsQueuedPackets(t *testing.T) {
	_, cfg, _ := installed(t, ip4NoAccept)
	path := cfg.NetNS

	arrived, release := make(chan struct{}, 1), make(chan struct{})
	handle := func(p nfq.Packet) (nfq.Verdict, []byte) {
		select {
		case arrived <- struct{}{}:
			<-release // hold the first packet's verdict across the adoption
		default:
		}
		return nfq.Accept, nil
	}
	q := openQueue(t, path, cfg.Queue, handle)

	var ln net.Listener
	if err := inNetNS(t, path, func() (err error) {
		ln, err = net.Listen("tcp", "127.0.0.1:21")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dialed := make(chan error, 1)
	go func() {
		dialed <- inNetNS(t, path, func() error {
			c, err := net.DialTimeout("tcp", "127.0.0.1:21", 5*time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
	}()
	select {
	case <-arrived:
	case <-time.After(5 * time.Second):
		t.Fatal("the SYN was not queued")
	}
	// The restart: a new manager adopts the table while the SYN waits.
	if err := newManager(t, cfg).Install(); err != nil {
		close(release)
		t.Fatalf("adopting Install: %v", err)
	}
	start := time.Now()
	close(release)
	if err := <-dialed; err != nil {
		t.Fatalf("dial: %v", err)
	}
	// Give the reader a moment to count the verdict's answer.
	time.Sleep(100 * time.Millisecond)
	if n := q.Stats().VerdictErrors.Load(); n != 0 {
		t.Errorf("%d verdicts refused: the adoption dropped the packet waiting in the queue", n)
	}
	// A dropped SYN is retransmitted after a second; the held one goes at once.
	if took := time.Since(start); took > 700*time.Millisecond {
		t.Errorf("connection took %v after the verdict: the queued SYN was lost", took)
	}
}
