#!/usr/bin/env bash
# Obtain Pebble, Let's Encrypt's ACME test server, and its pebble-challtestsrv (DNS answers that
# point the test domains at loopback) for the e2e TLS scenarios; print the directory holding both.
#
#   e2e/pebble.sh v2.10.3
#
# Pebble is the Go module github.com/letsencrypt/pebble/v2 (no `replace` lines: `go install`
# works). This is a dependency install, like pip or cargo: the binaries go into a cache OUTSIDE
# the repository, keyed by version, and are reused when present:
#
#   ${LIVEKIT_PROVISION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/livekit-provision}/pebble/<version>/{pebble,pebble-challtestsrv}
#
# No Pebble code or binary ever enters the repository. Exit status: 0 and the directory on
# stdout; 3 when `go` is not on PATH (one line on stderr saying so); 1 on any other failure.
set -euo pipefail

. "$(dirname "$0")/go-cache.sh"
version=${1:-}
go_cache_prepare pebble "$version"
module=github.com/letsencrypt/pebble/v2

# The version of the module a Go binary was built from, read from the build information Go
# embeds in it (`go version -m`; Pebble has no --version flag). Without go on PATH, the VERSION
# file this script wrote beside the binaries once it had checked them.
says_version() {
    if command -v go >/dev/null 2>&1; then
        go version -m "$1" 2>/dev/null | awk -v m="$module" '$1 == "mod" && $2 == m { print $3 }'
    else
        cat "$(dirname "$1")/VERSION" 2>/dev/null
    fi
}
present() {
    local b
    for b in pebble pebble-challtestsrv; do
        [ -x "$1/$b" ] && [ "$(says_version "$1/$b")" = "$version" ] || return 1
    done
}

if present "$dir"; then
    printf '%s\n' "$dir"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    say "go is not on PATH: cannot install Pebble $version from the Go module proxy"
    exit 3
fi

# One installer per version at a time; a second waits and then finds the binaries.
exec 9>"$cache_root/pebble/.$version.lock"
flock 9
if present "$dir"; then
    printf '%s\n' "$dir"
    exit 0
fi

staging=$(mktemp -d "$cache_root/pebble/.$version.XXXXXX")
trap 'rm -rf "$staging"' EXIT
started=$SECONDS
say "installing Pebble $version: go install $module/cmd/pebble@$version $module/cmd/pebble-challtestsrv@$version"
# GOFLAGS from the caller (e.g. -mod=vendor) would change what is built; CGO off, static binaries.
if ! GOBIN=$staging CGO_ENABLED=0 GOFLAGS= go install \
        "$module/cmd/pebble@$version" "$module/cmd/pebble-challtestsrv@$version" >&2; then
    say "go install of Pebble $version failed (see above); the Go module proxy is $(go env GOPROXY)"
    exit 1
fi
for b in pebble pebble-challtestsrv; do
    got=$(says_version "$staging/$b")
    if [ "$got" != "$version" ]; then
        say "the installed $b was built from '${got:-nothing}', not $module $version"
        exit 1
    fi
done
printf '%s\n' "$version" >"$staging/VERSION"
rm -rf "$dir"
mv "$staging" "$dir"
trap - EXIT
say "installed Pebble $version in $((SECONDS - started))s: $dir"
printf '%s\n' "$dir"
