#!/usr/bin/env bash
# Runs every test of ftpct, as root on Debian: formatting, vet and staticcheck,
# unit tests, root integration tests (netlink, nftables, NFQUEUE in namespaces)
# and the end-to-end suite (real FTP servers and clients in a namespace lab,
# through ftpct, through the kernel's helper, and with no helper).
# Installs what it needs first (lab/deps.sh, and staticcheck). Under CI=true,
# tests that cannot run fail instead of skipping; outside CI, an end-to-end
# suite that did not run fails this script too. Logs go to a folder of this
# run, printed first.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

# staticcheck release that knows Go 1.26 (2026.2.2), from the Go module proxy.
staticcheck_version=v0.8.2

bash lab/deps.sh

logs=$(mktemp -d /tmp/ftpct-test.XXXXXX)
echo "test.sh: logs of this run in $logs"

step() { printf '\n== %s\n' "$*"; }

step "gofmt"
unformatted=$(gofmt -l .)
if [[ -n $unformatted ]]; then
	echo "gofmt wants to reformat:"; echo "$unformatted"; exit 1
fi

step "go vet"
go vet ./...
go vet -tags integration ./...
go vet -tags e2e ./...

step "staticcheck $staticcheck_version"
tools=/opt/ftpct-lab/tools/staticcheck-$staticcheck_version
[[ -x $tools/staticcheck ]] || GOBIN=$tools go install "honnef.co/go/tools/cmd/staticcheck@$staticcheck_version"
"$tools/staticcheck" ./...
"$tools/staticcheck" -tags integration ./...
"$tools/staticcheck" -tags e2e ./...

step "unit tests"
go test -count=1 ./...

step "integration tests (root: netlink, nftables, NFQUEUE in namespaces)"
go test -count=1 -tags integration ./...

step "scripted FTP peers, on loopback"
REQUIRE_VSFTPD=1 bash e2e/peers/selftest.sh

step "go install from a module proxy (the committed HEAD served as v$(cat deploy/VERSION))"
bash deploy/check-goinstall.sh

step "Debian package: build, list and check its contents"
debdir=$(mktemp -d)
deb=$(bash deploy/build-deb.sh "$debdir" | tail -1)
bash deploy/check-deb.sh "$deb"

step "Debian package: install, check the unit, end-to-end tests with /usr/sbin/ftpct, purge"
FTPCT_LOGS=$logs bash deploy/test-installed.sh "$deb"
rm -rf "$debdir"

step "side-by-side benchmark harness, smoke run (each variant works; no timings judged)"
bash bench/sidebyside.sh --smoke

step "end-to-end tests (namespace lab, real servers and clients)"
e2e=$logs/e2e.log
go test -count=1 -tags e2e -v -timeout 40m ./e2e/ 2>&1 | tee "$e2e" | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|_test.go|^\*' | grep -v '=== RUN' || true
if grep -q '^ok .*\[no tests to run\]' "$e2e"; then
	# TestMain found that the suite cannot run here; its banner says why.
	echo "end-to-end tests did NOT run: nothing of them passed; full log: $e2e"
	exit 1
fi
if ! grep -q '^ok' "$e2e"; then
	echo "end-to-end tests failed; full log: $e2e"
	grep -E -- '--- FAIL|_test.go:[0-9]+' "$e2e" | head -50
	exit 1
fi
if ! grep -q -- '^--- ' "$e2e"; then
	echo "end-to-end tests: no test ran; full log: $e2e"
	exit 1
fi
passed=$(grep -c -- '--- PASS' "$e2e" || true)
failed=$(grep -c -- '--- FAIL' "$e2e" || true)
skipped=$(grep -c -- '--- SKIP' "$e2e" || true)
echo
echo "full log: $e2e"
echo "e2e: $passed passed, $failed failed, $skipped skipped"
