#!/usr/bin/env bash
# The whole test suite, on a fresh machine or this one: install what the tests need when it is
# missing, then run exactly what CI runs (`.ci/run` is this script). Ends with one summary line.
#
#   scripts/test.sh
#
# Installing needs Debian's apt-get and root (directly or through sudo); when everything is
# already there, nothing is installed and nothing is printed about it.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests need, as `package:command` (the command shows it is installed).
# The one list: add a package here when a test starts needing it.
DEBIAN_PACKAGES=(
    "redis-server:redis-server" # fleet tests start a real redis-server (and use redis-cli)
    "redis-sentinel:redis-sentinel" # the Sentinel failover test (tests/it/redis_ha.rs)
    "openssl:openssl" # the rediss:// test makes its CA and certificates (tests/it/redis_ha.rs)
    "chromium:chromium" # the e2e browser scenarios drive Debian's Chromium, headless (e2e/tests/browser.py)
    "libnss3-tools:certutil" # the e2e TLS scenarios give one Chromium an NSS DB trusting Pebble's root (e2e/tests/tlskit.py)
    "npm:npm" # the e2e suite installs livekit-client from e2e/browser/package-lock.json (npm ci)
    "iproute2:ip" # self-healing: an advertised address removed from lo (daemon tests/it/healing.rs, e2e)
    "mount:mount" # self-healing: a state directory on a small tmpfs that fills up (ditto)
)

say() { printf 'test.sh: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        say "need root to run: $*"
        say "run this script as root, install sudo, or install the packages by hand"
        exit 1
    fi
}

# The packages of DEBIAN_PACKAGES whose command is not on PATH.
missing_packages() {
    local entry
    for entry in "${DEBIAN_PACKAGES[@]}"; do
        command -v "${entry#*:}" >/dev/null 2>&1 || printf '%s\n' "${entry%%:*}"
    done
}

install_missing_packages() {
    local missing=()
    mapfile -t missing < <(missing_packages)
    [ "${#missing[@]}" -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        say "missing: ${missing[*]}; this script installs them with apt-get (Debian/Ubuntu) only"
        say "install them with your package manager, then run it again"
        exit 1
    fi
    say "installing ${missing[*]} (apt-get)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    mapfile -t missing < <(missing_packages)
    if [ "${#missing[@]}" -gt 0 ]; then
        say "installed, but still not on PATH: ${missing[*]} (PATH=$PATH)"
        exit 1
    fi
}

# rustfmt and clippy come with most toolchains; a minimal rustup profile lacks them.
install_missing_components() {
    local missing=()
    cargo fmt --version >/dev/null 2>&1 || missing+=(rustfmt)
    cargo clippy --version >/dev/null 2>&1 || missing+=(clippy)
    [ "${#missing[@]}" -eq 0 ] && return 0
    if ! command -v rustup >/dev/null 2>&1; then
        say "missing cargo components: ${missing[*]} (and no rustup to add them)"
        exit 1
    fi
    say "adding ${missing[*]} (rustup)"
    rustup component add "${missing[@]}" >/dev/null
}

install_missing_packages
install_missing_components

started=$SECONDS
passed=()
timings=()
step() {
    local name=$1 began=$SECONDS
    shift
    say "running: $*"
    if ! "$@"; then
        say "FAILED at ${name} after $((SECONDS - began))s (passed: ${timings[*]:-none}) after $((SECONDS - started))s in all"
        exit 1
    fi
    say "passed: ${name} in $((SECONDS - began))s"
    passed+=("$name")
    timings+=("${name} $((SECONDS - began))s")
}

step fmt cargo fmt --all --check
step clippy cargo clippy --workspace --all-targets -- -D warnings
# The library as an embedding service builds it, without the `testing` feature: no dead code, every
# type the API hands out nameable, the docs linking only to what they show, and the public API
# exactly as listed in livekit-provision/public-api.txt.
step api sh -c 'cargo clippy -p livekit-provision --lib --quiet -- -D warnings && scripts/public-api.sh'
step test cargo test --workspace
# The Python harnesses: they compile, and their own parsers and fail-closed rules hold (the e2e
# suite itself needs a real livekit-server: `e2e/run.sh`, see e2e/README.md).
step python sh -c 'python3 -m py_compile e2e/tests/*.py reliability/*.py && python3 reliability/selftest.py'
# The fuzz workspace must at least build (its targets run with `fuzz/run.sh`).
step fuzz-build cargo build --manifest-path fuzz/Cargo.toml --quiet
# The whole e2e suite on the real livekit-server (v1.13.5, and v1.13.4 for the upgrade: installed
# by `go install` into a cache outside the repository), LiveKit's Python SDK and a real Chromium
# running livekit-client. Without Go it prints one `e2e: SKIPPED` line and passes.
step e2e env E2E_BROWSER_REQUIRED=1 e2e/run.sh
say "all ${#passed[@]} steps passed (${timings[*]}) in $((SECONDS - started))s"
