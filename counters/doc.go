// Package counters describes ftpct's counters and gauges: each one's name,
// kind and one line of meaning, written once where the counter is defined
// (engine.Stats for the engine's, a table in cmd/ftpct for the queue's).
// The same descriptions drive `ftpct stats`, `ftpct stats --json`, the
// Prometheus exposition (package metrics) and the table in README.md.
//
// The package is pure: no system calls, safe for concurrent use (its values
// are immutable once built).
package counters
