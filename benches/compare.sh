#!/usr/bin/env bash
# Whole-process benchmarks of livekit-provision side by side with what users would otherwise
# run, in one run, printed as one table (issue 8; results and machine in BENCHMARKS.md):
#
#   1. no-op `livekit-provision ensure` on a converged node  vs  `cat` of the same four files
#      (the floor for reading them in a new process)                          target <= 3x
#   2. `livekit-provision install` of a ~50 MB release from a loopback server  vs
#      `curl && sha256sum -c && tar xzf`                        target <= 0.8x, peak RSS < 32 MiB
#      (benches/fetch_compare.sh)
#   3. daemon exec -> first `status` answer, provisioning stalled vs disabled
#      (benches/daemon_startup.sh)                                 target: stalled not slower
#   4. 1 / 8 / 32 nodes running `ensure` at once against one Redis (benches/fleet.sh)
#                                                                       target: 32 nodes <= 2x 1
#
# Noise: these machines are shared, so every comparison alternates A B A B in one run and reports
# medians; a ratio is the median of the per-round ratios.
#
# Usage: benches/compare.sh [quick|full]     (quick by default: a few minutes; full: ~10 minutes)
# Env:   ONLY="noop fetch daemon fleet"  run a subset
#        KEEP=1                           keep the work directory (logs, hyperfine JSON)
# Needs: python3, curl, hyperfine, GNU time, redis-server (the Debian packages are installed when
#        missing and running as root).
set -euo pipefail

MODE=${1:-quick}
case "$MODE" in
    quick) NOOP_ROUNDS=5 NOOP_RUNS=60 FETCH_ROUNDS=3 FETCH_SIZES=50 DAEMON_ROUNDS=7 FLEET_ROUNDS=3 ;;
    full) NOOP_ROUNDS=9 NOOP_RUNS=200 FETCH_ROUNDS=5 FETCH_SIZES="50 200" DAEMON_ROUNDS=15 FLEET_ROUNDS=7 ;;
    *) echo "usage: $0 [quick|full]" >&2; exit 2 ;;
esac
ONLY=${ONLY:-"noop fetch daemon fleet"}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

wants() { [[ " $ONLY " == *" $1 "* ]]; }

need() { # need COMMAND DEBIAN_PACKAGE
    command -v "$1" >/dev/null && return
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "installing $2" >&2
        apt-get install -y "$2" >/dev/null
    else
        echo "$1 is missing: install the Debian package $2" >&2
        exit 1
    fi
}
need python3 python3
need curl curl
need hyperfine hyperfine
[[ -x /usr/bin/time ]] || need /usr/bin/time time
wants fleet && need redis-server redis-server

echo "building the release binaries" >&2
cargo build --release -q -p livekit-provision-cli -p livekit-provision-daemon
CLI="$ROOT/target/release/livekit-provision"
DAEMON="$ROOT/target/release/livekit-provision-daemon"

WORK=$(mktemp -d)
cleanup() { if [[ -n "${KEEP:-}" ]]; then echo "work directory: $WORK" >&2; else rm -rf "$WORK"; fi; }
trap cleanup EXIT

