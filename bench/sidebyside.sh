#!/usr/bin/env bash
# Side-by-side benchmark of ftpct against the kernel's FTP helper, as root on
# Debian (needs what lab/deps.sh installs). One masquerading-gateway lab
# (lab/lab.sh up NAME none); each round runs the same loads through the kernel
# helper (lab.sh's CT rule added on the gateway), through ftpct (started on the
# gateway as e2e/harness_test.go does), through ftpct's divert rules to a
# program that accepts every queued packet unread (bench/qaccept: the ceiling
# of any NFQUEUE helper), through the kernel helper with that program queueing
# every control packet besides (kqueue: the ceiling of an NFQUEUE helper for
# full sessions), through the kernel helper with that program queueing what
# ftpct's rules queue before any flow is held (kqmin: fewer packets than ftpct
# queues, so a bound ftpct cannot pass) and with no helper (the ceiling of
# the setup), in a
# rotating order so that noise from the rest of the machine hits every
# variant. Prints a markdown table of the medians over rounds.
#
#   bench/sidebyside.sh [--rounds N] [--dur SECONDS] [--idle K] [--out FILE]
#                                      defaults: 3 rounds, 5 s per load, 5000 idle
#                                      sessions; --rounds 0: memory only, --idle 0: none
#   bench/sidebyside.sh --variants ftpct   only some variants (default "kernel ftpct kqueue kqmin queue none")
#   bench/sidebyside.sh --no-reuse         skip the client-port reuse check
#   bench/sidebyside.sh --timeline N       instead of the loads: N sessions one at a time
#                                      through the kernel helper and through ftpct,
#                                      captured on both gateway interfaces; prints
#                                      the gateway's transit time per kind of packet
#                                      per session (bench/timeline.py)
#   FTPCT_FLAGS="--queues 1" bench/sidebyside.sh ...   extra flags for `ftpct run`
#                                      (its --queues also for queue, kqueue and kqmin)
#   FTPCT_BASE=/tmp/ftpct-old bench/sidebyside.sh --variants "ftpct base" ...
#                                      variant base: that ftpct binary (another
#                                      build, same flags) alongside this tree's,
#                                      in the same rotation: before/after
#   bench/sidebyside.sh --smoke        1 round, tiny loads (< 60 s): checks that
#                                      every variant works as it should (timings
#                                      are printed, never asserted)
#
# Exits 1 when a check failed (still printing the table). After each ftpct run,
# `ftpct uninstall` removes what ftpct leaves installed.
#
# Loads (bench/ftpload, run in the client namespace against vsftpd):
#   storm   8 control connections, each sending PORT and waiting for the reply;
#           every PORT must be answered 200, i.e. rewritten to the gateway's
#           address (no helper: every one must be refused, 500); for ftpct,
#           base, kqueue and queue also the helper's CPU time per PORT (as for
#           noop; for kqueue and queue that of bench/qaccept)
#   conc    16 concurrent full active-mode sessions (login, PORT, RETR
#           hello.txt, QUIT): sessions/s, session time p50/p99; for ftpct,
#           base, kqueue also the helper's CPU time per session (as for noop)
#   serial  one session at a time: session time p50/p99 (and CPU, as conc)
#   noop    8 connections sending NOOP one at a time: round-trip p50/p99;
#           for ftpct, base, kqueue and queue also the CPU time (user and system) of
#           the helper's process per round trip, from /proc/PID/stat: on a
#           shared machine it varies much less than the rates
#   reuse   3 sessions in a row from one client port (a check, not timed)
#   mem     ftpct only, once: K idle NATed sessions, each with one PORT answered
#           200, held from several client addresses against ftpload's own
#           responder (vsftpd would need two processes per session); ftpct's
#           resident memory before and with them, per session; then every
#           session must still answer NOOP
# Without a helper, active-mode sessions cannot work through the masquerade:
# the no-helper run only checks that they fail (the negative control). The
# queue variant rewrites nothing either: its storm is refused and its sessions
# fail as with no helper; it must have accepted packets from its queues.
# The kqueue variant runs the kernel helper (as kernel) and bench/qaccept
# -hold-all (every packet of a control connection queued, bare ACKs included,
# and every first SYN: at least what ftpct queues in these loads): storm and
# sessions must succeed as with the kernel helper, and bench/qaccept must have
# accepted packets. The kqmin variant is kqueue with plain bench/qaccept:
# ftpct's own rules, nothing held, nothing guarded, so it queues a subset of
# what ftpct queues (all of a control connection's packets but the bare ACKs,
# not the data connections' SYNs): whatever ftpct does, it cannot be faster
# than kqmin. Its checks are kqueue's.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin

