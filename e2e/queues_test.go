//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSeveralQueues: with --queues 2 the gateway's daemon reads two
// NFQUEUEs, one worker each. The kernel picks the queue by a hash of the
// packet's addresses, so control connections from several LAN addresses
// spread over both, and the two directions of one masqueraded connection
// (client -> server, server -> gateway) may well land on different ones.
// Every active-mode transfer must still be rewritten and work, and both
// queues must have seen packets.
func TestSeveralQueues(t *testing.T) {
	l := newLab(t, "none")
	d := l.startFtpct("--queues", "2")
	var addrs []string
	for i := 10; i < 16; i++ {
		a := fmt.Sprintf("10.0.1.%d", i)
		l.mustExec("c", "ip", "addr", "add", a+"/24", "dev", l.name+"-cl")
		addrs = append(addrs, a)
	}
	for _, a := range addrs {
		out := filepath.Join(l.dir, "out-"+a)
		// Active mode: the PORT names the address the control connection
		// is bound to, which the gateway must rewrite.
		if o, err := l.exec("c", 30*time.Second, "curl", "-sS", "--max-time", "20", "--interface", a,
			"-P", "-", "--disable-eprt", "-o", out, "ftp://"+serverAddr+"/big.bin"); err != nil {
			t.Fatalf("transfer from %s: %v: %s", a, err, o)
		}
		got, err := os.ReadFile(out)
		if err != nil || sumOf(got) != l.fileSHA("big.bin") {
			t.Fatalf("transfer from %s: download differs or missing (%d bytes, %v)", a, len(got), err)
		}
	}
	st := d.stats()
	if st["rewrites"] < uint64(len(addrs)) {
		t.Errorf("rewrites = %d, want at least %d (one PORT per transfer)", st["rewrites"], len(addrs))
	}
	if st["errors"] != 0 || st["queue_overruns"] != 0 {
		t.Errorf("errors = %d, queue_overruns = %d, want 0", st["errors"], st["queue_overruns"])
	}
	t.Logf("%d transfers: %d packets queued, %.1f per transfer", len(addrs), st["packets"], float64(st["packets"])/float64(len(addrs)))
	seen := queuedPerQueue(t, l)
	for _, q := range []int{21, 22} {
		if seen[q] == 0 {
			t.Errorf("queue %d saw no packet (per queue: %v)", q, seen)
		}
	}
}

// queuedPerQueue reads the gateway's /proc/net/netfilter/nfnetlink_queue:
// for each bound queue, the id of the last packet queued to it (ids count
// from 1 per queue, so it is how many were queued).
func queuedPerQueue(t *testing.T, l *lab) map[int]uint64 {
	t.Helper()
	seen := map[int]uint64{}
	// queue_number peer_portid queue_total copy_mode copy_range
	// queue_dropped user_dropped id_sequence 1
	for _, line := range strings.Split(strings.TrimSpace(l.mustExec("g", "cat", "/proc/net/netfilter/nfnetlink_queue")), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		q, err1 := strconv.Atoi(f[0])
		n, err2 := strconv.ParseUint(f[7], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("unreadable nfnetlink_queue line %q", line)
		}
		seen[q] = n
	}
	return seen
}

// TestQueuedPerTransfer records how many packets one active-mode transfer
// (curl, PORT, a download) puts through the queue: BENCHMARKS.md compares
// it before and after bare acknowledgements stopped being queued. Bare ACKs
// of a connection never resized are not queued; a resized one (masquerading
// grows the PORT) has all its packets queued.
func TestQueuedPerTransfer(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lab   []string
		addr  string
		flags []string
	}{
		{name: "masquerading, PORT resized", lab: []string{"none"}, addr: serverAddr, flags: []string{"-P", "-", "--disable-eprt"}},
		{name: "routed, EPRT not rewritten", lab: []string{"none", "--topo", "routed"}, addr: serverAddr, flags: []string{"-P", "-"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := startLab(t, "f", tc.lab...)
			d := l.startFtpct()
			const n = 3
			for i := range n {
				out := filepath.Join(l.dir, fmt.Sprint("out", i))
				args := append([]string{"curl", "-sS", "--max-time", "20"}, tc.flags...)
				if o, err := l.exec("c", 30*time.Second, append(args, "-o", out, "ftp://"+tc.addr+"/big.bin")...); err != nil {
					t.Fatalf("transfer: %v: %s", err, o)
				}
			}
			st := d.stats()
			t.Logf("%s: %d packets queued for %d transfers: %.1f per transfer (rewrites %d)", tc.name, st["packets"], n, float64(st["packets"])/n, st["rewrites"])
			if st["packets"] == 0 {
				t.Errorf("no packet queued")
			}
		})
	}
}
