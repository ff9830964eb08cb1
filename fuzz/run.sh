#!/usr/bin/env bash
# Run each fuzz target for SECONDS (default 60), one after the other, and print the executions
# and crashes of each. Usage: fuzz/run.sh [SECONDS] [TARGET...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). Builds without a sanitizer by default, which
# works on stable Rust (the library forbids `unsafe`, so panics are what there is to find); set
# FUZZ_SANITIZER=address to build with ASan (then RUSTC_BOOTSTRAP=1 is set for the -Z flag).
# New inputs go to fuzz/target/corpus/<target>, so the committed seeds in fuzz/corpus/<target>
# stay as they are; crashing inputs go to fuzz/artifacts/<target>. Exits 1 if any target crashed.
set -uo pipefail

secs="${1:-60}"
shift || true
cd "$(dirname "$0")"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: run \`cargo install cargo-fuzz\`" >&2
    exit 2
fi
sanitizer="${FUZZ_SANITIZER:-none}"
if [ "$sanitizer" != none ]; then
    export RUSTC_BOOTSTRAP=1
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

# One build of every target up front; `cargo fuzz run` then only checks it is fresh.
cargo fuzz build -s "$sanitizer" || exit 1

mkdir -p target/fuzz-logs
summary=()
crashed=0
for t in "${targets[@]}"; do
    mkdir -p "target/corpus/$t" "artifacts/$t"
    before=$(find "artifacts/$t" -type f | wc -l)
    log="target/fuzz-logs/$t.log"
    touch "$log.start"
    echo "== $t (${secs}s)" >&2
    cargo fuzz run -s "$sanitizer" "$t" "target/corpus/$t" "corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    after=$(find "artifacts/$t" -type f | wc -l)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    crashes=$((after - before))
    # A target that ran no input has tested nothing: that is a failure, not "0 crashes".
    if [ -z "$execs" ] || [ "$execs" -eq 0 ] 2>/dev/null; then
        echo "error: $t executed no input (see $log)" >&2
        crashed=1
    fi
    if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes="? (exit $rc, see $log)"
        crashed=1
    elif [ "$crashes" -ne 0 ]; then
        crashed=1
        grep -m 1 -E "panicked at|ERROR: libFuzzer" "$log" >&2
        find "artifacts/$t" -type f -newer "$log.start" | head -n 3 >&2
    fi
    summary+=("$(printf '%-18s %12s %s' "$t" "${execs:-?}" "$crashes")")
done

printf '%-18s %12s %s\n' target executions crashes
printf '%s\n' "${summary[@]}"
exit "$crashed"