ROUNDS=3 DUR=5 IDLE=5000 SMOKE=0 OUT= VARIANTS="kernel ftpct kqueue kqmin queue none" TIMELINE=0 REUSE=1
STORM_CONNS=8 CONC=16 NOOP_CONNS=8
while [[ $# -gt 0 ]]; do
	case $1 in
	--smoke) SMOKE=1; shift ;;
	--rounds) ROUNDS=$2; shift 2 ;;
	--dur) DUR=$2; shift 2 ;;
	--idle) IDLE=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--variants) VARIANTS=$2; shift 2 ;;
	--timeline) TIMELINE=$2; shift 2 ;;
	--no-reuse) REUSE=0; shift ;;
	*) echo "usage: $0 [--smoke] [--rounds N] [--dur SECONDS] [--idle K] [--variants 'kernel ftpct kqueue kqmin queue none'] [--timeline N] [--no-reuse] [--out FILE]" >&2; exit 2 ;;
	esac
done
if ((SMOKE)); then ROUNDS=1 DUR=1 IDLE=50; fi
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -le 20 ]] || { echo "--rounds: 0 (memory only) to 20" >&2; exit 2; }
[[ $DUR =~ ^[1-9][0-9]*$ && $DUR -le 120 ]] || { echo "--dur: 1 to 120 seconds" >&2; exit 2; }
[[ $IDLE =~ ^[0-9]+$ && $IDLE -le 200000 ]] || { echo "--idle: 0 to 200000" >&2; exit 2; }
[[ $TIMELINE =~ ^[0-9]+$ && $TIMELINE -le 5000 ]] || { echo "--timeline: 0 to 5000 sessions" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "$0: needs root (network namespaces, netfilter)" >&2; exit 1; }
# Each idle session is a conntrack entry on the gateway and one in the server
# namespace; every namespace may hold nf_conntrack_max entries.
ctmax=$(cat /proc/sys/net/netfilter/nf_conntrack_max 2>/dev/null || echo 0)
if ((IDLE > 0 && IDLE + 2000 > ctmax)); then
	echo "$0: --idle $IDLE needs net.netfilter.nf_conntrack_max >= $((IDLE + 2000)) (it is $ctmax); raise it first:" >&2
	echo "  sysctl -w net.netfilter.nf_conntrack_max=$((IDLE + 2000))" >&2
	exit 2
fi
# Each idle session is a socket in ftpload and one in its responder, each a
# single process.
if ((IDLE > 0)) && (($(ulimit -n) < IDLE + 4096)); then
	if ! ulimit -n $((IDLE + 4096)) 2>/dev/null; then
		echo "$0: --idle $IDLE needs an open-file limit of $((IDLE + 4096)); it is $(ulimit -n) and cannot be raised here" >&2
		exit 2
	fi
fi

FAIL_EXITS=$SMOKE # --smoke stops at the first failed check
. bench/lib.sh
bench_init b ftpct-bench

bench_build
if [[ " $VARIANTS " == *" queue "* || " $VARIANTS " == *" kqueue "* || " $VARIANTS " == *" kqmin "* ]]; then
	go build -o "$WORK/qaccept" ./bench/qaccept
	QACCEPT=$WORK/qaccept
fi
RESULTS=$WORK/results.txt
echo "# round variant metric value" > "$RESULTS"

LOAD_BEFORE=$(cat /proc/loadavg)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
STARTED=$(date -u +'%Y-%m-%d %H:%M UTC')

lab_up
SERVER=203.0.113.2:21

