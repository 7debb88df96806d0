#!/usr/bin/env bash
# Installs a built ftpct .deb (dpkg -i), checks what it installed (the
# binary's version, the default config, the systemd unit with
# `systemd-analyze verify` and its exposure score against the README's),
# runs the end-to-end gateway tests with the installed /usr/sbin/ftpct
# (FTPCT_BIN), and purges the package again, also on failure: the machine
# is left as found. Refuses to run where ftpct is already installed.
#
#   deploy/test-installed.sh ftpct_VERSION_ARCH.deb
#
# E2E_RUN overrides the -run pattern of the end-to-end tests.
set -euo pipefail
deb=$(realpath "${1:?usage: test-installed.sh DEB}")
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
run=${E2E_RUN:-'TestMasqueradingGateway|TestRestart|TestConfigReload|TestStartErrors|TestNoIptables'}

if dpkg-query -W -f '${db:Status-Status}' ftpct 2>/dev/null | grep -qv '^not-installed$'; then
	echo "test-installed: a ftpct package is already on this machine; not touching it" >&2
	exit 1
fi
if ! command -v systemd-analyze >/dev/null; then
	apt-get install -y -q systemd >/dev/null
fi

logs=${FTPCT_LOGS:-$(mktemp -d /tmp/ftpct-deb.XXXXXX)}
purge() {
	dpkg --purge ftpct >/dev/null || true
}
trap purge EXIT
dpkg -i "$deb"

fail=0
bad() { echo "test-installed: $*" >&2; fail=1; }

want="ftpct $(cat deploy/VERSION)"
[[ $(/usr/sbin/ftpct version) == "$want" ]] || bad "/usr/sbin/ftpct version: $(/usr/sbin/ftpct version), want $want"
# The installed default config is valid and gives the defaults.
/usr/sbin/ftpct check --config /etc/ftpct/ftpct.conf >"$logs/check.out" || bad "ftpct check of the installed config failed"
grep -q '# file' "$logs/check.out" && bad "the default config sets a key (all must be commented out)"
rm -f "$logs/check.out"

unit=/lib/systemd/system/ftpct.service
systemd-analyze verify "$unit" || bad "systemd-analyze verify $unit failed"
security=$(systemd-analyze security --offline=true "$unit")
score=$(grep -oP 'Overall exposure level for ftpct.service: \K[0-9.]+' <<<"$security")
readme=$(grep -oP 'exposure level of \*\*\K[0-9.]+' README.md || true)
echo "systemd-analyze security: exposure level $score (README: $readme)"
[[ -n $score && $score == "$readme" ]] || bad "exposure level $score, README records '$readme': update README (Install on a gateway)"

FTPCT_BIN=/usr/sbin/ftpct go test -count=1 -tags e2e -timeout 20m -run "$run" -v ./e2e/ 2>&1 | tee "$logs/e2e-deb.log" |
	grep -E '^(--- |PASS|FAIL|ok|panic)|testing /usr/sbin/ftpct' || true
grep -q 'e2e: testing /usr/sbin/ftpct (FTPCT_BIN)' "$logs/e2e-deb.log" || bad "the e2e tests did not use /usr/sbin/ftpct"
grep -q '^ok' "$logs/e2e-deb.log" || bad "end-to-end tests with the installed binary failed; log: $logs/e2e-deb.log"

dpkg --purge ftpct
trap - EXIT
for f in /usr/sbin/ftpct "$unit" /etc/ftpct /usr/share/doc/ftpct; do
	[[ ! -e $f ]] || bad "$f is still there after dpkg --purge"
done
[[ $fail == 0 ]] || exit 1
echo "test-installed: installed, tested and removed $deb"
