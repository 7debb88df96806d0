#!/usr/bin/env bash
# ftpct's memory under load, as root on Debian (needs what lab/deps.sh
# installs, and bench/ftpload, the load generator of bench/sidebyside.sh).
# One masquerading-gateway lab (lab/lab.sh up NAME none), ftpct on the gateway
# as e2e/harness_test.go starts it.
#
#   bench/memory.sh [--sessions N] [--storm SECONDS] [--settle SECONDS] [--no-ct-events] [--no-keepalive] [--out FILE]
#        defaults: 100000 sessions, a 180 s storm, 130 s settling; 0 skips
#        either phase; --no-ct-events turns conntrack events off in the
#        gateway (net.netfilter.nf_conntrack_events = 0): ftpct then finds
#        ended sessions by asking the kernel about idle ones, as before it
#        listened to DESTROY events; --no-keepalive: the sessions send no
#        TCP keep-alives (by default both ends send them every 15 s, Go's
#        default, and every probe of a rewritten session crosses ftpct)
#   GOGC=100 bench/memory.sh ...   the environment reaches ftpct (GOGC and
#        GOMEMLIMIT override its gc-percent and memory-limit)
#   FTPCT_BIN=/tmp/ftpct-main bench/memory.sh ...   runs that ftpct binary
#        instead of this checkout's (to compare with another commit: build
#        it there with go build -o /tmp/ftpct-main ./cmd/ftpct)
#
# sessions  N concurrent NATed control connections, each logged in with one
#           PORT answered 200 (rewritten to the gateway's address), against
#           ftpload's own responder (one goroutine per connection; vsftpd
#           would need processes). Several client addresses (one has ~64,000
#           source ports) and several server addresses (the masquerade has
#           ~64,000 public ports per server address and port), one ftpload
#           process per server address. ftpct's resident memory (VmRSS) is
#           read before, once all are open (their expectations pending), and
#           after the expectations expired (--timeout 20s): idle sessions;
#           and again --settle seconds later (the runtime collects at least
#           every 2 minutes, and gives back what the ramp's garbage took).
#           With it, the Go heap's figures (ftpct --metrics), and what the
#           idle sessions cost while settling: ftpct's CPU seconds, bytes
#           allocated and collections. Then every session sends NOOP and
#           must get its 200.
# storm     a fresh ftpct; 8 control connections each sending PORT and waiting
#           for the 200 (rewritten), for SECONDS, in rounds of 20 s on new
#           connections (see below); ftpct's VmRSS every 10 s: min, max, and
#           the spread from the median after 30 s of warm-up (must be <= 5%);
#           the same for its RssAnon (private memory, without the
#           executable's pages that VmRSS counts as code first runs), shown
#           only. With each sample, where the memory is (storm_mem lines,
#           columns in storm_mem_columns, see mem_classes): the Go heap's
#           spans in use, free and released, stacks, runtime metadata and
#           other, the next collection's goal (from ftpct --metrics, one
#           scrape per 10 s), goroutines, OS threads, and smaps_rollup's
#           anonymous and file pages; and ftpct's CPU per PORT answered
#           (storm_cpu_us_per_port).
#
# Limits: each side holds N sockets, spread over processes that stay within
# the open-file limit (raised to its hard limit; a container may not raise
# that, even for root). net.netfilter.nf_conntrack_max is raised when below
# 2N (global: a network namespace reads the host's and cannot set its own;
# put back on exit). Prints "metric value" lines; exits 1 when a check failed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin

N=100000 STORM=180 OUT= SETTLE=130 CT_EVENTS=1 KEEPALIVE=()
while [[ $# -gt 0 ]]; do
	case $1 in
	--sessions) N=$2; shift 2 ;;
	--storm) STORM=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--settle) SETTLE=$2; shift 2 ;;
	--no-ct-events) CT_EVENTS=0; shift ;;
	--no-keepalive) KEEPALIVE=(-keepalive -1s); shift ;;
	*) echo "usage: $0 [--sessions N] [--storm SECONDS] [--settle SECONDS] [--no-ct-events] [--no-keepalive] [--out FILE]" >&2; exit 2 ;;
	esac
