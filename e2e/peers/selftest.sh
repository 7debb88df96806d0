#!/bin/bash
# Loopback self-test of the awkward FTP peers (splitclient, splitserver, hostile)
# against a private vsftpd instance and against splitserver itself (with curl
# and Python's ftplib). Only 127.0.0.1 and ::1 are used. Every command is
# bounded by `timeout`; every server started here is stopped by its PID.
#
#   e2e/peers/selftest.sh            # exit 0 = all passed, 1 = failures
#   PYTHON=/usr/bin/python3 VERBOSE=1 e2e/peers/selftest.sh
#
# vsftpd tests need root and /usr/sbin/vsftpd; they are skipped (with a
# notice) otherwise, unless REQUIRE_VSFTPD=1.
set -u
cd "$(dirname "$0")" || exit 1
PY=${PYTHON:-python3}
export PYTHONDONTWRITEBYTECODE=1
VERBOSE=${VERBOSE:-0}
T=${STEP_TIMEOUT:-60}
TMP=$(mktemp -d /tmp/ftpct-peers.XXXXXX) || exit 1
PIDS=()
PASS=0
FAIL=0
SKIP=0

cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null
	done
	for p in "${PIDS[@]}"; do
		for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '%s\n' "$*"; }

# check NAME EXPR CMD...: run CMD (bounded), require exit 0 and a JSON result line
# on stdout for which the Python expression EXPR (over r) is true.
check() {
	local name=$1 expr=$2 out rc
	shift 2
	out=$(timeout "$T" "$@" 2>"$TMP/stderr")
	rc=$?
	if [ $rc -eq 0 ] && printf '%s\n' "$out" | tail -n 1 | "$PY" -c '
import json, sys
r = json.loads(sys.stdin.read())
sys.exit(0 if (r.get("ok") and ('"$expr"')) else 1)' 2>>"$TMP/stderr"; then
		PASS=$((PASS + 1))
		[ "$VERBOSE" = 1 ] && say "PASS $name"
	else
		FAIL=$((FAIL + 1))
		say "FAIL $name (rc=$rc): $(head -c 300 "$TMP/stderr" | tr '\n' ' ') $(printf '%s' "$out" | head -c 300)"
	fi
}

# check_fail NAME CMD...: require a clean failure (exit 1, one stderr line, ok:false).
check_fail() {
	local name=$1 out rc
	shift
	out=$(timeout "$T" "$@" 2>"$TMP/stderr")
	rc=$?
	if [ $rc -eq 1 ] && [ "$(wc -l <"$TMP/stderr")" -eq 1 ] && printf '%s' "$out" | grep -q '"ok": false'; then
		PASS=$((PASS + 1))
		[ "$VERBOSE" = 1 ] && say "PASS $name (fails cleanly: $(cat "$TMP/stderr"))"
	else
		FAIL=$((FAIL + 1))
		say "FAIL $name: expected a clean failure, rc=$rc $(head -c 300 "$TMP/stderr")"
	fi
}

free_port() { "$PY" -c 'import socket,sys; s=socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"; }
wait_port() { # addr port: wait up to 5 s for a listener
	"$PY" -c '
import socket, sys, time
end = time.time() + 5
while time.time() < end:
    try:
        socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close(); sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)' "$1" "$2"
}
listening() { "$PY" -c 'import socket,sys; s=socket.socket(); s.settimeout(1); sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1])))==0 else 1)' "$1"; }

# ---- fixtures -----------------------------------------------------------
mkdir -p "$TMP/root" "$TMP/empty"
head -c 1000000 /dev/urandom >"$TMP/root/big.bin"
echo hello >"$TMP/root/small.txt"
chmod 755 "$TMP/root" "$TMP" "$TMP/empty"
chmod 644 "$TMP/root/"*
H=$(sha256sum "$TMP/root/big.bin" | cut -d' ' -f1)
cat >"$TMP/fl.py" <<'EOF'
import ftplib, hashlib, json, sys
host, port, want = sys.argv[1], int(sys.argv[2]), sys.argv[3]
res = {"ok": True}
for pasv in (True, False):
    f = ftplib.FTP(timeout=10)
    f.connect(host, port)
    f.login()
    f.set_pasv(pasv)
    h = hashlib.sha256()
    f.retrbinary("RETR big.bin", h.update)
    assert h.hexdigest() == want, "sha256 mismatch"
    assert "big.bin" in f.nlst()
    lines = []
    f.dir(lines.append)
    assert any("big.bin" in l for l in lines), lines
    assert f.size("big.bin") == 1000000
    f.quit()
    res["pasv" if pasv else "active"] = "ok"
print(json.dumps(res))
EOF

