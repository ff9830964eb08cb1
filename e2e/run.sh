#!/usr/bin/env bash
# Run the end-to-end suite against a real livekit-server given by path (see e2e/README.md).
#   LIVEKIT_SERVER_BIN=/path/to/livekit-server [LIVEKIT_SERVER_BIN_OLD=/path/to/older] e2e/run.sh [pytest args]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
if [ -z "${LIVEKIT_SERVER_BIN:-}" ]; then
    echo "e2e: SKIPPED: LIVEKIT_SERVER_BIN is not set (path to a livekit-server binary built beside the project; see e2e/README.md)"
    exit 0
fi
venv=${E2E_VENV:-$here/.venv}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
profile=${E2E_PROFILE:-release}
flag=--release
[ "$profile" = debug ] && flag=
(cd "$root" && cargo build $flag -p livekit-provision-cli -p livekit-provision-daemon)
target_dir=$(cd "$root" && cargo metadata --format-version 1 --no-deps | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
export E2E_TARGET_DIR="$target_dir/$profile"
echo "e2e: livekit-server $("$LIVEKIT_SERVER_BIN" --version 2>/dev/null | sed 's/.*version //') at $LIVEKIT_SERVER_BIN; load: $(cut -d' ' -f1-3 /proc/loadavg)"
cd "$here"
exec "$venv/bin/python" -m pytest tests -p no:cacheprovider -s -v "$@"
