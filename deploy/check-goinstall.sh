#!/usr/bin/env bash
# Proves that `go install github.com/ftpct/ftpct/cmd/ftpct@vVERSION` works,
# before the module is published: the committed HEAD is served as that
# version from a local file proxy (deploy/modzip, golang.org/x/mod/zip),
# in front of the real module proxy for the dependencies, and installed
# into a clean GOPATH. The installed binary must report the version.
# VERSION comes from deploy/VERSION. Uncommitted changes are not served.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
MODULE=github.com/ftpct/ftpct
VERSION=v$(cat deploy/VERSION)

work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
mkdir "$work/src"
git archive HEAD | tar -x -C "$work/src"
(cd deploy/modzip && go run . -dir "$work/src" -module "$MODULE" -version "$VERSION" \
	-time "$(git log -1 --format=%cI HEAD)" -out "$work/proxy")

# A clean GOPATH and module cache; ftpct from the file proxy, everything
# else from the usual proxy; no checksum database entry for an unpublished
# module.
env -u GOFLAGS GOPATH="$work/gopath" GOMODCACHE="$work/gopath/pkg/mod" GOBIN="$work/bin" \
	GOPROXY="file://$work/proxy,$(go env GOPROXY)" GONOSUMDB="$MODULE" GOWORK=off \
	bash -c "cd '$work' && go install '$MODULE/cmd/ftpct@$VERSION'"

got=$("$work/bin/ftpct" version)
if [[ $got != "ftpct $VERSION" ]]; then
	echo "check-goinstall: installed ftpct says '$got', want 'ftpct $VERSION'" >&2
	exit 1
fi
echo "check-goinstall: go install $MODULE/cmd/ftpct@$VERSION works ($got)"
