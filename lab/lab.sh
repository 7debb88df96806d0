#!/usr/bin/env bash
# The ftpct namespace lab: three hosts in network namespaces on this machine.
#
#   client [NAME-c] --- [NAME-g] gateway/firewall --- [NAME-s] server (vsftpd or pure-ftpd, anonymous)
#
# Topologies (--topo). Each is a deployment of README.md "Deployments": on the host ftpct runs on,
# the lab runs the iptables (and ip6tables) commands that `ftpct rules --deployment TOPO` prints,
# its placeholders filled with the lab's interfaces and addresses (--set), and with "kernel" the
# helper line printed as the line ftpct replaces. The ftpct binary is $FTPCT, or one built from
# this checkout.
#   masq        (default) client 10.0.1.2, gateway 10.0.1.1/203.0.113.1 masquerades the LAN,
#               FORWARD DROP; server 203.0.113.2
#   routed      same addresses (and 2001:db8:1::2 / 2001:db8:1::1, 2001:db8:2::1 / 2001:db8:2::2),
#               no NAT, FORWARD DROP (iptables and ip6tables)
#   routed6     routed, the server listening on IPv6 too
#   serverhost  routed addresses, the gateway forwards everything; the server host has INPUT DROP
#   serverhost6 serverhost, the server listening on IPv6 too
#   clienthost  routed addresses, the gateway forwards everything; the client host has INPUT DROP
#   dnat        client 198.51.100.2; gateway 198.51.100.1 (public) / 10.0.2.1 forwards
#               public:PORT to the server 10.0.2.2 (DNAT), masquerades it outbound, FORWARD DROP
#   doublenat   client 10.0.1.2; gateway 10.0.1.1 / 10.0.2.1 DNATs 203.0.113.1:PORT to the
#               server 10.0.2.2 and SNATs the client to 198.51.100.1 (both ends translated), FORWARD DROP
#
# All addresses exist only inside the namespaces this script creates.
#
#   lab.sh up NAME [kernel|none] [--topo T] [--server vsftpd|pureftpd] [--ports 21,2121]
#                                  build the lab; "kernel" adds the kernel helper line on the host
#                                  ftpct would run on (the gateway, or the protected host), "none"
#                                  does not (ftpct is started separately)
#   lab.sh down NAME               kill what the lab started (by PID) and delete its namespaces
#   lab.sh dir NAME                print the lab's working directory (files served, logs, pids)
#   lab.sh host TOPO               print the host (c, g or s) where ftpct and the kernel helper run
set -Eeuo pipefail

LAN_C=10.0.1.2 LAN_G=10.0.1.1 WAN_G=203.0.113.1 WAN_S=203.0.113.2
PUREFTPD=${PUREFTPD:-/opt/ftpct-lab/pure-ftpd/usr/sbin/pure-ftpd}
REPO=$(cd "$(dirname "$0")/.." && pwd)

labdir() { echo "/tmp/ftpct-lab-$1"; }

die() { echo "lab.sh: $*" >&2; exit 1; }

# helperhost TOPO: where ftpct (or the kernel helper) runs.
helperhost() {
	case $1 in
	serverhost | serverhost6) echo s ;;
	clienthost) echo c ;;
	*) echo g ;;
	esac
}

# addrs TOPO: client, gateway client side, gateway server side, server (IPv4).
addrs() {
	case $1 in
	dnat) echo 198.51.100.2 198.51.100.1 10.0.2.1 10.0.2.2 ;;
	doublenat) echo 10.0.1.2 10.0.1.1 10.0.2.1 10.0.2.2 ;;
	*) echo $LAN_C $LAN_G $WAN_G $WAN_S ;;
	esac
}

# values NAME TOPO: the lab's interfaces and addresses for the placeholders of
# `ftpct rules --deployment TOPO` (they exist only in the lab's namespaces).
values() {
	local ac ag1 ag2 as
	read -r ac ag1 ag2 as < <(addrs "$2")
	case $2 in
	dnat) echo "WAN=$1-gl,PUBLIC=$ag1,SERVER=$as" ;;
	doublenat) echo "LAN=$1-gl,DMZ=$1-gw,PUBLIC=203.0.113.1,SERVER=$as,LANNET=10.0.1.0/24,SNATADDR=198.51.100.1" ;;
	*) echo "LAN=$1-gl,WAN=$1-gw" ;;
	esac
}

# ftpctbin DIR: the ftpct whose rules the lab installs: $FTPCT, or one built
# from this checkout into DIR.
ftpctbin() {
	if [[ -n ${FTPCT:-} ]]; then
		[[ -x $FTPCT ]] || die "FTPCT=$FTPCT is not executable"
		echo "$FTPCT"
		return
	fi
	command -v go > /dev/null || PATH=$PATH:/usr/local/go/bin
	(cd "$REPO" && go build -o "$1/ftpct" ./cmd/ftpct) >&2 || die "cannot build ftpct (or set FTPCT to a binary)"
	echo "$1/ftpct"
}

