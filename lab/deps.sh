#!/usr/bin/env bash
# Installs what ftpct's build, tests and lab need on a fresh Debian machine (as root):
# Debian packages through apt-get, and the Go modules of go.mod. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $(id -u) -eq 0 ]] || { echo "deps.sh: run as root (apt-get, network namespaces)" >&2; exit 1; }

packages=(
	iproute2 procps psmisc      # ip netns, ss, sysctl
	util-linux                  # unshare (pure-ftpd in its own mount namespace)
	iptables nftables conntrack # netfilter front ends; conntrack -S for the tests
	vsftpd                      # the FTP server of the lab
	curl lftp python3           # FTP clients (python3's ftplib, and the scripted peers)
	ca-certificates git gcc     # go toolchain needs
)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "deps.sh: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
fi

# pure-ftpd, the lab's second server, conflicts with vsftpd as a package:
# unpack it into a private folder instead (lab.sh runs it from there).
pureftpd_dir=/opt/ftpct-lab/pure-ftpd
if [[ ! -x $pureftpd_dir/usr/sbin/pure-ftpd ]]; then
	echo "deps.sh: unpacking pure-ftpd into $pureftpd_dir"
	for p in libsodium23 libcap2 libpam0g libssl3 libcrypt1; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" > /dev/null
	done
	tmp=$(mktemp -d)
	(cd "$tmp" && chmod 777 . && apt-get download -qq pure-ftpd) || { apt-get update -qq && (cd "$tmp" && apt-get download -qq pure-ftpd); }
	mkdir -p "$pureftpd_dir"
	dpkg -x "$tmp"/pure-ftpd_*.deb "$pureftpd_dir"
	rm -rf "$tmp"
fi
getent passwd ftp > /dev/null || useradd --system --home-dir /srv/ftp --shell /usr/sbin/nologin ftp
mkdir -p "$(getent passwd ftp | cut -d: -f6)"

if ! command -v go > /dev/null; then
	if [[ -x /usr/local/go/bin/go ]]; then
		export PATH=$PATH:/usr/local/go/bin
	else
		echo "deps.sh: installing Debian's Go toolchain"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-go > /dev/null
	fi
fi
go mod download
echo "deps.sh: ready ($(go version | cut -d' ' -f3), $(vsftpd -v 0>&1 | head -1), iptables $(iptables --version | cut -d' ' -f2-))"
