#!/bin/sh
# Build the binaries and run every reliability harness with its default count (a few minutes on
# two cores). Each prints `N passed, M failed`; this exits non-zero if any harness failed.
#   reliability/run_all.sh            defaults
#   COUNT=250 reliability/run_all.sh  250 kills per kill-harness scenario
#   ADVISORY_DB=DIR reliability/run_all.sh   a RustSec advisory-db clone to check offline
#                                     (default ~/.cargo/advisory-db, cargo-audit's own copy)
# Fuzzing is separate: see fuzz/README.md.
set -u
cd "$(dirname "$0")/.."
cargo build -q -p livekit-provision-cli -p livekit-provision-daemon || exit 1
status=0
run() {
    echo "== $*"
    out=$("$@" 2>&1); rc=$?; printf "%s\n" "$out" | tail -n 40; [ $rc -eq 0 ] || status=1
}
# The harnesses' own parsers and fail-closed rules first: a misread tool output tests nothing.
run python3 reliability/selftest.py
run python3 reliability/kill_harness.py --count "${COUNT:-200}"
if command -v strace >/dev/null; then
    run python3 reliability/strace_faults.py
else
    echo "== strace not installed: skipping reliability/strace_faults.py"; status=1
fi
run python3 reliability/concurrent_ensure.py
run python3 reliability/load_rpc.py
if command -v cargo-audit >/dev/null; then
    run cargo audit --db "${ADVISORY_DB:-$HOME/.cargo/advisory-db}" --no-fetch
fi
run python3 reliability/advisories.py
if command -v cargo-deny >/dev/null; then
    run cargo deny check
fi
run cargo test -q -p livekit-provision-cli --test it symlink_attack
run cargo test -q -p livekit-provision-daemon --test it security
exit $status
