#!/usr/bin/env bash
# Runs every test of ftpct, as root on Debian: formatting and vet, unit tests,
# root integration tests (netlink, nftables, NFQUEUE in namespaces) and the
# end-to-end suite (real FTP servers and clients in a namespace lab, through
# ftpct, through the kernel's helper, and with no helper).
# Installs what it needs first (lab/deps.sh). Under CI=true, tests that
# cannot run fail instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

bash lab/deps.sh

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
bash deploy/test-installed.sh "$deb"
rm -rf "$debdir"

step "end-to-end tests (namespace lab, real servers and clients)"
go test -count=1 -tags e2e -v -timeout 40m ./e2e/ 2>&1 | tee /tmp/ftpct-e2e.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|_test.go' | grep -v '=== RUN' || true
if ! grep -q '^ok' /tmp/ftpct-e2e.log; then
	echo "end-to-end tests failed; full log: /tmp/ftpct-e2e.log"
	grep -E -- '--- FAIL|_test.go:[0-9]+' /tmp/ftpct-e2e.log | head -50
	exit 1
fi
passed=$(grep -c -- '--- PASS' /tmp/ftpct-e2e.log || true)
failed=$(grep -c -- '--- FAIL' /tmp/ftpct-e2e.log || true)
echo
echo "e2e: $passed passed, $failed failed"
