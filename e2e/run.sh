#!/usr/bin/env bash
# Run the end-to-end suite against the real livekit-server (see e2e/README.md).
#
#   e2e/run.sh [pytest args]
#
# The releases come from `e2e/livekit-server.sh` (go install into a cache outside the
# repository: v1.13.5, and v1.13.4 for the upgrade) unless given by path:
#   LIVEKIT_SERVER_BIN=/path/to/livekit-server [LIVEKIT_SERVER_BIN_OLD=/path/to/older] e2e/run.sh
# Without LIVEKIT_SERVER_BIN and without Go it prints one `e2e: SKIPPED` line and exits 0.
# Pebble (ACME test server, for the TLS scenarios) comes from `e2e/pebble.sh` the same way unless
# PEBBLE_BIN and PEBBLE_CHALLTESTSRV_BIN name the binaries.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

say() { printf 'e2e: %s\n' "$*"; }
started=$SECONDS
mark=$SECONDS
# One line per phase with the time it took, so a slow CI run shows where the time went.
phase_done() {
    say "$1 took $((SECONDS - mark))s"
    mark=$SECONDS
}

# Pebble, Let's Encrypt's ACME test server, for the TLS scenarios (tests/test_tls.py).
E2E_PEBBLE_VERSION=${E2E_PEBBLE_VERSION:-v2.10.3}

# The releases the suite runs: the newest the Go module proxy serves installably, and the one
# before it for the upgrade scenario.
E2E_LIVEKIT_VERSION=${E2E_LIVEKIT_VERSION:-v1.13.5}
E2E_LIVEKIT_VERSION_OLD=${E2E_LIVEKIT_VERSION_OLD:-v1.13.4}

obtain() {
    local version=$1 status=0 bin
    bin=$("$here/livekit-server.sh" "$version") || status=$?
    if [ "$status" -eq 3 ]; then
        return 3
    elif [ "$status" -ne 0 ]; then
        say "FAILED: could not obtain livekit-server $version (see above)" >&2
        exit 1
    fi
    printf '%s\n' "$bin"
}

if [ -z "${LIVEKIT_SERVER_BIN:-}" ]; then
    status=0
    LIVEKIT_SERVER_BIN=$(obtain "$E2E_LIVEKIT_VERSION") || status=$?
    if [ "$status" -eq 3 ]; then
        say "SKIPPED: go is not on PATH, so livekit-server $E2E_LIVEKIT_VERSION cannot be installed from the Go module proxy (install Go, or set LIVEKIT_SERVER_BIN to a livekit-server binary)"
        exit 0
    fi
    if [ -z "${LIVEKIT_SERVER_BIN_OLD:-}" ]; then
        LIVEKIT_SERVER_BIN_OLD=$(obtain "$E2E_LIVEKIT_VERSION_OLD")
    fi
fi
export LIVEKIT_SERVER_BIN LIVEKIT_SERVER_BIN_OLD=${LIVEKIT_SERVER_BIN_OLD:-}
phase_done "livekit-server releases"

# Pebble and pebble-challtestsrv (go install into the same cache), unless both are given by path.
if [ -z "${PEBBLE_BIN:-}" ] || [ -z "${PEBBLE_CHALLTESTSRV_BIN:-}" ]; then
    status=0
    pebble_dir=$("$here/pebble.sh" "$E2E_PEBBLE_VERSION") || status=$?
    if [ "$status" -eq 3 ]; then
        say "go is not on PATH, so Pebble $E2E_PEBBLE_VERSION cannot be installed: the TLS scenarios will fail (set PEBBLE_BIN and PEBBLE_CHALLTESTSRV_BIN)"
    elif [ "$status" -ne 0 ]; then
        say "FAILED: could not obtain Pebble $E2E_PEBBLE_VERSION (see above)" >&2
        exit 1
    else
        PEBBLE_BIN=$pebble_dir/pebble
        PEBBLE_CHALLTESTSRV_BIN=$pebble_dir/pebble-challtestsrv
    fi
fi
export PEBBLE_BIN=${PEBBLE_BIN:-} PEBBLE_CHALLTESTSRV_BIN=${PEBBLE_CHALLTESTSRV_BIN:-}
phase_done "pebble $E2E_PEBBLE_VERSION"

venv=${E2E_VENV:-$here/.venv}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
phase_done "python venv"

# LiveKit's JavaScript SDK for the browser scenarios, exactly as package-lock.json pins it.
if command -v npm >/dev/null 2>&1; then
    (cd "$here/browser" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    phase_done "npm ci (livekit-client)"
else
    say "npm is not on PATH: the browser scenarios will skip (install Node.js and npm)"
fi

# E2E_PROFILE: a cargo profile (`dist` by default: what ships; `debug` is cargo's `dev`).
profile=${E2E_PROFILE:-dist}
[ "$profile" = debug ] && profile=dev
(cd "$root" && cargo build --quiet --profile "$profile" -p livekit-provision-cli -p livekit-provision-daemon)
target_dir=$(cd "$root" && cargo metadata --format-version 1 --no-deps | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
out_dir=$profile
[ "$profile" = dev ] && out_dir=debug
export E2E_TARGET_DIR="$target_dir/$out_dir"
phase_done "cargo build --profile $profile"

say "livekit-server $("$LIVEKIT_SERVER_BIN" --version 2>/dev/null | sed 's/.*version //') at $LIVEKIT_SERVER_BIN${LIVEKIT_SERVER_BIN_OLD:+; older: $("$LIVEKIT_SERVER_BIN_OLD" --version 2>/dev/null | sed 's/.*version //')}; pebble at ${PEBBLE_BIN:-(none)}; load: $(cut -d' ' -f1-3 /proc/loadavg)"
cd "$here"
status=0
"$venv/bin/python" -m pytest tests -p no:cacheprovider -s -v --durations=0 "$@" || status=$?
phase_done "pytest"
say "finished in $((SECONDS - started))s (exit $status)"
exit "$status"
