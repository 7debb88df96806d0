package main

import "errors"

var (
	// errUsage marks command-line mistakes (exit status 2).
	errUsage = errors.New("usage")
	// errRunning: another daemon already uses this table or queue.
	errRunning = errors.New("refusing to start")
	// errQueueStopped: a queue reader stopped while the daemon ran.
	errQueueStopped = errors.New("queue reader stopped")
)
