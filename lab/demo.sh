#!/usr/bin/env bash
# Demonstration: FTP through a masquerading gateway with ftpct instead of the
# kernel's FTP helper. Builds the namespace lab (client, gateway, server with
# vsftpd), shows that transfers fail without a helper, starts ftpct on the
# gateway, runs transfers in all four modes with curl and lftp, shows the
# expectation table while a data connection is pending, the counters, and
# that ftpct leaves the gateway's rules as it found them. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

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

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
on() { local h=$1; shift; ip netns exec "$name-$h" "$@"; }

say "Building the lab"
bash lab/lab.sh up "$name" none
dir=$(bash lab/lab.sh dir "$name")
want=$(sha256sum "$dir/root/big.bin" | cut -d' ' -f1)
sock=$dir/ftpct.sock

echo "Gateway rules (the operator's; no FTP helper):"
on g iptables -S FORWARD | sed 's/^/    /'
on g iptables -t nat -S POSTROUTING | sed 's/^/    /'

fetch() { # label, curl flags...
	local label=$1; shift
	local out=$work/out.$RANDOM start end
	start=$(date +%s.%N)
	if on c curl -sS --max-time 8 --connect-timeout 5 "$@" -o "$out" "ftp://203.0.113.2/big.bin" 2>"$out.err"; then
		end=$(date +%s.%N)
		local got; got=$(sha256sum "$out" | cut -d' ' -f1)
		printf '  %-30s %8d bytes  sha256 %s  %.2fs\n' "$label" "$(stat -c %s "$out")" "$([[ $got == "$want" ]] && echo match || echo MISMATCH)" "$(awk "BEGIN{print $end - $start}")"
	else
		printf '  %-30s FAILED (%s)\n' "$label" "$(tr -d '\n' < "$out.err" | cut -c1-60)"
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
		printf '  %-30s ok, sha256 match\n' "lftp passive-mode $mode"
	else
		printf '  %-30s FAILED\n' "lftp passive-mode $mode"
	fi
done

say "An active-mode client announces PORT and waits: the expectation table"
ip netns exec "$name-c" python3 -c '
import ftplib, time
f = ftplib.FTP("203.0.113.2", timeout=10); f.login()
s = f.makeport()   # sends PORT 10,0,1,2,... and listens
time.sleep(3); s.close(); f.quit()' &
pypid=$!
sleep 1
on g "$ftpct" expect list --socket "$sock"
wait "$pypid"

say "Counters (ftpct stats)"
on g "$ftpct" stats --socket "$sock" | grep -vE '\s0$'

say "Daemon log"
sed 's/^/    /' "$work/ftpct.log" | tail -8

say "Stopping ftpct (SIGTERM): its rules are removed"
kill -TERM "$(cat "$dir/pids/ftpct")"
for _ in $(seq 50); do kill -0 "$(cat "$dir/pids/ftpct")" 2>/dev/null || break; sleep 0.1; done
on g nft list tables | grep -q ftpct && echo "    ftpct table still present!" || echo "    no ftpct tables left"
on g iptables -S | grep -q ftpct && echo "    ftpct iptables rule still present!" || echo "    no ftpct iptables rules left"
fetch "curl PORT again, no ftpct" -P - --disable-eprt

say "Done; removing the lab"
