#!/usr/bin/env bash
# Installs what ftpct's build, tests and lab need on a fresh Debian machine (as root):
# Debian packages through apt-get, go.mod's Go toolchain (into /usr/local/go, from
# the Go module proxy, if no Go here can build the module) and the Go modules of
# go.mod. Idempotent. Starts no service: the lab runs its own servers.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

[[ $(id -u) -eq 0 ]] || { echo "deps.sh: run as root (apt-get, network namespaces)" >&2; exit 1; }
die() { echo "deps.sh: $*" >&2; exit 1; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }

# --- Debian packages -------------------------------------------------------
packages=(
	iproute2 procps psmisc      # ip netns, ss, sysctl
	util-linux                  # unshare (pure-ftpd in its own mount namespace)
	iptables nftables conntrack # netfilter front ends; conntrack -S for the tests
	vsftpd                      # the FTP server of the lab (run by lab.sh, never as a service)
	curl lftp python3           # FTP clients (python3's ftplib, and the scripted peers)
	ca-certificates git         # the go command fetches modules over HTTPS
	gcc libc6-dev               # cgo (the go command uses it when gcc is there)
)
missing=()
for p in "${packages[@]}"; do
	installed "$p" || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "deps.sh: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# No package's service is started while installing (policy-rc.d, see
	# invoke-rc.d(8)): the lab starts its own vsftpd in its namespaces, with
	# its own configuration, and must leave no FTP server on this machine.
	own_policy=
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		own_policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\n# lab/deps.sh of ftpct: no service starts while it installs packages\nexit 101\n' > "$own_policy"
		chmod 755 "$own_policy"
		trap 'rm -f "$own_policy"' EXIT
	fi
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
	if [[ -n $own_policy ]]; then rm -f "$own_policy"; trap - EXIT; fi
	if [[ " ${missing[*]} " == *" vsftpd "* ]]; then
		# The package enables its service for the next boot: undo that.
		if command -v systemctl > /dev/null; then
			systemctl disable --quiet vsftpd.service
			if [[ -d /run/systemd/system ]]; then systemctl stop vsftpd.service; fi
		else
			update-rc.d vsftpd disable > /dev/null
		fi
	fi
fi

# pure-ftpd, the lab's second server, conflicts with vsftpd as a package:
# unpack it into a private folder instead (lab.sh runs it from there).
pureftpd_dir=/opt/ftpct-lab/pure-ftpd
if [[ ! -x $pureftpd_dir/usr/sbin/pure-ftpd ]]; then
	echo "deps.sh: unpacking pure-ftpd into $pureftpd_dir"
	for p in libsodium23 libcap2 libpam0g libssl3 libcrypt1; do
		installed "$p" || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" > /dev/null
	done
	tmp=$(mktemp -d)
	(cd "$tmp" && chmod 777 . && apt-get download -qq pure-ftpd) || { apt-get update -qq && (cd "$tmp" && apt-get download -qq pure-ftpd); }
	mkdir -p "$pureftpd_dir"
	dpkg -x "$tmp"/pure-ftpd_*.deb "$pureftpd_dir"
	rm -rf "$tmp"
fi
getent passwd ftp > /dev/null || useradd --system --home-dir /srv/ftp --shell /usr/sbin/nologin ftp
mkdir -p "$(getent passwd ftp | cut -d: -f6)"

# --- Go --------------------------------------------------------------------
# go.mod names the exact Go release that builds ftpct. Every Go release is also
# a module on the Go module proxy, golang.org/toolchain (what GOTOOLCHAIN=goX
# downloads), and any Go can fetch it with `go mod download`: Debian's own
# golang-go does (1.19 on bookworm, which cannot build ftpct itself). Its hash
# is checked against the one recorded here, the h1: hash that the checksum
# database (sum.golang.org) holds for it, and it is copied to /usr/local/go.
# The Debian Go used for that is unpacked into a temporary folder, not installed.
need=$(sed -n 's/^go \([0-9.]*\)$/\1/p' go.mod)
declare -A toolchain_sums=(
	[go1.26.8.linux-amd64]=h1:ZOmGe1OnfREDMIdb1Qi4G9JSuDPBLGExZMQ4nis1RXM=
	[go1.26.8.linux-arm64]=h1:sYL/O6MqS68ML0kjsQ36WoYIpJqkw60TxizWUYUKQMc=
)

