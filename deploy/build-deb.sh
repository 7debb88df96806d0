#!/usr/bin/env bash
# Builds the Debian package of ftpct with nfpm (pinned below; run through
# `go run`, so nothing is installed): OUT/ftpct_VERSION_ARCH.deb holding
# /usr/sbin/ftpct, the systemd unit, /etc/ftpct/ftpct.conf (a conffile) and
# /usr/share/doc/ftpct/README.md. VERSION comes from deploy/VERSION.
#
#   deploy/build-deb.sh [OUT]     (default OUT: dist)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
NFPM=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.43.0

out=${1:-dist}
mkdir -p "$out"
out=$(cd "$out" && pwd)
VERSION=$(cat deploy/VERSION)
GOARCH=$(go env GOARCH)
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT

CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o "$build/ftpct" ./cmd/ftpct
cp -r deploy README.md "$build/" # copies: nfpm would package a symlink as one
rm -f "$out/ftpct_${VERSION}_${GOARCH}.deb"
(cd "$build" && VERSION=$VERSION GOARCH=$GOARCH \
	go run "$NFPM" package --config deploy/nfpm.yaml --packager deb --target "$out/ftpct_${VERSION}_${GOARCH}.deb")
echo "$out/ftpct_${VERSION}_${GOARCH}.deb"
