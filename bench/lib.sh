# Shared by bench/sidebyside.sh and bench/memory.sh (sourced, never run):
# the lab, cleanup by PID, logging, and ftpct's start and stop on the gateway.
#
# bench_init PREFIX TMPNAME: the lab's NAME (PREFIX and the PID), the work
# directory /tmp/TMPNAME.XXXXXX, and the traps: on exit (also after SIGINT or
# SIGTERM, exit status 130) every process in PIDS is stopped (SIGTERM, then
# SIGKILL after 5 s), a running ftpct's rules are uninstalled, the lab is
# taken down, nf_conntrack_max is put back when CT_MAX_WAS is set, and the
# work directory is removed.
bench_init() {
	NAME=$1$(($$ % 100000))
	WORK=$(mktemp -d "/tmp/$2.XXXXXX")
	LAB=lab/lab.sh
	PIDS=()
	FAILED=0
	FAIL_EXITS=${FAIL_EXITS:-0}
	FTPCT_PID=
	FTPCT_ARGS=()
	CT_MAX_WAS=
	trap bench_cleanup EXIT
	trap 'echo "interrupted" >&2; exit 130' INT TERM
}

bench_cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	done
	if [[ -n $FTPCT_PID ]]; then
		timeout 30 "${G[@]}" "$FTPCT" uninstall --socket "$DIR/ftpct.sock" "${FTPCT_ARGS[@]}" >/dev/null 2>&1 || true
	fi
	bash "$LAB" down "$NAME" >/dev/null 2>&1 || true
	[[ -z $CT_MAX_WAS ]] || sysctl -qw net.netfilter.nf_conntrack_max="$CT_MAX_WAS" || true
	rm -rf "$WORK"
}

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

# fail MESSAGE: counts a failed check; exits 1 at once when FAIL_EXITS is 1.
fail() {
	log "FAILED: $*"
	FAILED=$((FAILED + 1))
	if ((FAIL_EXITS)); then exit 1; fi
}

# bench_build: ftpct and bench/ftpload into the work directory (FTPCT, LOAD).
bench_build() {
	log "building ftpct and bench/ftpload"
	go build -o "$WORK/ftpct" ./cmd/ftpct
	go build -o "$WORK/ftpload" ./bench/ftpload
	FTPCT=$WORK/ftpct LOAD=$WORK/ftpload
}

# lab_up: the masquerading-gateway lab (lab/lab.sh up NAME none); DIR, and the
# commands G, C and S that run in its gateway, client and server namespaces.
lab_up() {
	bash "$LAB" up "$NAME" none >&2
	DIR=$(bash "$LAB" dir "$NAME")
	G=(ip netns exec "$NAME-g")
	C=(ip netns exec "$NAME-c")
	S=(ip netns exec "$NAME-s")
}

# rss PID: resident memory in KiB.
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# rss_anon PID: the process's private resident memory in KiB (RssAnon: the
# Go heap, stacks and the runtime's own; not the executable's pages, which
# VmRSS also counts as they are first run).
rss_anon() { awk '/^RssAnon:/ { print $2 }' "/proc/$1/status"; }

# ftpct_stat NAME: one figure of `ftpct stats --json` (0 when absent).
ftpct_stat() { "${G[@]}" "$FTPCT" stats --json --socket "$DIR/ftpct.sock" | python3 -c "import json,sys; print(json.load(sys.stdin).get('$1', 0))"; }

# log_ftpct_stats: all of `ftpct stats --json` on one log line.
log_ftpct_stats() { log "  ftpct stats: $("${G[@]}" "$FTPCT" stats --json --socket "$DIR/ftpct.sock" | tr -d '\n ')"; }

# start_ftpct ARGS...: ftpct on the gateway; waits until `ftpct stats` answers.
# Returns 1 (a failed check) when it does not.
start_ftpct() {
	FTPCT_ARGS=("$@")
	"${G[@]}" "$FTPCT" run --socket "$DIR/ftpct.sock" "$@" > "$WORK/ftpct.log" 2>&1 &
	FTPCT_PID=$!
	PIDS+=("$FTPCT_PID")
	echo "$FTPCT_PID" > "$DIR/pids/ftpct"
	for _ in $(seq 100); do
		if "${G[@]}" "$FTPCT" stats --socket "$DIR/ftpct.sock" >/dev/null 2>&1; then return 0; fi
		kill -0 "$FTPCT_PID" 2>/dev/null || break
		sleep 0.1
	done
	cat "$WORK/ftpct.log" >&2
	fail "ftpct did not start"
	return 1
}

# stop_ftpct: SIGTERM (SIGKILL and a failed check after 10 s), then
# `ftpct uninstall`: ftpct leaves its rules for the next run, the next one
# must not see them (as e2e/harness_test.go does). Exits 1 when ftpct's
# tables are still there.
stop_ftpct() {
	[[ -n $FTPCT_PID ]] || return 0
	kill -TERM "$FTPCT_PID" 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "$FTPCT_PID" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$FTPCT_PID" 2>/dev/null; then
		kill -KILL "$FTPCT_PID"
		fail "ftpct did not stop within 10 s of SIGTERM"
	fi
	local rc=0
	wait "$FTPCT_PID" || rc=$?
	((rc == 0)) || { tail -20 "$WORK/ftpct.log" >&2; fail "ftpct exited with status $rc"; }
	rm -f "$DIR/pids/ftpct"
	if ! timeout 30 "${G[@]}" "$FTPCT" uninstall --socket "$DIR/ftpct.sock" "${FTPCT_ARGS[@]}" > "$WORK/uninstall.log" 2>&1; then
		cat "$WORK/uninstall.log" >&2
		fail "ftpct uninstall failed"
	fi
	FTPCT_PID=
	if "${G[@]}" nft list tables | grep -q ftpct; then
		fail "ftpct tables left after ftpct uninstall"
		exit 1
	fi
}

# start_responder ADDR LOGFILE: ADDR added in the server namespace, its port
# 21 sent to ftpload's responder on ADDR:2121 (vsftpd holds the wildcard
# address's 21); waits until it listens, exits 1 when it does not.
start_responder() {
	local a=$1 log=$2 pid
	shift 2 # the rest: more flags of ftpload serve
	"${S[@]}" ip addr add "$a/24" dev "$NAME-sw"
	"${S[@]}" iptables -t nat -A PREROUTING -d "$a" -p tcp --dport 21 -j DNAT --to-destination "$a:2121"
	"${S[@]}" "$LOAD" serve -listen "$a:2121" "$@" > "$log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	for _ in $(seq 50); do
		"${S[@]}" ss -Hltn "src $a and sport = :2121" | grep -q LISTEN && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	"${S[@]}" ss -Hltn "src $a and sport = :2121" | grep -q LISTEN ||
		{ cat "$log" >&2; fail "ftpload serve did not start"; exit 1; }
}

# client_addrs K: K client addresses 10.0.1.10 on; SRCS lists them for
# ftpload's -src.
client_addrs() {
	local a
	SRCS=
	for ((a = 0; a < $1; a++)); do
		"${C[@]}" ip addr add "10.0.1.$((10 + a))/24" dev "$NAME-cl"
		SRCS+="${SRCS:+,}10.0.1.$((10 + a))"
	done
}