# go_builds GO: true if GO (a path) builds this module, itself or by switching
# to go.mod's release (GOTOOLCHAIN=auto, Go 1.21 and newer).
go_builds() {
	local v
	v=$("$1" env GOVERSION 2>/dev/null) || return 1
	v=${v#go}
	[[ $(printf '%s\n%s\n' "$need" "$v" | sort -V | head -n 1) == "$need" ]]
}

install_go() {
	local arch=$(dpkg --print-architecture) tmp boot pkg json sum dir
	local tc=go$need.linux-$arch
	local want=${toolchain_sums[$tc]:-}
	[[ -n $want ]] || die "no recorded hash for $tc: add it to toolchain_sums in lab/deps.sh (the \"Sum\" of: go mod download -json golang.org/toolchain@v0.0.1-$tc)"
	tmp=$(mktemp -d /tmp/ftpct-go.XXXXXX)
	chmod 777 "$tmp" # apt-get download writes as _apt
	boot=$(command -v go || true)
	if [[ -z $boot ]]; then
		pkg=$(apt-cache depends golang-go | awk '$1 == "Depends:" && $2 ~ /^golang-1\.[0-9]+-go$/ { print $2; exit }')
		[[ -n $pkg ]] || die "Debian's golang-go names no golang-1.N-go package"
		echo "deps.sh: unpacking Debian's $pkg (temporarily, to fetch go$need)"
		(cd "$tmp" && apt-get download -qq "$pkg" "${pkg%-go}-src") ||
			{ apt-get update -qq && (cd "$tmp" && apt-get download -qq "$pkg" "${pkg%-go}-src"); }
		for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$tmp/debian"; done
		boot=$(echo "$tmp"/debian/usr/lib/go-*/bin/go)
		[[ -x $boot ]] || die "no go binary in $pkg"
	fi
	echo "deps.sh: fetching go$need from the Go module proxy (golang.org/toolchain, with $("$boot" version | cut -d' ' -f3))"
	# Outside the module (cd /) so that go.mod does not ask for a newer Go;
	# in a private module cache, removed afterwards.
	json=$(cd / && GOTOOLCHAIN=local GOFLAGS=-mod=mod GONOSUMDB=golang.org/toolchain GOMODCACHE=$tmp/mod \
		"$boot" mod download -json "golang.org/toolchain@v0.0.1-$tc") ||
		{ chmod -R u+w "$tmp"; rm -rf "$tmp"; die "could not fetch golang.org/toolchain@v0.0.1-$tc: $json"; }
	sum=$(sed -n 's/^[[:space:]]*"Sum": "\(.*\)",*$/\1/p' <<< "$json")
	dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p' <<< "$json")
	if [[ $sum != "$want" || ! -f $dir/bin/go ]]; then
		chmod -R u+w "$tmp"; rm -rf "$tmp"
		die "golang.org/toolchain@v0.0.1-$tc has hash $sum, want $want: not installed"
	fi
	# Module files are read-only and not executable; the go command makes
	# bin/ and pkg/tool/ executable on first use: so do we.
	cp -a "$dir" /usr/local/go.ftpct-new
	chmod -R u+w /usr/local/go.ftpct-new
	find /usr/local/go.ftpct-new/bin /usr/local/go.ftpct-new/pkg/tool -type f -exec chmod a+x {} +
	mv /usr/local/go.ftpct-new /usr/local/go
	chmod -R u+w "$tmp"
	rm -rf "$tmp"
	go_builds /usr/local/go/bin/go || die "/usr/local/go/bin/go does not build go$need modules"
	echo "deps.sh: installed $(/usr/local/go/bin/go version | cut -d' ' -f3) in /usr/local/go"
}

if [[ -x /usr/local/go/bin/go ]]; then
	# Never replaced: it may be someone else's.
	go_builds /usr/local/go/bin/go || die "/usr/local/go holds $(/usr/local/go/bin/go version | cut -d' ' -f3), which cannot build go$need modules; move it away and deps.sh installs go$need there"
elif ! { command -v go > /dev/null && go_builds "$(command -v go)"; }; then
	rm -rf /usr/local/go.ftpct-new # left by an interrupted run
	install_go
fi
go mod download
echo "deps.sh: ready ($(go env GOVERSION), $(vsftpd -v 0>&1 | head -1), iptables $(iptables --version | cut -d' ' -f2-))"
