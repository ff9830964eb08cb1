#!/usr/bin/env bash
# Fleet provisioning benchmark: 1, 8 and 32 nodes run `ensure` at the same moment against one
# empty Redis (a real redis-server on a loopback port, started and stopped here).
#
# Each node is a separate process with its own state directory: the CLI
# (`livekit-provision --secrets redis://… --state-dir DIR ensure`, NODE=cli, the default) or
# examples/fleet_node.rs (NODE=example, the library's `ensure` without the CLI around it). The
# sizes are interleaved (1 8 32 1 8 32 …, the "A B A B" order, so drift hits every size alike)
# for ROUNDS rounds; the median wall time per size is reported. Target: 32 nodes finish within
# 2x the time of one.
#
# In a real fleet every node has its own disk; here all nodes share one, and each node's `ensure`
# makes about a dozen fsyncs, which a shared disk serializes. So the nodes' state directories go
# to tmpfs (/dev/shm) by default, which measures the fleet coordination (process start, Redis
# round trips, rendering) rather than this machine's disk; STATE_ROOT=/some/disk/dir measures the
# shared-disk case instead.
#
# Usage: benches/fleet.sh            (ROUNDS=7, PROFILE=dev, NODE=cli, STATE_ROOT=/dev/shm by default)
#        ROUNDS=11 PROFILE=release STATE_ROOT=/var/tmp NODE=example benches/fleet.sh
set -euo pipefail

ROUNDS=${ROUNDS:-7}
PROFILE=${PROFILE:-dev}
NODE=${NODE:-cli}
SIZES=(1 8 32)
STATE_ROOT=${STATE_ROOT:-$([ -d /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}")}
root=$(cd "$(dirname "$0")/.." && pwd)

command -v redis-server >/dev/null || { echo "redis-server is not installed" >&2; exit 1; }
dir_of_profile=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
case "$NODE" in
    cli)
        cargo build --quiet --manifest-path "$root/Cargo.toml" -p livekit-provision-cli \
            --profile "$PROFILE"
        cli="$root/target/$dir_of_profile/livekit-provision"
        # One node; its --json report carries the API key it serves.
        run_node() { "$cli" -q --json --state-dir "$1" --secrets "$2" ensure; }
        served_key() { sed -n 's/^ *"api_key": "\(.*\)",$/\1/p' "$1"; }
        ;;
    example)
        cargo build --quiet --manifest-path "$root/Cargo.toml" -p livekit-provision \
            --example fleet_node --profile "$PROFILE"
        example="$root/target/$dir_of_profile/examples/fleet_node"
        run_node() { "$example" "$1" "$2"; }
        served_key() { cat "$1"; }
        ;;
    *) echo "NODE must be cli or example" >&2; exit 2 ;;
esac

work=$(mktemp -d)
nodes=$(mktemp -d -p "$STATE_ROOT" fleet-bench.XXXXXX)
redis_pid=
cleanup() {
    [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
    rm -rf "$work" "$nodes"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

for _ in 1 2 3 4 5; do
    port=$(free_port)
    redis-server --bind 127.0.0.1 --port "$port" --dir "$work" --save '' --appendonly no \
        --daemonize no --logfile "$work/redis.log" &
    redis_pid=$!
    for _ in $(seq 200); do
        redis-cli -p "$port" ping >/dev/null 2>&1 && break
        kill -0 "$redis_pid" 2>/dev/null || break
        sleep 0.02
    done
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    redis_pid=
done
[ -n "$redis_pid" ] || { echo "redis-server did not start" >&2; exit 1; }
url="redis://127.0.0.1:$port"

now_ms() { date +%s%3N; }

# One trial: empty Redis, N fresh state dirs, N nodes started together; prints milliseconds.
trial() {
    local n=$1 t0 t1 i failed=0
    redis-cli -p "$port" flushall >/dev/null
    redis-cli -p "$port" config resetstat >/dev/null
    rm -rf "${nodes:?}"/*
    local pids=()
    t0=$(now_ms)
    for i in $(seq "$n"); do
        run_node "$nodes/$i" "$url" >"$nodes/$i.out" 2>"$nodes/$i.err" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    t1=$(now_ms)
    [ "$failed" = 0 ] || { echo "a node failed:" >&2; cat "$nodes"/*.err >&2; exit 1; }
    # Every node must serve the one key in Redis.
    local key served
    key=$(redis-cli -p "$port" --raw get livekit-provision:LIVEKIT_API_KEY)
    served=$(for i in $(seq "$n"); do served_key "$nodes/$i.out"; done | sort -u)
    [ -n "$key" ] && [ "$served" = "$key" ] || { echo "nodes disagree: $served / $key" >&2; exit 1; }
    # The time Redis itself spent serving the nodes (the one resource a real fleet shares).
    local busy_us
    busy_us=$(redis-cli -p "$port" info commandstats |
        awk -F'[,=:]' '/^cmdstat_(get|set|auth|select|ping|type)/ { s += $5 } END { print s + 0 }')
    echo "$((t1 - t0)) $busy_us"
}

declare -A times busy
trial 1 >/dev/null # warm the page cache
for round in $(seq "$ROUNDS"); do
    for n in "${SIZES[@]}"; do
        read -r ms us < <(trial "$n")
        times[$n]+="$ms "
        busy[$n]+="$us "
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "fleet provisioning, $ROUNDS rounds interleaved, node $NODE, profile $PROFILE, $(nproc) CPUs, state dirs in $STATE_ROOT"
printf '%6s  %10s  %15s  %s\n' nodes median_ms redis_busy_us "all (ms)"
declare -A med
for n in "${SIZES[@]}"; do
    med[$n]=$(echo "${times[$n]}" | median)
    printf '%6s  %10s  %15s  %s\n' "$n" "${med[$n]}" "$(echo "${busy[$n]}" | median)" "${times[$n]}"
done
ratio=$(awk -v a="${med[32]}" -v b="${med[1]}" 'BEGIN { printf "%.2f", a / (b > 0 ? b : 1) }')
echo "32 nodes / 1 node: ${ratio}x (target: at most 2x)"
awk -v r="$ratio" 'BEGIN { exit !(r <= 2.0) }' && echo "target met" || echo "target NOT met \
(all nodes share this machine's $(nproc) CPUs; redis_busy_us is what they share in a real fleet)"
