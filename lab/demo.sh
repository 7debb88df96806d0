#!/usr/bin/env bash
# Demonstration: FTP through a masquerading gateway with ftpct instead of the
# kernel's FTP helper. Builds the namespace lab (client, gateway, server with
# vsftpd), shows that transfers fail without a helper, starts ftpct on the
# gateway, runs transfers in all four modes with curl and lftp, shows the
# expectation table while a data connection is pending, the counters, that
# its rules outlive it (SIGTERM) and that `ftpct uninstall` leaves the
# gateway's rules as it found them. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

bash lab/deps.sh
work=$(mktemp -d /tmp/ftpct-demo.XXXXXX)
name=demo$$
name=${name:0:8}
ftpct=$work/ftpct
go build -o "$ftpct" ./cmd/ftpct

cleanup() {
	bash lab/lab.sh down "$name" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

# Bold headings only on a terminal: no escape codes in a log or a pipe.
if [[ -t 1 ]]; then bold=$'\033[1m' plain=$'\033[0m'; else bold= plain=; fi
say() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
on() { local h=$1; shift; ip netns exec "$name-$h" "$@"; }

say "Building the lab"
bash lab/lab.sh up "$name" none
dir=$(bash lab/lab.sh dir "$name")
want=$(sha256sum "$dir/root/big.bin" | cut -d' ' -f1)
sock=$dir/ftpct.sock

echo "Gateway rules (the operator's; no FTP helper):"
on g iptables -S FORWARD | sed 's/^/    /'
on g iptables -t nat -S POSTROUTING | sed 's/^/    /'

# hostport A: "h1,h2,h3,h4,p1,p2" (PORT, 227) -> "h1.h2.h3.h4:port".
hostport() { local IFS=,; set -- $1; echo "$1.$2.$3.$4:$(($5 * 256 + $6))"; }

# why LOG RC: what went wrong, in words, read from curl -v's transcript LOG
# (">" lines: commands sent; "<" lines: the server's replies) and curl's exit
# code RC (28: timed out).
why() {
	local log=$1 rc=$2 cmd reply m a p
	cmd=$(grep -m1 -E '^> (PORT|EPRT|PASV|EPSV)' "$log" | cut -c3- | tr -d '\r' || true)
	answer() { # the first reply after the line matching $1 whose code matches $2
		awk -v after="$1" -v code="$2" '$0 ~ after { f = 1; next } f && $0 ~ "^< " code " " { print substr($0, 3); exit }' "$log" | tr -d '\r'
	}
	case $cmd in
	PORT* | EPRT*)
		if [[ $cmd == PORT* ]]; then a=$(hostport "${cmd#PORT }"); else IFS='|' read -r _ _ m p _ <<< "${cmd#EPRT }"; a=$m:$p; fi
		reply=$(answer "^> ${cmd%% *}" '[0-9][0-9][0-9]')
		if [[ $reply == [45]* ]]; then
			echo "server refused ${cmd%% *}: $reply (the gateway did not rewrite the private address ${a%:*})"
		elif m=$(answer '^> (RETR|LIST|NLST)' '4[0-9][0-9]') && [[ -n $m ]]; then
			echo "server could not connect back to $a: $m (no hole for it)"
		else
			echo "${cmd%% *} $a accepted, then: $(grep -m1 '^curl: (' "$log" || echo "curl exit code $rc")"
		fi ;;
	PASV* | EPSV*)
		reply=$(answer "^> ${cmd%% *}" '[0-9][0-9][0-9]')
		if [[ $reply =~ \(([0-9]+,[0-9]+,[0-9]+,[0-9]+,[0-9]+,[0-9]+)\) ]]; then
			a=$(hostport "${BASH_REMATCH[1]}")
		elif [[ $reply =~ \(\|\|\|([0-9]+)\|\) ]]; then
			a=203.0.113.2:${BASH_REMATCH[1]}
		else
			echo "server answered ${cmd%% *} with: $reply"; return
		fi
		if ((rc == 28)); then
			echo "data connection to $a timed out: no hole for it"
		else
			echo "data connection to $a failed: $(grep -m1 '^curl: (' "$log" || echo "curl exit code $rc")"
		fi ;;
	*) # never got as far as a data-connection command: say how far it got
		m=$(grep -m1 '^curl: (' "$log" || echo "curl exit code $rc")
		if ! grep -q '^< 220' "$log"; then
			if grep -q '^\* Connected to' "$log"; then
				echo "control connection to 203.0.113.2:21 open, but no greeting from the server ($m)"
			else
				echo "no control connection to 203.0.113.2:21 ($m)"
			fi
		else
			echo "stopped after sending \"$(grep '^> ' "$log" | tail -n 1 | cut -c3- | tr -d '\r')\", last reply \"$(grep '^< ' "$log" | tail -n 1 | cut -c3- | tr -d '\r')\" ($m)"
		fi ;;
	esac
}