done
[[ $N =~ ^[0-9]+$ && $N -le 200000 ]] || { echo "--sessions: 0 to 200000" >&2; exit 2; }
[[ $STORM =~ ^[0-9]+$ && $STORM -le 3600 ]] || { echo "--storm: 0 to 3600 seconds" >&2; exit 2; }
[[ $SETTLE =~ ^[0-9]+$ && $SETTLE -le 600 ]] || { echo "--settle: 0 to 600 seconds" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "$0: needs root (network namespaces, netfilter)" >&2; exit 1; }
[[ -d bench/ftpload ]] || { echo "$0: needs bench/ftpload (the load generator of bench/sidebyside.sh)" >&2; exit 1; }

. bench/lib.sh
bench_init m ftpct-mem

metric() { echo "$1 $2" | tee -a "$WORK/results.txt"; }

# Each side holds N sockets, at most PER_PROC in one process: the open-file
# limit (a container may not raise its hard limit, even for root).
ulimit -Sn "$(ulimit -Hn)"
PER_PROC=$(($(ulimit -Hn) - 1000))
((PER_PROC > 1000)) || { echo "$0: open-file limit $(ulimit -Hn) too low" >&2; exit 1; }
PER_PROC=$((PER_PROC < 50000 ? PER_PROC : 50000)) # and ~64,000 masqueraded ports per server address

bench_build
if [[ -n ${FTPCT_BIN:-} ]]; then
	FTPCT=$FTPCT_BIN
	log "ftpct: $FTPCT_BIN"
fi
lab_up

ctmax=$("${G[@]}" sysctl -n net.netfilter.nf_conntrack_max)
if ((ctmax < 2 * N)); then
	CT_MAX_WAS=$ctmax
	sysctl -qw net.netfilter.nf_conntrack_max=$((2 * N))
	log "nf_conntrack_max $ctmax -> $((2 * N)) for the run"
fi
metric nf_conntrack_max "$("${G[@]}" sysctl -n net.netfilter.nf_conntrack_max)"
((CT_EVENTS)) || "${G[@]}" sysctl -qw net.netfilter.nf_conntrack_events=0 # per namespace
metric nf_conntrack_events "$("${G[@]}" sysctl -n net.netfilter.nf_conntrack_events)"
metric gogc_env "${GOGC:-unset}"
metric keepalive "$( ((${#KEEPALIVE[@]})) && echo off || echo 15s)"