# commands REGEX: the commands ("#   COMMAND" lines) of the sections of
# `ftpct rules --deployment` output on stdin whose heading matches REGEX.
commands() {
	awk -v re="$1" '/^# [^ ]/ { on = ($0 ~ re); next } on && sub(/^#   /, "")'
}

# deployment NAME TOPO HELPER PORTS: on the host ftpct would run on, the
# operator's iptables (and ip6tables) rules of `ftpct rules --deployment
# TOPO`, and with HELPER "kernel" the kernel helper line they name.
deployment() {
	local name=$1 topo=$2 helper=$3 ports=$4 ftpct out ops helperline
	local ns=$name-$(helperhost "$topo")
	ftpct=$(ftpctbin "$(labdir "$name")")
	# --config /dev/null: never the machine's /etc/ftpct/ftpct.conf. (false,
	# not die: exit would skip the ERR trap that takes the lab down.)
	out=$("$ftpct" rules --config /dev/null --deployment "$topo" --ports "$ports" --set "$(values "$name" "$topo")") ||
		{ echo "lab.sh: $ftpct rules --deployment $topo failed" >&2; false; }
	ops=$(commands "^# The operator's rules, ip6?tables variant:$" <<< "$out")
	helperline=$(commands "line ftpct replaces" <<< "$out")
	[[ -n $ops && -n $helperline ]] ||
		{ printf 'lab.sh: no operator'"'"'s rules or helper line in ftpct rules --deployment %s:\n%s\n' "$topo" "$out" >&2; false; }
	ip netns exec "$ns" sh -e <<< "$ops"
	if [[ $helper == kernel ]]; then
		ip netns exec "$ns" sh -e <<< "$helperline"
	fi
}

