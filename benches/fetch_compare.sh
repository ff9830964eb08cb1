#!/usr/bin/env bash
# Compare installing a livekit-server release with livekit-provision against the shell recipe
#   curl -sSfo x.tgz URL && sha256sum -c && tar xzf x.tgz livekit-server
# on loopback, for a ~50 MB and a ~200 MB release of incompressible content.
#
# Runs alternate A B A B ... (ROUNDS pairs, default 3); prints the median wall time and the
# median peak RSS (GNU time -v) of each. Needs python3, curl, sha256sum, /usr/bin/time
# (Debian package `time`). Traffic goes to 127.0.0.1 only.
#
# livekit-provision is the release CLI (`livekit-provision install`); INSTALL_CMD may name another
# command taking (STATE_DIR BASE_URL VERSION).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
SIZES_MB=${SIZES_MB:-"50 200"}
VERSION=9.0.0
ROOT=$(cd "$(dirname "$0")/.." && pwd)

if [[ ! -x /usr/bin/time ]]; then
    echo "installing GNU time" >&2
    apt-get install -y time >/dev/null
fi

if [[ -z "${INSTALL_CMD:-}" ]]; then
    (cd "$ROOT" && cargo build --release -q -p livekit-provision-cli)
    cli="$ROOT/target/release/livekit-provision"
    install_with_cli() { "$cli" -q --state-dir "$1" --release-url "$2" install --version "$3"; }
    export -f install_with_cli
    export cli
    INSTALL_CMD=install_with_cli
fi

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/www"
python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$WORK/www" >/dev/null 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$PORT/" >/dev/null && break
    sleep 0.1
done

arch=$(uname -m)
case "$arch" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; esac

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# Prints "seconds max_rss_kib" for the command.
measure() {
    local log="$WORK/time.log"
    /usr/bin/time -v -o "$log" "$@" >/dev/null
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,t,":"); s=0; for(i=1;i<=n;i++) s=s*60+t[i]; print s}' "$log")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
    echo "$wall $rss"
}

printf '%-8s %-22s %10s %14s\n' size tool median_s median_rss_MiB
for mb in $SIZES_MB; do
    rel="$WORK/www/$mb/v$VERSION"
    mkdir -p "$rel" "$WORK/src"
    asset="livekit_${VERSION}_linux_${arch}.tar.gz"
    head -c "${mb}M" /dev/urandom >"$WORK/src/livekit-server"
    chmod 755 "$WORK/src/livekit-server"
    echo "test license" >"$WORK/src/LICENSE"
    tar -C "$WORK/src" -czf "$rel/$asset" livekit-server LICENSE
    (cd "$rel" && sha256sum "$asset" >checksums.txt)
    base="http://127.0.0.1:$PORT/$mb"
    url="$base/v$VERSION/$asset"

    : >"$WORK/a.txt"; : >"$WORK/b.txt"
    for round in $(seq "$ROUNDS"); do
        state="$WORK/state-$round"; rm -rf "$state"
        measure bash -c "$INSTALL_CMD \"\$@\"" _ "$state" "$base" "$VERSION" >>"$WORK/a.txt"
        rm -rf "$state"
        dir="$WORK/curl-$round"; rm -rf "$dir"; mkdir -p "$dir"
        measure bash -c "cd '$dir' && curl -sSfo '$asset' '$url' && curl -sSfo checksums.txt '$base/v$VERSION/checksums.txt' && sha256sum -c --quiet checksums.txt && tar xzf '$asset' livekit-server" >>"$WORK/b.txt"
        rm -rf "$dir"
    done
    for pair in "a:livekit-provision" "b:curl+sha256sum+tar"; do
        f="$WORK/${pair%%:*}.txt"
        t=$(cut -d' ' -f1 "$f" | median)
        r=$(cut -d' ' -f2 "$f" | median)
        printf '%-8s %-22s %10.2f %14.1f\n' "${mb}MB" "${pair#*:}" "$t" "$(echo "$r / 1024" | bc -l)"
    done
    rm -rf "$WORK/www/$mb" "$WORK/src"
done