# heap NAME: ftpct's Go heap figure go_memstats_NAME_bytes (--metrics), in KiB.
heap() { "${G[@]}" curl -s "http://$METRICS/metrics" | awk -v m="go_memstats_$1_bytes" '$1 == m { printf "%d", $2 / 1024 }'; }
METRICS=127.0.0.1:9464
# counter NAME: a figure of ftpct's Go runtime metrics as printed.
counter() { "${G[@]}" curl -s "http://$METRICS/metrics" | awk -v m="$1" '$1 == m { printf "%.0f", $2 }'; }
# mem_classes PID: where ftpct's private memory is, in KiB, in the order of
# MEM_COLUMNS: the Go heap's spans in use (heap_inuse: live objects, garbage
# not yet swept, and their spans' unused tails), free spans the runtime keeps
# (heap_idle - heap_released), spans given back to the system
# (heap_released, not resident), goroutine and thread stacks (stack_sys),
# the runtime's metadata (mspan, mcache, the collector's bitmaps and
# profiling buckets), the runtime's other memory (other_sys), the next
# collection's goal, the goroutines and the OS threads (/proc/PID/status
# Threads), and from /proc/PID/smaps_rollup the anonymous resident pages
# (Anonymous) and the executable's (Rss - Anonymous: file pages).
MEM_COLUMNS=heap_inuse,heap_free,heap_released,stacks,metadata,other,goal,goroutines,threads,smaps_anon,smaps_file
mem_classes() {
	{
		"${G[@]}" curl -s "http://$METRICS/metrics"
		awk '/^Threads:/ { print "threads", $2 }' "/proc/$1/status"
		awk '/^Rss:/ { print "smaps_rss", $2 } /^Anonymous:/ { print "smaps_anon", $2 }' "/proc/$1/smaps_rollup"
	} | awk '
		{ v[$1] = $2 }
		END {
			k = 1 / 1024
			printf "%d %d %d %d %d %d %d %d %d %d %d\n",
				v["go_memstats_heap_inuse_bytes"] * k,
				(v["go_memstats_heap_idle_bytes"] - v["go_memstats_heap_released_bytes"]) * k,
				v["go_memstats_heap_released_bytes"] * k,
				v["go_memstats_stack_sys_bytes"] * k,
				(v["go_memstats_mspan_sys_bytes"] + v["go_memstats_mcache_sys_bytes"] + v["go_memstats_gc_sys_bytes"] + v["go_memstats_buck_hash_sys_bytes"]) * k,
				v["go_memstats_other_sys_bytes"] * k,
				v["go_memstats_next_gc_bytes"] * k,
				v["go_goroutines"], v["threads"],
				v["smaps_anon"], v["smaps_rss"] - v["smaps_anon"]
		}'
}
# cpu PID: the process's user and system CPU time, in clock ticks.
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# stop: ftpct stopped and uninstalled; the next run starts from an empty
# conntrack table.
stop() {
	log_ftpct_stats
	stop_ftpct
	"${G[@]}" conntrack -F >/dev/null 2>&1 || true
}

# Server addresses 203.0.113.3 on: port 21 goes to ftpload's responder on
# 2121 (vsftpd holds the wildcard address's 21). One per PER_PROC sessions,
# each with its own responder process and its own client process.
nsrv=$(((N + PER_PROC - 1) / PER_PROC))
((nsrv > 0)) || nsrv=1
for ((i = 0; i < nsrv; i++)); do start_responder "203.0.113.$((3 + i))" "$WORK/serve$i.log" ${KEEPALIVE[@]+"${KEEPALIVE[@]}"}; done
# Client addresses: one per 20,000 sessions and one more, each with the
# source ports 1024-65000.
"${C[@]}" sysctl -qw net.ipv4.ip_local_port_range="1024 65000"
ncli=$((N / 20000 + 1))
client_addrs "$ncli"

