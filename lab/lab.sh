#!/usr/bin/env bash
# The ftpct namespace lab: three hosts in network namespaces on this machine.
#
#   client (10.0.1.2/24) --- (10.0.1.1) gateway (203.0.113.1) --- server (203.0.113.2/24)
#   [NAME-c]                 [NAME-g] masquerades the LAN,        [NAME-s] vsftpd, anonymous
#                            FORWARD policy DROP
#
# All addresses exist only inside the namespaces this script creates.
#
#   lab.sh up NAME [kernel|none]   build the lab; "kernel" adds the kernel helper rule
#                                  (iptables -t raw -A PREROUTING -p tcp --dport 21 -j CT --helper ftp)
#   lab.sh down NAME               kill what the lab started (by PID) and delete its namespaces
#   lab.sh dir NAME                print the lab's working directory (files served, logs, pids)
#
# The gateway's rules are the deployment of README.md ("masquerading gateway"), minus the helper line.
set -euo pipefail

LAN_C=10.0.1.2 LAN_G=10.0.1.1 WAN_G=203.0.113.1 WAN_S=203.0.113.2

labdir() { echo "/tmp/ftpct-lab-$1"; }

die() { echo "lab.sh: $*" >&2; exit 1; }

up() {
	local name=$1 helper=${2:-none} dir
	[[ ${#name} -le 8 ]] || die "name '$name' too long (8 characters at most: it prefixes interface names)"
	dir=$(labdir "$name")
	if ip netns list | grep -qw "$name-g"; then die "lab $name exists; run: lab.sh down $name"; fi
	mkdir -p "$dir/root" "$dir/empty" "$dir/pids"
	chmod 755 "$dir" "$dir/root"
	chmod 555 "$dir/empty"
	trap 'down "$name" >/dev/null 2>&1 || true' ERR

	for h in c g s; do ip netns add "$name-$h"; ip -n "$name-$h" link set lo up; done
	ip link add "$name-cl" type veth peer name "$name-gl"
	ip link add "$name-gw" type veth peer name "$name-sw"
	ip link set "$name-cl" netns "$name-c"; ip link set "$name-gl" netns "$name-g"
	ip link set "$name-gw" netns "$name-g"; ip link set "$name-sw" netns "$name-s"
	ip -n "$name-c" addr add "$LAN_C/24" dev "$name-cl"; ip -n "$name-c" link set "$name-cl" up
	ip -n "$name-c" route add default via "$LAN_G"
	ip -n "$name-g" addr add "$LAN_G/24" dev "$name-gl"; ip -n "$name-g" link set "$name-gl" up
	ip -n "$name-g" addr add "$WAN_G/24" dev "$name-gw"; ip -n "$name-g" link set "$name-gw" up
	ip -n "$name-s" addr add "$WAN_S/24" dev "$name-sw"; ip -n "$name-s" link set "$name-sw" up
	ip -n "$name-s" route add default via "$WAN_G"
	ip netns exec "$name-g" sysctl -qw net.ipv4.ip_forward=1
	# Strict TCP window tracking, as on a default system: a wrong sequence
	# adjustment must show as INVALID packets, not be forgiven.
	ip netns exec "$name-g" sysctl -qw net.netfilter.nf_conntrack_tcp_be_liberal=0 2>/dev/null || true

	# The operator's gateway (README: masquerading gateway).
	local g="ip netns exec $name-g"
	$g iptables -P FORWARD DROP
	$g iptables -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
	$g iptables -A FORWARD -i "$name-gl" -p tcp --dport 21 -m conntrack --ctstate NEW -j ACCEPT
	$g iptables -t nat -A POSTROUTING -o "$name-gw" -j MASQUERADE
	case $helper in
	kernel) $g iptables -t raw -A PREROUTING -p tcp --dport 21 -j CT --helper ftp ;;
	none) ;;
	*) die "unknown helper '$helper' (kernel or none; ftpct is started separately)" ;;
	esac

	# Files to fetch: 1 MiB of random bytes, and a small text.
	head -c 1048576 /dev/urandom > "$dir/root/big.bin"
	echo "hello from the ftpct lab" > "$dir/root/hello.txt"
	chmod 644 "$dir/root/"*

	cat > "$dir/vsftpd.conf" <<CONF
listen=YES
listen_ipv6=NO
background=NO
anonymous_enable=YES
local_enable=NO
write_enable=NO
anon_root=$dir/root
no_anon_password=YES
pasv_enable=YES
port_enable=YES
connect_from_port_20=YES
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
secure_chroot_dir=$dir/empty
xferlog_enable=YES
vsftpd_log_file=$dir/vsftpd.log
dual_log_enable=NO
CONF
	ip netns exec "$name-s" setsid vsftpd "$dir/vsftpd.conf" > "$dir/vsftpd.out" 2>&1 < /dev/null &
	echo $! > "$dir/pids/vsftpd"
	local i
	for i in $(seq 50); do
		if ip netns exec "$name-s" ss -Hltn 'sport = :21' | grep -q LISTEN; then
			trap - ERR
			echo "lab $name up: client $name-c ($LAN_C), gateway $name-g ($LAN_G / $WAN_G), server $name-s ($WAN_S), helper: $helper"
			return 0
		fi
		sleep 0.1
	done
	cat "$dir/vsftpd.out" >&2
	die "vsftpd did not start"
}

down() {
	local name=$1 dir pidf pid
	dir=$(labdir "$name")
	if [[ -d $dir/pids ]]; then
		for pidf in "$dir"/pids/*; do
			[[ -f $pidf ]] || continue
			pid=$(cat "$pidf")
			kill -TERM "$pid" 2>/dev/null || true
		done
		sleep 0.3
		for pidf in "$dir"/pids/*; do
			[[ -f $pidf ]] || continue
			pid=$(cat "$pidf")
			kill -KILL "$pid" 2>/dev/null || true
			rm -f "$pidf"
		done
	fi
	for h in c g s; do
		if ip netns list | grep -qw "$name-$h"; then
			# Anything still running in the namespace was started for the lab.
			for pid in $(ip netns pids "$name-$h" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
			ip netns del "$name-$h"
		fi
	done
	rm -rf "$dir"
}

case ${1:-} in
up) [[ $# -ge 2 ]] || die "usage: lab.sh up NAME [kernel|none]"; up "$2" "${3:-none}" ;;
down) [[ $# -eq 2 ]] || die "usage: lab.sh down NAME"; down "$2" ;;
dir) [[ $# -eq 2 ]] || die "usage: lab.sh dir NAME"; labdir "$2" ;;
*) die "usage: lab.sh up NAME [kernel|none] | down NAME | dir NAME" ;;
esac