up() {
	local name=$1 helper=none topo=masq server=vsftpd ports=21 dir
	shift
	if [[ $# -gt 0 && $1 != --* ]]; then helper=$1; shift; fi
	while [[ $# -gt 0 ]]; do
		[[ $# -ge 2 ]] || die "option $1 needs a value"
		case $1 in
		--topo) topo=$2 ;;
		--server) server=$2 ;;
		--ports) ports=$2 ;;
		*) die "unknown option $1" ;;
		esac
		shift 2
	done
	case $topo in masq | routed | routed6 | serverhost | serverhost6 | clienthost | dnat | doublenat) ;; *) die "unknown topology '$topo'" ;; esac
	case $server in vsftpd) ;; pureftpd) [[ -x $PUREFTPD ]] || die "no pure-ftpd at $PUREFTPD (run lab/deps.sh)" ;; *) die "unknown server '$server'" ;; esac
	case $helper in kernel | none) ;; *) die "unknown helper '$helper' (kernel or none; ftpct is started separately)" ;; esac
	[[ $ports =~ ^[0-9]+(,[0-9]+)*$ ]] || die "bad --ports '$ports'"
	[[ ${#name} -le 8 ]] || die "name '$name' too long (8 characters at most: it prefixes interface names)"
	dir=$(labdir "$name")
	if ip netns list | grep -qw "$name-g"; then die "lab $name exists; run: lab.sh down $name"; fi
	mkdir -p "$dir/root" "$dir/empty" "$dir/pids"
	chmod 755 "$dir" "$dir/root"
	chmod 555 "$dir/empty"
	trap 'down "$name" >/dev/null 2>&1 || true' ERR

	local ac ag1 ag2 as
	read -r ac ag1 ag2 as < <(addrs "$topo")
	for h in c g s; do ip netns add "$name-$h"; ip -n "$name-$h" link set lo up; done
	ip link add "$name-cl" type veth peer name "$name-gl"
	ip link add "$name-gw" type veth peer name "$name-sw"
	ip link set "$name-cl" netns "$name-c"; ip link set "$name-gl" netns "$name-g"
	ip link set "$name-gw" netns "$name-g"; ip link set "$name-sw" netns "$name-s"
	ip -n "$name-c" addr add "$ac/24" dev "$name-cl"; ip -n "$name-c" link set "$name-cl" up
	ip -n "$name-c" route add default via "$ag1"
	ip -n "$name-g" addr add "$ag1/24" dev "$name-gl"; ip -n "$name-g" link set "$name-gl" up
	ip -n "$name-g" addr add "$ag2/24" dev "$name-gw"; ip -n "$name-g" link set "$name-gw" up
	ip -n "$name-s" addr add "$as/24" dev "$name-sw"; ip -n "$name-s" link set "$name-sw" up
	ip -n "$name-s" route add default via "$ag2"
	ip netns exec "$name-g" sysctl -qw net.ipv4.ip_forward=1
	if [[ $topo != masq ]]; then
		ip -n "$name-c" addr add 2001:db8:1::2/64 dev "$name-cl" nodad
		ip -n "$name-g" addr add 2001:db8:1::1/64 dev "$name-gl" nodad
		ip -n "$name-g" addr add 2001:db8:2::1/64 dev "$name-gw" nodad
		ip -n "$name-s" addr add 2001:db8:2::2/64 dev "$name-sw" nodad
		ip -n "$name-c" -6 route add default via 2001:db8:1::1
		ip -n "$name-s" -6 route add default via 2001:db8:2::1
		ip netns exec "$name-g" sysctl -qw net.ipv6.conf.all.forwarding=1
	fi
	# Strict TCP window tracking, as on a default system: a wrong sequence
	# adjustment must show as INVALID packets, not be forgiven.
	for h in c g s; do
		ip netns exec "$name-$h" sysctl -qw net.netfilter.nf_conntrack_tcp_be_liberal=0 2>/dev/null || true
	done

	deployment "$name" "$topo" "$helper" "$ports"

	# Files to fetch: 1 MiB of random bytes, and a small text.
	head -c 1048576 /dev/urandom > "$dir/root/big.bin"
	echo "hello from the ftpct lab" > "$dir/root/hello.txt"
	chmod 644 "$dir/root/"*

	local -a plist
	IFS=, read -ra plist <<< "$ports"
	local p v6=NO
	[[ $topo == *6 ]] && v6=YES
	for p in "${plist[@]}"; do
		case $server in
		vsftpd)
			local listen=YES
			[[ $v6 == YES ]] && listen=NO
			cat > "$dir/vsftpd-$p.conf" <<CONF
listen=$listen
listen_ipv6=$v6
listen_port=$p
background=NO
anonymous_enable=YES
local_enable=NO
write_enable=NO
anon_root=$dir/root
no_anon_password=YES
pasv_enable=YES
port_enable=YES
connect_from_port_20=YES
ftp_data_port=$((p - 1))
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
secure_chroot_dir=$dir/empty
xferlog_enable=YES
vsftpd_log_file=$dir/vsftpd-$p.log
dual_log_enable=NO
CONF
			ip netns exec "$name-s" setsid vsftpd "$dir/vsftpd-$p.conf" > "$dir/vsftpd-$p.out" 2>&1 < /dev/null &
			echo $! > "$dir/pids/vsftpd-$p" ;;
		pureftpd)
			# Anonymous pure-ftpd serves the home of the user "ftp"; bind the
			# lab's files over it in this process's own mount namespace.
			local home
			home=$(getent passwd ftp | cut -d: -f6)
			[[ -n $home && -d $home ]] || die "pure-ftpd needs a user 'ftp' with a home directory"
			local six=-4
			[[ $v6 == YES ]] && six=
			ip netns exec "$name-s" unshare -m --propagation private sh -c \
				'mount --bind "$1" "$2" && shift 2 && exec "$@"' sh "$dir/root" "$home" \
				setsid "$PUREFTPD" -e -i -H -A $six -S ",$p" > "$dir/pureftpd-$p.out" 2>&1 < /dev/null &
			echo $! > "$dir/pids/pureftpd-$p" ;;
		esac
	done
	echo "$(helperhost "$topo")" > "$dir/host"
	local i
	for i in $(seq 50); do
		local all=1
		for p in "${plist[@]}"; do
			ip netns exec "$name-s" ss -Hltn "sport = :$p" | grep -q LISTEN || all=0
		done
		if ((all)); then
			trap - ERR
			if [[ $topo == masq ]]; then
				echo "lab $name up: client $name-c ($LAN_C), gateway $name-g ($LAN_G / $WAN_G), server $name-s ($WAN_S), helper: $helper"
			else
				echo "lab $name up ($topo, $server on ${ports}): client $name-c ($ac), gateway $name-g ($ag1 / $ag2), server $name-s ($as), helper: $helper on $(helperhost "$topo")"
			fi
			return 0
		fi
		sleep 0.1
	done
	cat "$dir"/*.out >&2
	die "$server did not start"
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
up) [[ $# -ge 2 ]] || die "usage: lab.sh up NAME [kernel|none] [--topo T] [--server S] [--ports P]"; shift; up "$@" ;;
down) [[ $# -eq 2 ]] || die "usage: lab.sh down NAME"; down "$2" ;;
dir) [[ $# -eq 2 ]] || die "usage: lab.sh dir NAME"; labdir "$2" ;;
host) [[ $# -eq 2 ]] || die "usage: lab.sh host TOPO"; helperhost "$2" ;;
*) die "usage: lab.sh up NAME [kernel|none] [--topo T] [--server S] [--ports P] | down NAME | dir NAME | host TOPO" ;;
esac