KERNEL_RULE=(-t raw -A PREROUTING -p tcp --dport 21 -j CT --helper ftp) # lab.sh's "kernel" line

# The queue, kqueue and kqmin variants: as many queues as ftpct's --queues in FTPCT_FLAGS (ftpct's
# default, one per CPU, otherwise).
QUEUES=$(nproc)
read -ra fflags <<< "${FTPCT_FLAGS:-}"
for ((i = 0; i < ${#fflags[@]}; i++)); do
	case ${fflags[i]} in
	--queues) QUEUES=${fflags[i + 1]:-} ;;
	--queues=*) QUEUES=${fflags[i]#--queues=} ;;
	esac
done
((QUEUES > 0)) || QUEUES=$(nproc) # --queues 0: one per CPU
QA_PID=

# start_qaccept [FLAGS...]: bench/qaccept on the gateway; waits until its
# rules are in.
start_qaccept() {
	"${G[@]}" "$QACCEPT" -queues "$QUEUES" "$@" > "$WORK/qaccept.out" 2> "$WORK/qaccept.err" &
	QA_PID=$!
	PIDS+=("$QA_PID")
	for _ in $(seq 100); do
		grep -q '^ready' "$WORK/qaccept.out" && return 0
		kill -0 "$QA_PID" 2>/dev/null || break
		sleep 0.1
	done
	cat "$WORK/qaccept.err" >&2
	fail "bench/qaccept did not start"
	return 1
}

# stop_qaccept ROUND VARIANT: SIGTERM; it must exit 0, remove its table and
# have accepted packets (the divert was in the path).
stop_qaccept() {
	local rc=0 n
	kill -TERM "$QA_PID" 2>/dev/null || true
	wait "$QA_PID" || rc=$?
	QA_PID=
	((rc == 0)) || fail "bench/qaccept exited with status $rc: $(tail -3 "$WORK/qaccept.err")"
	n=$(awk '$1 == "packets" { print $2 }' "$WORK/qaccept.out")
	echo "$1 $2 queue.packets ${n:-0}" >> "$RESULTS"
	log "  qaccept: ${n:-0} packets accepted from $QUEUES queue(s)"
	((${n:-0} > 0)) || fail "$2 round $1: bench/qaccept accepted no packet"
	if "${G[@]}" nft list tables | grep -q ftpctq; then
		fail "bench/qaccept left its table"
	fi
}

setup() {
	case $1 in
	kernel) "${G[@]}" iptables "${KERNEL_RULE[@]}" ;;
	ftpct)
		local extra=()
		read -ra extra <<< "${FTPCT_FLAGS:-}"
		start_ftpct "${extra[@]}" ;;
	base)
		local extra=()
		read -ra extra <<< "${FTPCT_FLAGS:-}"
		FTPCT_OWN=$FTPCT FTPCT=$FTPCT_BASE # until teardown
		start_ftpct "${extra[@]}" ;;
	queue) start_qaccept ;;
	kqueue)
		"${G[@]}" iptables "${KERNEL_RULE[@]}"
		start_qaccept -hold-all || { "${G[@]}" iptables "${KERNEL_RULE[@]/-A/-D}"; return 1; } ;;
	kqmin)
		"${G[@]}" iptables "${KERNEL_RULE[@]}"
		start_qaccept || { "${G[@]}" iptables "${KERNEL_RULE[@]/-A/-D}"; return 1; } ;;
	none) ;;
	esac
}

teardown() {
	case $1 in
	kernel) "${G[@]}" iptables "${KERNEL_RULE[@]/-A/-D}" ;;
	ftpct)
		log_ftpct_stats
		stop_ftpct ;;
	base)
		log_ftpct_stats
		stop_ftpct
		FTPCT=$FTPCT_OWN ;;
	queue) stop_qaccept "$round" queue ;;
	kqueue | kqmin)
		stop_qaccept "$round" "$1"
		"${G[@]}" iptables "${KERNEL_RULE[@]/-A/-D}" ;;
	none) ;;
	esac
	# Every variant starts from an empty conntrack table.
	"${G[@]}" conntrack -F >/dev/null 2>&1 || true
	sleep 0.5
}