if ((N > 0)); then
	log "sessions: $N through ftpct from $ncli client addresses to $nsrv server addresses"
	start_ftpct --max-sessions $((N + 1000)) --max-expect $((N + 1000)) --timeout 20s --metrics "$METRICS" || exit 1
	sleep 1
	base=$(rss "$FTPCT_PID") base_heap=$(heap heap_alloc)
	t0=$(date +%s)
	idle=()
	per=$((N / nsrv))
	for ((i = 0; i < nsrv; i++)); do
		n=$per
		((i < nsrv - 1)) || n=$((N - per * (nsrv - 1)))
		"${C[@]}" "$LOAD" idle -addr "203.0.113.$((3 + i)):21" -n "$n" -src "$SRCS" -par 32 -hold 15m ${KEEPALIVE[@]+"${KEEPALIVE[@]}"} \
			> "$WORK/idle$i.out" 2> "$WORK/idle$i.err" &
		idle+=($!)
		PIDS+=($!)
	done
	for ((i = 0; i < nsrv; i++)); do
		until grep -qs '^ready' "$WORK/idle$i.out"; do
			kill -0 "${idle[i]}" 2>/dev/null || break
			(($(date +%s) - t0 < 900)) || break
			sleep 1
		done
	done
	ready=1
	for ((i = 0; i < nsrv; i++)); do grep -qs '^ready' "$WORK/idle$i.out" || ready=0; done
	if ((ready)); then
		metric sessions_open_s $(($(date +%s) - t0))
		sleep 2
		metric sessions_tracked "$(ftpct_stat sessions_open)"
		loaded=$(rss "$FTPCT_PID")
		metric rss_base_kib "$base"
		metric rss_open_kib "$loaded"
		metric rss_open_per_session_bytes $(((loaded - base) * 1024 / N))
		sleep 25 # the expectations (--timeout 20s) expire: idle sessions
		metric expectations_pending "$(ftpct_stat expect_pending)"
		idle_rss=$(rss "$FTPCT_PID")
		metric rss_idle_kib "$idle_rss"
		metric rss_idle_per_session_bytes $(((idle_rss - base) * 1024 / N))
		# Idle for longer: the runtime collects at least every 2 minutes and
		# its scavenger gives back to the system the heap pages the ramp's
		# garbage took beyond the next collection's goal.
		cpu0=$(cpu "$FTPCT_PID") alloc0=$(counter go_memstats_alloc_bytes_total) gc0=$(counter go_gc_duration_seconds_count)
		sleep "$SETTLE"
		late_rss=$(rss "$FTPCT_PID")
		metric settle_cpu_s "$(awk -v t=$(($(cpu "$FTPCT_PID") - cpu0)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }')"
		metric settle_alloc_mib $((($(counter go_memstats_alloc_bytes_total) - alloc0) / 1048576))
		metric settle_gc_cycles $(($(counter go_gc_duration_seconds_count) - gc0))
		metric rss_settled_kib "$late_rss"
		metric rss_settled_per_session_bytes $(((late_rss - base) * 1024 / N))
		# What the Go heap holds (live objects and garbage not yet
		# collected), what it spans, and the next collection's goal.
		for m in heap_alloc heap_inuse heap_idle heap_released heap_sys stack_inuse sys next_gc; do
			metric "go_${m}_kib" "$(heap "$m")"
		done
		metric heap_alloc_per_session_bytes $((($(heap heap_alloc) - base_heap) * 1024 / N))
		log "  ftpct RSS ${base} KiB -> ${loaded} KiB open -> ${idle_rss} KiB idle -> ${late_rss} KiB ${SETTLE} s later with $N sessions"
		for pid in "${idle[@]}"; do kill -USR1 "$pid"; done
	else
		fail "sessions: not all opened within 900 s"
		for pid in "${idle[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	fi
	usable=0
	for ((i = 0; i < nsrv; i++)); do
		rc=0
		wait "${idle[i]}" || rc=$?
		cat "$WORK/idle$i.out" >&2
		((rc == 0)) || fail "ftpload idle $i: $(tail -3 "$WORK/idle$i.err")"
		usable=$((usable + $(awk '$1 == "idle_usable" { print $2 }' "$WORK/idle$i.out")))
	done
	metric sessions_usable "$usable"
	((usable == N)) || fail "$usable of $N sessions answered NOOP"
	stop
fi