ROWS="$WORK/rows.tsv" # scenario, ours, baseline, ratio, target, met
: >"$ROWS"
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$ROWS"; }
met() { awk -v r="$1" -v t="$2" 'BEGIN { print (r <= t ? "yes" : "NO") }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# Fails closed: a figure that was not parsed (empty, `-`, not a number) means the bench measured
# nothing, and the run fails instead of printing a table of blanks.
NOTHING=0
measured() {
    local what=$1 v
    shift
    for v in "$@"; do
        [[ $v =~ ^[0-9]+(\.[0-9]+)?$ ]] && continue
        echo "error: $what: no figure was measured (parsed '$v')" >&2
        NOTHING=1
    done
}

# --- 1. no-op ensure vs cat ---------------------------------------------------------------
bench_noop() {
    local state="$WORK/noop-state"
    env -u LIVEKIT_PROVISION_SECRETS -u LIVEKIT_PROVISION_RELEASE_URL \
        "$CLI" -q --state-dir "$state" ensure >/dev/null
    local files=("$state/livekit.yaml" "$state/backend.env" "$state/runtime.json" "$state/secrets.json")
    local ensure_cmd="$CLI -q --state-dir $state ensure"
    local cat_cmd="cat ${files[*]}"
    # The rerun must be a no-op: no action in its report, and no file touched (ctime included).
    "$CLI" --json --state-dir "$state" ensure | python3 -c \
        'import json,sys; r=json.load(sys.stdin); sys.exit("not a no-op: %s" % r["actions"] if r["actions"] else 0)'
    listing() { find "$state" -printf '%P %i %m %s %T@ %C@ %l\n' | sort; }
    listing >"$WORK/noop-before"

    echo "1. no-op ensure vs cat: $NOOP_ROUNDS rounds of $NOOP_RUNS runs each" >&2
    local r
    for r in $(seq "$NOOP_ROUNDS"); do
        # A B within a round; the order flips every round so neither always runs first.
        local cmds=(-n ensure "$ensure_cmd" -n cat "$cat_cmd")
        ((r % 2)) || cmds=(-n cat "$cat_cmd" -n ensure "$ensure_cmd")
        hyperfine -N --style none --warmup 10 --runs "$NOOP_RUNS" \
            --export-json "$WORK/noop-$r.json" "${cmds[@]}" >/dev/null 2>>"$WORK/hyperfine.log"
    done
    listing >"$WORK/noop-after"
    local touched
    touched=$(diff "$WORK/noop-before" "$WORK/noop-after" | grep -c '^>' || true)

    # Syscalls per process (deterministic, unlike time): strace -c counts them.
    local sys_ensure=- sys_cat=-
    if command -v strace >/dev/null; then
        sys_ensure=$(strace -f -c -o "$WORK/strace-ensure" $ensure_cmd >/dev/null 2>&1 &&
            awk '$NF == "total" {print $4}' "$WORK/strace-ensure")
        sys_cat=$(strace -f -c -o "$WORK/strace-cat" $cat_cmd >/dev/null 2>&1 &&
            awk '$NF == "total" {print $4}' "$WORK/strace-cat")
    fi

    python3 - "$WORK" "$NOOP_ROUNDS" >"$WORK/noop.out" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
med = {"ensure": [], "cat": []}
ratios = []
for r in range(1, rounds + 1):
    res = {x["command"]: x for x in json.load(open(f"{work}/noop-{r}.json"))["results"]}
    for k in med:
        med[k].append(statistics.median(res[k]["times"]))
    ratios.append(med["ensure"][-1] / med["cat"][-1])
print("%.2f %.2f %.2f" % (statistics.median(med["ensure"]) * 1000,
                          statistics.median(med["cat"]) * 1000, statistics.median(ratios)))
print("per-round ratios: " + " ".join("%.2f" % x for x in ratios), file=sys.stderr)
PY
    local ours base rat
    read -r ours base rat <"$WORK/noop.out"
    measured "no-op ensure" "$ours" "$base" "$rat"
    row "no-op ensure (ms)" "$ours" "$base (cat 4 files)" "${rat}x" "<= 3x" "$(met "$rat" 3)"
    row "no-op ensure: syscalls" "$sys_ensure" "$sys_cat (cat)" "-" "-" "-"
    row "no-op ensure: paths written" "$touched" "0" "-" "0" "$([[ $touched == 0 ]] && echo yes || echo NO)"
}

# --- 2. install vs curl + sha256sum + tar --------------------------------------------------
bench_fetch() {
    echo "2. install vs curl+sha256sum+tar: $FETCH_ROUNDS rounds, sizes $FETCH_SIZES MB" >&2
    ROUNDS=$FETCH_ROUNDS SIZES_MB=$FETCH_SIZES benches/fetch_compare.sh | tee "$WORK/fetch.out" >&2
    local mb ours base ours_rss base_rss rat
    for mb in $FETCH_SIZES; do
        read -r ours ours_rss < <(awk -v s="${mb}MB" '$1 == s && $2 == "livekit-provision" {print $3, $4}' "$WORK/fetch.out")
        read -r base base_rss < <(awk -v s="${mb}MB" '$1 == s && $2 != "livekit-provision" {print $3, $4}' "$WORK/fetch.out")
        measured "install ${mb} MB" "$ours" "$base" "$ours_rss" "$base_rss"
        rat=$(ratio "$ours" "$base")
        row "install ${mb} MB (s)" "$ours" "$base (curl+sha256sum+tar)" "${rat}x" "<= 0.8x" "$(met "$rat" 0.8)"
        row "install ${mb} MB: peak RSS (MiB)" "$ours_rss" "$base_rss (largest of the pipeline)" "-" "< 32" \
            "$(awk -v r="$ours_rss" 'BEGIN { print (r < 32 ? "yes" : "NO") }')"
    done
}

# --- 3. daemon start-up ---------------------------------------------------------------------
bench_daemon() {
    echo "3. daemon exec -> first answer: $DAEMON_ROUNDS rounds" >&2
    DAEMON="$DAEMON" benches/daemon_startup.sh "$DAEMON_ROUNDS" | tee "$WORK/daemon.out" >&2
    local stalled disabled rat
    stalled=$(sed -n 's/^stalled *: median \([0-9.]*\) ms.*/\1/p' "$WORK/daemon.out")
    disabled=$(sed -n 's/^disabled *: median \([0-9.]*\) ms.*/\1/p' "$WORK/daemon.out")
    measured "daemon start-up" "$stalled" "$disabled"
    rat=$(ratio "$stalled" "$disabled")
    # "Not slower" with the noise of a shared machine allowed for: within 1.2x.
    row "daemon first answer, stalled (ms)" "$stalled" "$disabled (disabled)" "${rat}x" "~1x (<= 1.2x)" "$(met "$rat" 1.2)"
}

# --- 4. fleet ---------------------------------------------------------------------------------
bench_fleet() {
    echo "4. fleet 1/8/32 nodes: $FLEET_ROUNDS rounds" >&2
    ROUNDS=$FLEET_ROUNDS PROFILE=release NODE=cli benches/fleet.sh | tee "$WORK/fleet.out" >&2
    local one eight thirty_two
    one=$(awk '$1 == "1" && $2 ~ /^[0-9]+$/ {print $2}' "$WORK/fleet.out")
    eight=$(awk '$1 == "8" && $2 ~ /^[0-9]+$/ {print $2}' "$WORK/fleet.out")
    thirty_two=$(awk '$1 == "32" && $2 ~ /^[0-9]+$/ {print $2}' "$WORK/fleet.out")
    measured "fleet" "$one" "$eight" "$thirty_two"
    local r8 r32
    r8=$(ratio "$eight" "$one")
    r32=$(ratio "$thirty_two" "$one")
    row "fleet, 8 nodes (ms)" "$eight" "$one (1 node)" "${r8}x" "-" "-"
    row "fleet, 32 nodes (ms)" "$thirty_two" "$one (1 node)" "${r32}x" "<= 2x" "$(met "$r32" 2)"
}

wants noop && bench_noop
wants fetch && bench_fetch
wants daemon && bench_daemon
wants fleet && bench_fleet

echo
echo "livekit-provision benchmarks ($MODE), $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $(uname -r)"
python3 - "$ROWS" <<'PY'
import sys
head = ("scenario", "ours", "baseline", "ratio", "target", "met?")
rows = [head] + [tuple(l.rstrip("\n").split("\t")) for l in open(sys.argv[1]) if l.strip()]
w = [max(len(r[i]) for r in rows) for i in range(len(head))]
for n, r in enumerate(rows):
    print("| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(r)) + " |")
    if n == 0:
        print("|" + "|".join("-" * (x + 2) for x in w) + "|")
PY
if [[ $NOTHING -ne 0 ]]; then
    echo "error: at least one figure was not measured (see above)" >&2
    exit 1
fi