# helper_pid VARIANT: the process of the variant's helper, if it has one.
helper_pid() {
	case $1 in
	ftpct | base) echo "$FTPCT_PID" ;;
	queue | kqueue | kqmin) echo "$QA_PID" ;;
	esac
}

# cpu_ticks PID: its CPU time so far, user and system, all threads, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# load ROUND VARIANT ARGS...: one ftpload run in the client namespace, bounded;
# its "metric value" lines go to the results.
load() {
	local round=$1 variant=$2 out rc=0 pid t0=
	shift 2
	pid=$(helper_pid "$variant")
	[[ -z $pid ]] || t0=$(cpu_ticks "$pid")
	out=$(timeout -s QUIT --kill-after=5 $((DUR + 90)) "${C[@]}" "$LOAD" "$@" -addr "$SERVER" 2> "$WORK/load.err") || rc=$?
	awk -v r="$round" -v v="$variant" 'NF == 2 { print r, v, $1, $2 }' <<< "$out" >> "$RESULTS"
	if [[ -n $t0 ]]; then
		# Round trips (PORTs, sessions) done: the rate times the load's
		# duration (the timed loads only: not neg, reuse or timeline).
		awk -v r="$round" -v v="$variant" -v t="$(($(cpu_ticks "$pid") - t0))" -v hz="$(getconf CLK_TCK)" -v d="$DUR" '
			$1 ~ /^noop\.noop_per_s$/ && $2 > 0 { printf "%s %s noop.helper_cpu_us_per_rt %.2f\n", r, v, t / hz * 1e6 / ($2 * d) }
			$1 ~ /^storm\.storm_port_per_s$/ && $2 > 0 { printf "%s %s storm.helper_cpu_us_per_port %.2f\n", r, v, t / hz * 1e6 / ($2 * d) }
			$1 ~ /^(conc|serial)\.sessions_per_s$/ && $2 > 0 { split($1, m, "."); printf "%s %s %s.helper_cpu_us_per_session %.1f\n", r, v, m[1], t / hz * 1e6 / ($2 * d) }' <<< "$out" >> "$RESULTS"
	fi
	if ((rc != 0)); then
		[[ $rc == 124 || $rc == 2 ]] && cat "$WORK/load.err" >&2 # timed out: Go's goroutine dump
		fail "$variant round $round: ftpload $*: $(tail -3 "$WORK/load.err")"
		return 0
	fi
	log "  $variant: $(tr '\n' ' ' <<< "$out")"
}

# Client ports: each sessions run gets its own slice of 1100-31099 (below the
# client's ephemeral range), half for data connections, half for control
# connections, taken in order (see portRange in bench/ftpload). A slice is used
# again only six runs later, by another ftpct process, after the server's
# TIME_WAIT of its last use is over. Left to the kernel, a client port is
# handed out again within a fraction of a second once the server closed the
# connection; the "reuse" check below tries exactly that.
SLICE=5000 NEXTPORT=1100
ports() {
	PORTS="$NEXTPORT-$((NEXTPORT + SLICE / 2 - 1))"
	CTRL="$((NEXTPORT + SLICE / 2))-$((NEXTPORT + SLICE - 1))"
	NEXTPORT=$((NEXTPORT + SLICE))
	((NEXTPORT + SLICE - 1 <= 31099)) || NEXTPORT=1100
}