SC="$PY splitclient.py"
HO="$PY hostile.py"
P=0.05 # pause between split pieces (short, to keep the self-test quick)

# ---- (a) vsftpd ---------------------------------------------------------
start_vsftpd() { # addr -> sets VPORT, appends PID
	local addr=$1 v6=NO la="listen_address=$1"
	VPORT=$(free_port "$addr")
	if [[ $addr == *:* ]]; then v6=YES; la="listen_address6=$addr"; fi
	cat >"$TMP/vsftpd-$VPORT.conf" <<EOF
listen=$([ $v6 = YES ] && echo NO || echo YES)
listen_ipv6=$v6
$la
listen_port=$VPORT
anonymous_enable=YES
local_enable=NO
write_enable=NO
anon_root=$TMP/root
no_anon_password=YES
background=NO
seccomp_sandbox=NO
isolate_network=NO
isolate=NO
secure_chroot_dir=$TMP/empty
pasv_enable=YES
port_enable=YES
xferlog_enable=NO
EOF
	/usr/sbin/vsftpd "$TMP/vsftpd-$VPORT.conf" >"$TMP/vsftpd-$VPORT.log" 2>&1 &
	PIDS+=($!)
	wait_port "$addr" "$VPORT"
}

if [ -x /usr/sbin/vsftpd ] && [ "$(id -u)" = 0 ]; then
	if start_vsftpd 127.0.0.1; then
		V4=$VPORT
		for m in port eprt pasv epsv; do
			for s in none command address both; do
				for pl in "" --pipeline; do
					check "vsftpd4 splitclient $m $s $pl" "r['bytes']==1000000" \
						$SC --server 127.0.0.1 --port "$V4" --mode $m --split $s $pl --pause $P --file big.bin --expect-sha256 "$H"
				done
			done
		done
		check "vsftpd4 splitclient bytes-split port" "True" $SC --server 127.0.0.1 --port "$V4" --mode port --split bytes --pause 0.005 --file small.txt --expect-bytes 6
		check "vsftpd4 splitclient list" "r['lines']>=2" $SC --server 127.0.0.1 --port "$V4" --mode pasv --split command --pause $P --list
		check_fail "vsftpd4 splitclient wrong sha" $SC --server 127.0.0.1 --port "$V4" --mode epsv --file small.txt --expect-sha256 00
		check_fail "vsftpd4 splitclient missing file" $SC --server 127.0.0.1 --port "$V4" --mode epsv --file nope
		check "vsftpd4 hostile garbage (500, then close)" "r['outcome']=='closed' and r['replies']==[500]" $HO --server 127.0.0.1 --port "$V4" --mode garbage
		check "vsftpd4 hostile portburst" "r['replies_200']==5000" $HO --server 127.0.0.1 --port "$V4" --mode portburst --file big.bin --expect-sha256 "$H"
		check "vsftpd4 hostile privport (vsftpd refuses)" "r['port_reply']==500" $HO --server 127.0.0.1 --port "$V4" --mode privport --trigger --expect-refused
		check "vsftpd4 hostile thirdparty (vsftpd refuses)" "r['port_reply']==500" $HO --server 127.0.0.1 --port "$V4" --mode thirdparty
		check "vsftpd4 hostile tls (no TLS configured)" "r['auth_reply']!=234" $HO --server 127.0.0.1 --port "$V4" --mode tls
	else
		FAIL=$((FAIL + 1)); say "FAIL vsftpd on 127.0.0.1 did not start: $(head -c 300 "$TMP"/vsftpd-*.log)"
	fi
	if start_vsftpd ::1; then
		V6=$VPORT
		for m in eprt epsv; do
			for s in none both; do
				for pl in "" --pipeline; do
					check "vsftpd6 splitclient $m $s $pl" "r['bytes']==1000000" \
						$SC --server ::1 --port "$V6" --mode $m --split $s $pl --pause $P --file big.bin --expect-sha256 "$H"
				done
			done
		done
		check "vsftpd6 hostile portburst (EPRT)" "r['replies_200']==1000" $HO --server ::1 --port "$V6" --mode portburst --count 1000
	else
		FAIL=$((FAIL + 1)); say "FAIL vsftpd on ::1 did not start: $(tail -c 300 "$TMP/vsftpd-$VPORT.log")"
	fi
elif [ "${REQUIRE_VSFTPD:-0}" = 1 ]; then
	FAIL=$((FAIL + 1)); say "FAIL vsftpd tests need root and /usr/sbin/vsftpd"
else
	SKIP=$((SKIP + 1)); say "SKIP vsftpd tests (need root and /usr/sbin/vsftpd)"
fi

