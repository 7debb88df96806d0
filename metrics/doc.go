// Package metrics serves ftpct's Prometheus metrics (`ftpct run --metrics
// ADDR`, path /metrics) with the official client library,
// github.com/prometheus/client_golang.
//
// It exports every counter and gauge `ftpct stats` shows, read at each
// scrape from the same described values (package counters), so the two
// never disagree; the sessions and expectations by state; and two
// histograms the daemon feeds: the time the engine takes per packet
// (ObservePacket, allocation-free) and the time a hole takes to open or
// close in the kernel (Holes wraps the engine's Holes).
//
// Concurrency: all methods are safe for concurrent use. Serve's goroutines
// are owned by its context.
package metrics
