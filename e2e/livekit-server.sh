#!/usr/bin/env bash
# Obtain a real livekit-server release for the e2e suite and print the path of its binary.
#
#   e2e/livekit-server.sh v1.13.5
#
# livekit-server is the Go module github.com/livekit/livekit-server; its releases up to v1.13.5
# install with the plain Go client from the Go module proxy (from v1.13.6 on, its go.mod has
# `replace` lines that `go install` refuses). This is a dependency install, like pip or cargo:
# the binary goes into a cache OUTSIDE the repository, keyed by version, and is reused when present:
#
#   ${LIVEKIT_PROVISION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/livekit-provision}/livekit-server/<version>/livekit-server
#
# No livekit code or binary ever enters the repository. Exit status: 0 and the path on stdout;
# 3 when `go` is not on PATH (one line on stderr saying so); 1 on any other failure.
set -euo pipefail

. "$(dirname "$0")/go-cache.sh"
version=${1:-}
go_cache_prepare livekit-server "$version"
bin=$dir/livekit-server

# The version a binary says it is (`livekit-server version 1.13.5` → v1.13.5).
says_version() { "$1" --version 2>/dev/null | sed -n 's/.*version \([0-9][0-9.]*\).*/v\1/p'; }

if [ -x "$bin" ] && [ "$(says_version "$bin")" = "$version" ]; then
    printf '%s\n' "$bin"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    say "go is not on PATH: cannot install livekit-server $version from the Go module proxy"
    exit 3
fi

# One installer per version at a time; a second waits and then finds the binary.
exec 9>"$cache_root/livekit-server/.$version.lock"
flock 9
if [ -x "$bin" ] && [ "$(says_version "$bin")" = "$version" ]; then
    printf '%s\n' "$bin"
    exit 0
fi

staging=$(mktemp -d "$cache_root/livekit-server/.$version.XXXXXX")
trap 'rm -rf "$staging"' EXIT
started=$SECONDS
say "installing livekit-server $version: go install github.com/livekit/livekit-server/cmd/server@$version (a few minutes the first time)"
# GOFLAGS from the caller (e.g. -mod=vendor) would change what is built; CGO off as LiveKit ships it.
if ! GOBIN=$staging CGO_ENABLED=0 GOFLAGS= go install "github.com/livekit/livekit-server/cmd/server@$version" >&2; then
    say "go install of livekit-server $version failed (see above); the Go module proxy is $(go env GOPROXY)"
    exit 1
fi
got=$(says_version "$staging/server")
if [ "$got" != "$version" ]; then
    say "the installed binary says it is '${got:-nothing}', not $version"
    exit 1
fi
mv "$staging/server" "$staging/livekit-server"
rm -rf "$dir"
mv "$staging" "$dir"
trap - EXIT
say "installed livekit-server $version in $((SECONDS - started))s: $bin"
printf '%s\n' "$bin"