# timeline VARIANT: N sessions one at a time, captured on both gateway sides.
timeline() {
	local v=$1 pid_l pid_w
	setup "$v" || return 0
	"${G[@]}" tcpdump -i "$NAME-gl" -n -s 128 -B 8192 --immediate-mode -U -w "$WORK/lan.pcap" tcp 2> "$WORK/tcpdump-l.err" &
	pid_l=$!
	PIDS+=("$pid_l")
	"${G[@]}" tcpdump -i "$NAME-gw" -n -s 128 -B 8192 --immediate-mode -U -w "$WORK/wan.pcap" tcp 2> "$WORK/tcpdump-w.err" &
	pid_w=$!
	PIDS+=("$pid_w")
	for _ in $(seq 50); do
		grep -q listening "$WORK/tcpdump-l.err" && grep -q listening "$WORK/tcpdump-w.err" && break
		sleep 0.1
	done
	ports
	load 1 "$v" sessions -tag timeline -conns 1 -max "$TIMELINE" -dur 120s -ports "$PORTS" -ctrl-ports "$CTRL" -want ok
	sleep 1
	kill -TERM "$pid_l" "$pid_w"
	wait "$pid_l" "$pid_w" || true
	echo
	echo "#### $v: gateway transit per session ($TIMELINE sessions one at a time)"
	echo
	awk -v v="$v" '$2 == v && $3 ~ /^timeline\.session_p/ { printf "%s %s ms; ", $3, $4 } END { print "" }' "$RESULTS"
	echo
	python3 bench/timeline.py "$WORK/lan.pcap" "$WORK/wan.pcap" "$TIMELINE"
	teardown "$v"
}

if ((TIMELINE > 0)); then
	{
		echo "Timeline of $(date -u +'%Y-%m-%d %H:%M UTC'), commit $COMMIT, load $(cut -d' ' -f1-3 /proc/loadavg)."
		for v in $VARIANTS; do [[ $v == none || $v == queue ]] || timeline "$v"; done
	} > "$WORK/timeline.md"
	cat "$WORK/timeline.md"
	[[ -z $OUT ]] || cp "$WORK/timeline.md" "$OUT"
	exit $((FAILED > 0))
fi

read -ra variants <<< "$VARIANTS"
for v in "${variants[@]}"; do
	case $v in kernel | ftpct | kqueue | kqmin | queue | none) ;;
	base) [[ -x ${FTPCT_BASE:-} ]] || { echo "--variants base: FTPCT_BASE must name an ftpct binary" >&2; exit 2; } ;;
	*) echo "--variants: kernel, ftpct, base, kqueue, kqmin, queue or none, not '$v'" >&2; exit 2 ;;
	esac
