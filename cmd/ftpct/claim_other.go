//go:build !linux

package main

import "errors"

// claim is Linux-only, as the daemon is.
func claim(name, what string) (interface{ Close() error }, error) {
	return nil, errors.New("ftpct run is not supported on this OS (NFQUEUE and nftables are Linux-only)")
}