# ---- (b) splitserver ----------------------------------------------------
start_ss() { # name args... -> sets SPORT, appends PID
	local name=$1
	shift
	$PY splitserver.py --port 0 --root "$TMP/root" "$@" >"$TMP/ss-$name.out" 2>"$TMP/ss-$name.err" &
	PIDS+=($!)
	SPID=$!
	SPORT=
	for _ in $(seq 50); do
		SPORT=$(head -n 1 "$TMP/ss-$name.out" 2>/dev/null | "$PY" -c 'import json,sys; print(json.loads(sys.stdin.read())["port"])' 2>/dev/null) && [ -n "$SPORT" ] && return 0
		sleep 0.1
	done
	say "FAIL splitserver $name did not start: $(head -c 300 "$TMP/ss-$name.err")"
	FAIL=$((FAIL + 1))
	return 1
}

curl_sha() { timeout "$T" curl -s --max-time 30 -g "$@" | sha256sum | cut -d' ' -f1; }
check_curl() { # name url args...
	local name=$1 url=$2 got
	shift 2
	got=$(curl_sha "$@" "$url")
	if [ "$got" = "$H" ]; then PASS=$((PASS + 1)); [ "$VERBOSE" = 1 ] && say "PASS $name"
	else FAIL=$((FAIL + 1)); say "FAIL $name: sha256 $got"; fi
}

for fam in 4 6; do
	if [ $fam = 4 ]; then A=127.0.0.1; U=127.0.0.1; SPL=address; else A=::1; U="[::1]"; SPL=both; fi
	start_ss "v$fam" --listen $A --split-replies $SPL --pause $P || continue
	SS=$SPORT
	check_curl "splitserver$fam curl epsv" "ftp://$U:$SS/big.bin"
	check_curl "splitserver$fam curl pasv" "ftp://$U:$SS/big.bin" --disable-epsv
	check_curl "splitserver$fam curl eprt" "ftp://$U:$SS/big.bin" -P -
	check_curl "splitserver$fam curl port" "ftp://$U:$SS/big.bin" -P - --disable-eprt
	check "splitserver$fam curl list" "True" sh -c "curl -s -g --max-time 30 ftp://$U:$SS/ | grep -q big.bin && echo '{\"ok\":true}'"
	check "splitserver$fam ftplib pasv+active" "r['active']=='ok'" $PY "$TMP/fl.py" $A "$SS" "$H"
	if [ $fam = 4 ]; then modes="port eprt pasv epsv"; else modes="eprt epsv"; fi
	for m in $modes; do
		for pl in "" --pipeline; do
			check "splitserver$fam splitclient $m both $pl" "r['bytes']==1000000" \
				$SC --server $A --port "$SS" --mode $m --split both $pl --pause $P --file big.bin --expect-sha256 "$H"
		done
	done
	check "splitserver$fam hostile garbage" "r['outcome']=='alive'" $HO --server $A --port "$SS" --mode garbage --kib 256
	check "splitserver$fam hostile portburst" "r['replies_200']==5000" $HO --server $A --port "$SS" --mode portburst --file big.bin --expect-sha256 "$H"
	kill "$SPID"
	for _ in $(seq 30); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
	check "splitserver$fam clean exit" "r['sessions']>0 and r['transfers']>0" tail -n 1 "$TMP/ss-v$fam.out"
done

# promiscuous server with fake AUTH TLS and a decoy 227 inside the 230 reply
if start_ss promisc --listen 127.0.0.1 --promiscuous --auth-tls --decoy --split-replies code --pause $P; then
	SS=$SPORT
	check "splitserver-promisc ftplib (decoy 227 in banner)" "r['pasv']=='ok'" $PY "$TMP/fl.py" 127.0.0.1 "$SS" "$H"
	check_curl "splitserver-promisc curl pasv" "ftp://127.0.0.1:$SS/big.bin" --disable-epsv
	if listening 22; then
		SKIP=$((SKIP + 1)); say "SKIP privport trigger: something listens on 127.0.0.1:22"
	else
		check "splitserver-promisc hostile privport" "r['port_reply']==200 and r['data_connected'] is False" \
			$HO --server 127.0.0.1 --port "$SS" --mode privport --trigger --expect-refused
	fi
	# no --trigger: the server would try to reach 10.9.9.9 from this namespace
	check "splitserver-promisc hostile thirdparty" "r['port_reply']==200" $HO --server 127.0.0.1 --port "$SS" --mode thirdparty
	check "splitserver-promisc hostile tls" "r['auth_reply']==234 and r['tls_sent']>0" $HO --server 127.0.0.1 --port "$SS" --mode tls --require-234 --pause $P
fi

say "selftest: $PASS passed, $FAIL failed, $SKIP skipped"
[ $FAIL -eq 0 ]
