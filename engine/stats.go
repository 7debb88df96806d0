package engine

import (
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/ftpct/ftpct/counters"
)

// counterSet is the one definition of the engine's counters and gauges.
// Each field is one of them: its `json` tag is its name in `ftpct stats`,
// `ftpct stats --json` and the Prometheus metrics ("ftpct_" + name, plus
// "_total" for a counter), and its `help` tag its one line of meaning, shown
// by all of those and in README.md. Fields of type C are counters, those of
// type G gauges. Adding a counter is adding a field here (and its
// e.stats.X.Add(1) where it happens).
type counterSet[C, G any] struct {
	Packets             C `json:"packets" help:"packets of the diverted control connections handled"`
	Modified            C `json:"modified" help:"packets sent on modified: an announcement rewritten, sequence or acknowledgement numbers shifted, or held bytes added or removed"`
	Dropped             C `json:"dropped" help:"packets dropped (out of order, or a retransmission that cannot be rewritten consistently); their sender retransmits them"`
	NotTCP              C `json:"not_tcp" help:"packets that are not one whole IPv4 or IPv6 TCP segment (a fragment, a truncated or malformed header); passed untouched"`
	NoConntrack         C `json:"no_conntrack" help:"packets with payload of a connection not yet tracked for which the kernel's conntrack table has no entry (flushed, or dropped from a full table); passed untouched, and the next one is looked up again"`
	Sessions            C `json:"sessions" help:"control connections learned (tracked from their first payload packet on)"`
	SessionsOpen        G `json:"sessions_open" help:"control connections tracked now"`
	SessionsReused      C `json:"sessions_reused" help:"tracked control connections forgotten because a new connection (a client's SYN) reused their addresses and ports; the new one is learned afresh"`
	SessionsEnded       C `json:"sessions_ended" help:"tracked control connections forgotten because the kernel's conntrack table no longer has them: told by a conntrack DESTROY event, or found by the periodic check (sessions_swept)"`
	SessionsSwept       C `json:"sessions_swept" help:"of sessions_ended, those found by the periodic check of idle sessions, not by a DESTROY event (with events on: an event the kernel did not send, or one lost)"`
	EventsLost          C `json:"conntrack_events_lost" help:"times the kernel dropped conntrack DESTROY events because ftpct read them too slowly (ENOBUFS); every idle session is then checked against the kernel at once"`
	DataEventsLost      C `json:"data_events_lost" help:"times the kernel dropped conntrack NEW events because ftpct read them too slowly (ENOBUFS): the expectations of data connections they told of are counted expired or evicted, not used"`
	SessionsFull        C `json:"sessions_full" help:"control connections not tracked because --max-sessions were tracked already; they pass untouched"`
	Lines               C `json:"lines" help:"complete control lines read"`
	Commands            C `json:"commands" help:"announcements parsed: PORT, EPRT, 227 and 229"`
	Malformed           C `json:"malformed" help:"malformed announcements (bad numbers, wrong syntax); passed untouched, no hole opened"`
	PartialLines        C `json:"partial_lines" help:"segments ending inside a line that cannot be an announcement (not held); the rest of the line passes unparsed"`
	HeldLines           C `json:"held_lines" help:"line beginnings held back until the rest of a possible announcement arrived (a command split across segments)"`
	LineOverflow        C `json:"line_overflow" help:"possible announcements longer than 4 KiB without a line end, not held but passed unparsed"`
	HoldAbandoned       C `json:"hold_abandoned" help:"held lines given up and passed unparsed because the sender retransmitted them before the line ended"`
	HeldCarried         C `json:"held_carried" help:"segments with held bytes put in front cut at a line start to stay within the sender's segment size; the rest is held for the next one"`
	Rewrites            C `json:"rewrites" help:"announcements rewritten for NAT"`
	RewritesRefused     C `json:"rewrites_refused" help:"announcements left unrewritten, without a hole, because 64 rewrites of their direction awaited acknowledgement"`
	Replays             C `json:"replays" help:"rewrites replayed on retransmitted segments"`
	ResendsCompleted    C `json:"resends_completed" help:"resent segments carrying part of a rewritten argument, completed with its original bytes made again"`
	OutOfOrder          C `json:"out_of_order" help:"segments dropped because an earlier one of the stream was missing"`
	Resumed             C `json:"resumed" help:"segments read after bytes ftpct never saw but the receiver acknowledged (they got through before a restart, or past a full queue), instead of waiting for them as for a gap"`
	Deferred            C `json:"deferred" help:"packets whose verdict waited: an announcement that waited behind another packet, or that found the hole committer 256 holes behind, until its hole was committed, and later packets of a flow queued behind such a packet or behind a session's first resize until its second pass"`
	FirstInPath         C `json:"first_resizes_in_path" help:"sessions' first resizes whose flows were held in the packet path: the packet went back to the kernel once with the hold mark, which held its flow, and no nftables commit was waited for"`
	FirstByCommit       C `json:"first_resizes_by_commit" help:"sessions' first resizes whose packet waited for the nftables commit that held their flows (decided after waiting behind another packet of their flow, or with the committer 256 holes behind)"`
	Guarded             C `json:"guarded" help:"announcements whose packet left before its hole was committed, marked for the guard: the first SYNs from its peer are queued until the hole is committed"`
	GuardSyns           C `json:"guard_syns" help:"first SYNs (not to a control port) of connections from peers just sent an announcement, queued by the guard"`
	GuardWaits          C `json:"guard_waits" help:"guarded SYNs that waited for their hole's commit (they would have raced it)"`
	ExpectCreated       C `json:"expect_created" help:"expectations created (holes opened)"`
	ExpectUsed          C `json:"expect_used" help:"expectations used by their data connection"`
	ExpectExpired       C `json:"expect_expired" help:"expectations expired unused after --timeout"`
	ExpectEvicted       C `json:"expect_evicted" help:"expectations replaced by a newer announcement of the same session (past --max-per-session)"`
	ExpectRefused       C `json:"expect_refused" help:"announcements that opened no hole: refused by policy (address, port), limits, a conflict or a rule failure"`
	ExpectDeleted       C `json:"expect_deleted" help:"expectations closed by hand (ftpct expect delete)"`
	ExpectPending       G `json:"expect_pending" help:"expectations waiting for their data connection now"`
	TLSSessions         C `json:"tls_sessions" help:"control connections that switched to TLS (AUTH TLS answered 234): no longer readable, so their data connections get no holes"`
	StateWrites         C `json:"state_writes" help:"session state stored in conntrack labels: one per packet whose rewrite changed a stored sequence adjustment, and one per acknowledgement that moved the span of unacknowledged rewrites a restart needs"`
	StateErrors         C `json:"state_errors" help:"session state or held flows that could not be stored (logged): a rewrite whose session could not be held is not sent (the packet leaves unchanged); a restart of ftpct may break sessions whose state was not stored"`
	SessionsRestored    C `json:"sessions_restored" help:"control connections taken over with the state an earlier run stored in their conntrack labels"`
	SessionsUnpersisted C `json:"sessions_unpersisted" help:"resized control connections whose conntrack entry has no room for labels (it predates ftpct's rules): they work, but a restart of ftpct breaks them"`
	SessionsForeign     C `json:"sessions_foreign" help:"control connections whose ct labels ftpct cannot read (another format version, or set by another tool); passed untouched"`
	RewritesStale       C `json:"rewrites_stale" help:"announcements in a resend of bytes older than the rewrites a restarted ftpct restored, passed as sent: the peer acknowledged them before the restart and discards them (README Restarts says when it may not have)"`
	RewritesOutOfRange  C `json:"rewrites_out_of_range" help:"announcements left unrewritten, without a hole, because the stream's offset would leave the range ct labels can store"`
	AuditSuppressed     C `json:"audit_suppressed" help:"audit log lines not written because of the audit rate limit"`
	Watchers            G `json:"watchers" help:"ftpct expect watch clients connected now"`
	WatchLost           C `json:"watch_lost" help:"events not delivered to an ftpct expect watch client that read too slowly"`
	Errors              C `json:"errors" help:"internal errors: rewrite or rule failures, and queue verdict errors"`
}