done
nv=${#variants[@]}
for ((round = 1; round <= ROUNDS; round++)); do
	for ((i = 0; i < nv; i++)); do
		v=${variants[$(((i + round - 1) % nv))]}
		log "round $round/$ROUNDS: $v (load $(cut -d' ' -f1-3 /proc/loadavg))"
		setup "$v" || continue
		if [[ $v == none || $v == queue ]]; then
			load "$round" "$v" storm -tag storm -conns "$STORM_CONNS" -dur "${DUR}s" -want refused
			load "$round" "$v" sessions -tag neg -conns 1 -max 3 -dur 5s -want fail
			load "$round" "$v" noop -tag noop -conns "$NOOP_CONNS" -dur "${DUR}s"
		else
			[[ $v == ftpct || $v == base ]] && before=$(ftpct_stat rewrites)
			load "$round" "$v" storm -tag storm -conns "$STORM_CONNS" -dur "${DUR}s" -want ok
			if [[ $v == ftpct || $v == base ]]; then
				after=$(ftpct_stat rewrites)
				ok=$(awk -v r="$round" -v v="$v" '$1 == r && $2 == v && $3 == "storm.storm_ok" { print $4 }' "$RESULTS")
				echo "$round $v storm.ftpct_rewrites $((after - before))" >> "$RESULTS"
				if [[ -n $ok ]] && ((after - before < ${ok%.*})); then
					fail "$v round $round: $((after - before)) rewrites for $ok PORTs answered 200"
				fi
			fi
			ports
			load "$round" "$v" sessions -tag conc -conns "$CONC" -dur "${DUR}s" -ports "$PORTS" -ctrl-ports "$CTRL" -want ok
			ports
			load "$round" "$v" sessions -tag serial -conns 1 -dur "${DUR}s" -ports "$PORTS" -ctrl-ports "$CTRL" -want ok
			load "$round" "$v" noop -tag noop -conns "$NOOP_CONNS" -dur "${DUR}s"
			if ((REUSE)); then
				# Three sessions in a row from one client port, as a client
				# whose port the kernel hands out again right away.
				local_data=$((31100 + 50 * round)); [[ $v == ftpct ]] && local_data=$((local_data + 10))
				[[ $v == base ]] && local_data=$((local_data + 20))
				[[ $v == kqueue ]] && local_data=$((local_data + 30))
				[[ $v == kqmin ]] && local_data=$((local_data + 40))
				load "$round" "$v" sessions -tag reuse -conns 1 -max 3 -dur 30s -ports "$local_data-$((local_data + 9))" \
					-src-port $((61000 + round)) -want ok
			fi
		fi
		teardown "$v"
	done
done

if ((IDLE > 0)); then
	log "memory: ftpct with $IDLE idle NATed sessions"
	# A second server address, with ftpload's responder (start_responder).
	start_responder 203.0.113.3 "$WORK/serve.log"
	# Client addresses: a source port range (~28,000 ports) each, with room.
	client_addrs $((IDLE / 10000 + 1))
	maxs=$((IDLE + 1000 > 65536 ? IDLE + 1000 : 65536))
	if start_ftpct --max-expect $((IDLE + 1000)) --max-sessions "$maxs"; then
		sleep 1
		base=$(rss "$FTPCT_PID")
		"${C[@]}" "$LOAD" idle -addr 203.0.113.3:21 -n "$IDLE" -src "$SRCS" -hold 5m \
			> "$WORK/idle.out" 2> "$WORK/idle.err" &
		idle_pid=$! # ftpload itself (ip netns exec execs it): holds until SIGUSR1, at most 5 minutes
		PIDS+=("$idle_pid")
		for _ in $(seq $((IDLE / 10 + 600))); do
			grep -q '^ready' "$WORK/idle.out" && break
			kill -0 "$idle_pid" 2>/dev/null || break
			sleep 0.1
		done
		if grep -q '^ready' "$WORK/idle.out"; then
			sleep 2
			loaded=$(rss "$FTPCT_PID")
			sessions=$(ftpct_stat sessions)
			kill -USR1 "$idle_pid"
		else
			kill -TERM "$idle_pid" 2>/dev/null || true
		fi
		rc=0
		wait "$idle_pid" || rc=$?
		awk 'NF == 2 { print "1 ftpct mem." $1, $2 }' "$WORK/idle.out" >> "$RESULTS"
		if [[ -n ${loaded:-} ]]; then
			{
				echo "1 ftpct mem.rss_base_kib $base"
				echo "1 ftpct mem.rss_loaded_kib $loaded"
				echo "1 ftpct mem.rss_per_session_bytes $(((loaded - base) * 1024 / (sessions > 0 ? sessions : 1)))"
			} >> "$RESULTS"
			log "  ftpct RSS ${base} KiB -> ${loaded} KiB with $IDLE sessions (ftpct stats sessions: ${sessions:-?})"
		fi
		((rc == 0)) || fail "memory: ftpload idle: $(tail -3 "$WORK/idle.err")"
		stop_ftpct
	fi
fi

LOAD_AFTER=$(cat /proc/loadavg)
{
	echo "Run of $STARTED, commit $COMMIT, $(nproc) CPUs, kernel $(uname -r)."
	echo "Command: ${FTPCT_FLAGS:+FTPCT_FLAGS=\"$FTPCT_FLAGS\" }${FTPCT_BASE:+FTPCT_BASE=$FTPCT_BASE }bench/sidebyside.sh --variants \"$VARIANTS\" --rounds $ROUNDS --dur $DUR --idle $IDLE$( ((REUSE)) || echo ' --no-reuse')$( ((SMOKE)) && echo ' (--smoke)')"
	echo "Loads: storm $STORM_CONNS connections, $CONC concurrent sessions, NOOP $NOOP_CONNS connections, ${DUR} s each."
	echo "/proc/loadavg before: $LOAD_BEFORE; after: $LOAD_AFTER."
	echo
	"$LOAD" report "$RESULTS"
} | tee "${OUT:-/dev/null}"
if ((FAILED)); then
	log "$FAILED check(s) failed"
	exit 1
fi
log "done"