fetch() { # label, curl flags...
	local label=$1; shift
	local out=$work/out.$RANDOM start end rc=0
	start=$(date +%s.%N)
	on c curl -sS -v --max-time 8 --connect-timeout 5 "$@" -o "$out" "ftp://203.0.113.2/big.bin" 2>"$out.err" || rc=$?
	if ((rc == 0)); then
		end=$(date +%s.%N)
		local got; got=$(sha256sum "$out" | cut -d' ' -f1)
		printf '  %-32s %8d bytes  sha256 %s  %.2fs\n' "$label" "$(stat -c %s "$out")" "$([[ $got == "$want" ]] && echo match || echo MISMATCH)" "$(awk "BEGIN{print $end - $start}")"
	else
		printf '  %-32s FAILED: %s\n' "$label" "$(why "$out.err" "$rc")"
	fi
}

say "Without any helper: data connections are blocked (negative control)"
fetch "curl PASV (--disable-epsv)" --disable-epsv
fetch "curl PORT (-P - --disable-eprt)" -P - --disable-eprt

say "Starting ftpct on the gateway"
# Started directly (not through a function) so that $! is ftpct itself:
# ip netns exec replaces itself with the program.
ip netns exec "$name-g" "$ftpct" run --socket "$sock" > "$work/ftpct.log" 2>&1 &
echo "$!" > "$dir/pids/ftpct"
for _ in $(seq 50); do on g "$ftpct" stats --socket "$sock" >/dev/null 2>&1 && break; sleep 0.1; done
echo "ftpct installed its rules:"
on g nft list tables | grep ftpct | sed 's/^/    /'
on g iptables -S FORWARD | grep ftpct | sed 's/^/    /'

say "Transfers through ftpct (1 MiB file, checked byte for byte)"
fetch "curl PASV" --disable-epsv
fetch "curl EPSV"
fetch "curl PORT (rewritten)" -P - --disable-eprt
fetch "curl EPRT (rewritten)" -P -
for mode in on off; do
	rm -f "$work/lftp.out"
	if on c timeout 30 lftp -c "set ftp:passive-mode $mode; set net:timeout 5; set net:max-retries 1; open ftp://203.0.113.2; get big.bin -o $work/lftp.out" 2>/dev/null &&
		[[ $(sha256sum "$work/lftp.out" | cut -d' ' -f1) == "$want" ]]; then
		printf '  %-32s ok, sha256 match\n' "lftp passive-mode $mode"
	else
		printf '  %-32s FAILED\n' "lftp passive-mode $mode"
	fi
done

say "An active-mode client announces PORT and waits: the expectation table"
# The client says "announced" once its PORT got the server's 200, which has
# then passed ftpct: the expectation exists from that moment until the
# client closes its listener, 5 s later.
ip netns exec "$name-c" python3 -c '
import ftplib, time
f = ftplib.FTP("203.0.113.2", timeout=10); f.login()
s = f.makeport()   # sends PORT 10,0,1,2,..., reads the 200, listens
print("announced", flush=True)
time.sleep(5); s.close(); f.quit()' > "$work/announce.out" &
pypid=$!
for _ in $(seq 100); do grep -q announced "$work/announce.out" && break; sleep 0.1; done
on g "$ftpct" expect list --socket "$sock"
wait "$pypid"

say "Counters (ftpct stats)"
on g "$ftpct" stats --socket "$sock" | grep -vE '\s0$'

say "Daemon log"
sed 's/^/    /' "$work/ftpct.log" | tail -8

say "Stopping ftpct (SIGTERM): its rules stay, for the next run to adopt"
kill -TERM "$(cat "$dir/pids/ftpct")"
for _ in $(seq 50); do kill -0 "$(cat "$dir/pids/ftpct")" 2>/dev/null || break; sleep 0.1; done
on g nft list tables | grep ftpct | sed 's/^/    /' || echo "    no ftpct tables left!"

say "ftpct uninstall: the gateway's rules as they were"
on g "$ftpct" uninstall 2>&1 | sed 's/^/    /'
on g nft list tables | grep -q ftpct && echo "    ftpct table still present!" || echo "    no ftpct tables left"
on g iptables -S | grep -q ftpct && echo "    ftpct iptables rule still present!" || echo "    no ftpct iptables rules left"
fetch "curl PORT again, no ftpct" -P - --disable-eprt

say "Done; removing the lab"