// Stats are the engine's counters, updated atomically where they happen
// (e.stats.Packets.Add(1)). Its gauge fields hold nothing: Engine.Stats
// reads gauges from the engine's tables.
type Stats = counterSet[atomic.Uint64, gauge]

// gauge is the type of Stats' gauge fields.
type gauge struct{}

// Snapshot is a point-in-time copy of the counters and gauges.
type Snapshot = counterSet[uint64, uint64]

// statFields are the descriptions of counterSet's fields, in order.
var statFields = sync.OnceValue(func() []counters.Desc {
	t := reflect.TypeFor[Stats]()
	out := make([]counters.Desc, t.NumField())
	for i := range out {
		f := t.Field(i)
		out[i] = counters.Desc{Name: f.Tag.Get("json"), Help: f.Tag.Get("help"), Kind: counters.Counter}
		if f.Type == reflect.TypeFor[gauge]() {
			out[i].Kind = counters.Gauge
		}
	}
	return out
})

// Counters describes the engine's counters and gauges, in order.
func Counters() []counters.Desc { return append([]counters.Desc(nil), statFields()...) }

// Stats returns a snapshot of the counters and gauges.
func (e *Engine) Stats() Snapshot {
	var s Snapshot
	src := reflect.ValueOf(&e.stats).Elem()
	dst := reflect.ValueOf(&s).Elem()
	for i, d := range statFields() {
		if d.Kind == counters.Counter {
			dst.Field(i).SetUint(src.Field(i).Addr().Interface().(*atomic.Uint64).Load())
		}
	}
	s.SessionsOpen = uint64(e.sessions.Len())
	s.ExpectPending = uint64(e.exps.Len())
	s.Watchers = uint64(e.obs.watcherCount())
	return s
}

// Values returns s as described values, in definition order.
func Values(s Snapshot) counters.Values {
	v := reflect.ValueOf(s)
	descs := statFields()
	out := make(counters.Values, len(descs))
	for i, d := range descs {
		out[i] = counters.Value{Desc: d, Value: v.Field(i).Uint()}
	}
	return out
}
