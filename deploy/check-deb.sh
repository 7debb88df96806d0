#!/usr/bin/env bash
# Lists a built ftpct .deb (dpkg-deb -c) and fails unless it holds exactly
# what it must: the binary, the systemd unit, the default config as a
# conffile and the README, as regular files with the right modes.
#
#   deploy/check-deb.sh ftpct_VERSION_ARCH.deb
set -euo pipefail
deb=$(realpath "${1:?usage: check-deb.sh DEB}")
cd "$(dirname "$0")/.."

fail=0
bad() { echo "check-deb: $*" >&2; fail=1; }

listing=$(dpkg-deb -c "$deb")
echo "$listing"

# path mode: every file the package must hold (owner root/root).
while read -r path mode; do
	line=$(awk -v p="./${path#/}" '$6 == p' <<<"$listing")
	if [[ -z $line ]]; then
		bad "missing $path"
		continue
	fi
	read -r perms owner size _ <<<"$line"
	[[ $perms == "$mode" ]] || bad "$path: mode $perms, want $mode"
	[[ $owner == root/root ]] || bad "$path: owner $owner, want root/root"
	[[ $size -gt 0 ]] || bad "$path: empty"
done <<'LIST'
/usr/sbin/ftpct -rwxr-xr-x
/lib/systemd/system/ftpct.service -rw-r--r--
/etc/ftpct/ftpct.conf -rw-r--r--
/usr/share/doc/ftpct/README.md -rw-r--r--
LIST

# Nothing else but directories.
extra=$(awk '$1 !~ /^d/ {print $6}' <<<"$listing" | grep -vxE '\./(usr/sbin/ftpct|lib/systemd/system/ftpct\.service|etc/ftpct/ftpct\.conf|usr/share/doc/ftpct/README\.md)' || true)
[[ -z $extra ]] || bad "unexpected files: $extra"

ctrl=$(mktemp -d)
trap 'rm -rf "$ctrl"' EXIT
dpkg-deb -e "$deb" "$ctrl"
grep -qx /etc/ftpct/ftpct.conf "$ctrl/conffiles" || bad "/etc/ftpct/ftpct.conf is not a conffile"
[[ $(dpkg-deb -f "$deb" Package) == ftpct ]] || bad "package name $(dpkg-deb -f "$deb" Package)"
[[ $(dpkg-deb -f "$deb" Version) == "$(cat deploy/VERSION)" ]] || bad "version $(dpkg-deb -f "$deb" Version), want $(cat deploy/VERSION)"

# The packaged files are the checkout's.
data=$(mktemp -d)
trap 'rm -rf "$ctrl" "$data"' EXIT
dpkg-deb -x "$deb" "$data"
cmp -s "$data/etc/ftpct/ftpct.conf" deploy/ftpct.conf || bad "packaged ftpct.conf differs from deploy/ftpct.conf"
cmp -s "$data/lib/systemd/system/ftpct.service" deploy/ftpct.service || bad "packaged unit differs from deploy/ftpct.service"
cmp -s "$data/usr/share/doc/ftpct/README.md" README.md || bad "packaged README.md differs from README.md"
got=$("$data/usr/sbin/ftpct" version 2>&1 || true)
[[ $got == "ftpct $(cat deploy/VERSION)" ]] || bad "packaged binary says '$got'"

if [[ $fail != 0 ]]; then
	echo "check-deb: $deb is not right" >&2
	exit 1
fi
echo "check-deb: $deb holds what it must"
