//go:build linux

// Package netnstest gives root integration tests network namespaces of
// their own: one made per call and deleted at cleanup, commands run inside
// it, and Go code run on a thread that entered it. Tests that cannot run
// (not root) skip, except under CI=true, where they fail.
package netnstest

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// RequireRoot skips tb when not root, or fails it under CI=true.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		tb.Fatal("integration tests need root (CI=true: failing instead of skipping)")
	}
	tb.Skip("integration tests need root: run as root with -tags integration")
}

var counter atomic.Int32

// New creates a network namespace named prefix-PID-N with lo up, deleted
// when tb ends, and returns its name and path.
func New(tb testing.TB, prefix string) (name, path string) {
	tb.Helper()
	name = fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), counter.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		tb.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	tb.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			tb.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	Exec(tb, name, "ip", "link", "set", "lo", "up")
	return name, "/run/netns/" + name
}

// Exec runs a command in namespace ns and returns its output; a failure
// fails tb.
func Exec(tb testing.TB, ns string, args ...string) string {
	tb.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	if err != nil {
		tb.Fatalf("ip netns exec %s %s: %v: %s", ns, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// In runs f on a thread in the namespace at path and returns its error;
// sockets f opens stay in that namespace. The thread is never unlocked: it
// ends with its goroutine.
func In(tb testing.TB, path string, f func() error) error {
	tb.Helper()
	ns, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer ns.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	return <-errc
}
