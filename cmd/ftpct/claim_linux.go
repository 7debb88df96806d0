package main

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// claim reserves name for this process in its network namespace: it binds
// the abstract Unix socket "@ftpct/<name>" (abstract names are per network
// namespace and vanish with the process, also when it is killed, so a crash
// leaves no stale claim). A second daemon on the same nftables table or
// queue gets an error naming the first one's PID, before it touches
// anything. what describes the resource for that message.
func claim(name, what string) (interface{ Close() error }, error) {
	addr := "@ftpct/" + name
	ln, err := net.Listen("unix", addr)
	if err == nil {
		return ln, nil
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("claim %s: %w", what, err)
	}
	owner := "another ftpct daemon"
	if pid := claimOwner(addr); pid > 0 {
		owner = fmt.Sprintf("another ftpct daemon (pid %d)", pid)
	}
	return nil, fmt.Errorf("%w: %s already uses %s in this network namespace", errRunning, owner, what)
}

// claimOwner returns the PID of the process that holds addr, or 0.
func claimOwner(addr string) int {
	c, err := net.DialTimeout("unix", addr, time.Second)
	if err != nil {
		return 0
	}
	defer c.Close()
	raw, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		return 0
	}
	var cred *unix.Ucred
	_ = raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err != nil || cred == nil {
		return 0
	}
	return int(cred.Pid)
}