if ((STORM > 0)); then
	log "storm: 8 connections sending PORT for $STORM s, ftpct's RSS every 10 s"
	start_ftpct --metrics "$METRICS" || exit 1
	# In rounds of 20 s, each on 8 new connections, as in the runs recorded
	# in BENCHMARKS.md. (They were needed before b0950f8: past about 66,000
	# bytes of summed growth on one connection conntrack's window tracking
	# took the server's acknowledgements for INVALID; resized connections
	# are liberal in conntrack now, see e2e TestLongActiveSession.)
	(
		end=$(($(date +%s) + STORM))
		while (($(date +%s) < end)); do
			"${C[@]}" "$LOAD" storm -addr 203.0.113.3:21 -conns 8 -dur "$((end - $(date +%s) < 20 ? end - $(date +%s) : 20))s" -want ok ||
				{ echo "storm_failed 1"; exit 1; }
		done
	) > "$WORK/storm.out" 2> "$WORK/storm.err" &
	storm=$!
	PIDS+=($storm)
	storm_cpu0=$(cpu "$FTPCT_PID")
	samples=() anon=()
	for ((s = 10; s < STORM; s += 10)); do
		sleep 10
		r=$(rss "$FTPCT_PID") a=$(rss_anon "$FTPCT_PID")
		samples+=("$r") anon+=("$a")
		log "  ${s} s: RSS $r KiB (anonymous $a KiB)"
		echo "$s $r $a $(mem_classes "$FTPCT_PID")" >> "$WORK/storm-mem.txt"
	done
	rc=0
	wait "$storm" || rc=$?
	storm_cpu=$(($(cpu "$FTPCT_PID") - storm_cpu0))
	cat "$WORK/storm.out" >&2
	((rc == 0)) || fail "ftpload storm: $(tail -3 "$WORK/storm.err")"
	metric storm_rounds "$(grep -c '^storm_ok' "$WORK/storm.out")"
	metric storm_ports_ok "$(awk '$1 == "storm_ok" { n += $2 } END { print n + 0 }' "$WORK/storm.out")"
	metric storm_port_per_s "$(awk '$1 == "storm_port_per_s" { r += $2; n++ } END { printf "%.0f", n ? r / n : 0 }' "$WORK/storm.out")"
	# ftpct's CPU (user and system) through the storm, per PORT answered.
	metric storm_cpu_us_per_port "$(awk -v t="$storm_cpu" -v hz="$(getconf CLK_TCK)" '$1 == "storm_ok" { n += $2 } END { printf "%.1f", n ? t / hz * 1e6 / n : 0 }' "$WORK/storm.out")"
	metric storm_rss_samples_kib "$(
		IFS=,
		echo "${samples[*]}"
	)"
	metric storm_rss_anon_samples_kib "$(
		IFS=,
		echo "${anon[*]}"
	)"
	# Where the private memory is, every 10 s (KiB; see mem_classes).
	metric storm_mem_columns "s,rss,anon,$MEM_COLUMNS"
	while read -r line; do metric storm_mem "${line// /,}"; done < "$WORK/storm-mem.txt"
	# Flat: after 30 s of warm-up every sample within 5% of the median.
	if ((${#samples[@]} < 3)); then
		fail "storm: ${#samples[@]} RSS samples, too few to judge after the warm-up (--storm 40 or more)"
	else
		printf '%s\n' "${samples[@]:2}" | sort -n > "$WORK/warm"
		min=$(head -1 "$WORK/warm") max=$(tail -1 "$WORK/warm") med=$(awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }' "$WORK/warm")
		metric storm_rss_min_kib "$min"
		metric storm_rss_max_kib "$max"
		metric storm_rss_spread_pct "$(awk -v a="$min" -v b="$max" -v m="$med" 'BEGIN { printf "%.1f", 100 * (b - a) / m }')"
		awk -v a="$min" -v b="$max" -v m="$med" 'BEGIN { exit !(a >= 0.95 * m && b <= 1.05 * m) }' ||
			fail "storm: RSS not within 5% of its median ($min..$max KiB, median $med)"
		# The same for the private part (informational): VmRSS also grows
		# as code first runs, the executable's pages faulted in.
		printf '%s\n' "${anon[@]:2}" | sort -n > "$WORK/warm-anon"
		min=$(head -1 "$WORK/warm-anon") max=$(tail -1 "$WORK/warm-anon") med=$(awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }' "$WORK/warm-anon")
		metric storm_rss_anon_min_kib "$min"
		metric storm_rss_anon_max_kib "$max"
		metric storm_rss_anon_spread_pct "$(awk -v a="$min" -v b="$max" -v m="$med" 'BEGIN { printf "%.1f", 100 * (b - a) / m }')"
	fi
	stop
fi

[[ -z $OUT ]] || cp "$WORK/results.txt" "$OUT"
if ((FAILED)); then
	log "$FAILED check(s) failed"
	exit 1
fi
log "done"
