#!/usr/bin/env bash
# Time from exec of livekit-provision-daemon to its first answer to `status`, in two scenarios,
# interleaved A B A B so that machine noise hits both alike; prints the medians.
#   A "stalled":  LIVEKIT_VERSION set, release URL on a loopback server that accepts and never
#                 answers (provisioning hangs in the download for the whole measurement).
#   B "disabled": no LIVEKIT_VERSION (control plane only; ensure renders the files and stops).
# The daemon binds its socket before any provisioning (invariant 5), so A should not be slower.
#
# Usage: benches/daemon_startup.sh [ROUNDS]   (default 15 per scenario)
# Env:   DAEMON=path (default: built with `cargo build -p livekit-provision-daemon --profile
#        ${PROFILE:-dev}`)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-15}"
PROFILE="${PROFILE:-dev}"
if [[ -z "${DAEMON:-}" ]]; then
  cargo build -q -p livekit-provision-daemon --profile "$PROFILE"
  dir="$PROFILE"; [[ "$PROFILE" == dev ]] && dir=debug
  DAEMON="target/$dir/livekit-provision-daemon"
fi
export DAEMON ROUNDS
exec python3 - <<'PY'
import json, os, signal, socket, statistics, subprocess, tempfile, threading, time

daemon = os.environ["DAEMON"]
rounds = int(os.environ["ROUNDS"])

# A release server that accepts and never answers.
stall = socket.socket(); stall.bind(("127.0.0.1", 0)); stall.listen(64)
held = []
threading.Thread(target=lambda: [held.append(stall.accept()) for _ in iter(int, 1)], daemon=True).start()
release_url = "http://127.0.0.1:%d/" % stall.getsockname()[1]

def status(path):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"status"}\n')
        line = s.makefile("rb").readline()
        return json.loads(line)["result"]
    finally:
        s.close()

def once(stalled):
    with tempfile.TemporaryDirectory() as tmp:
        state = os.path.join(tmp, "state"); os.makedirs(state)
        if stalled:
            p = os.path.join(state, "secrets.json")
            with open(p, "w") as f: json.dump({"LIVEKIT_VERSION": "1.7.2"}, f)
            os.chmod(p, 0o600)
        sock = os.path.join(state, "run", "rpc.sock")
        args = [daemon, "--state-dir", state, "-q"] + (["--release-url", release_url] if stalled else [])
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_PROVISION_")}
        t0 = time.perf_counter()
        proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while True:
                try:
                    result = status(sock); break
                except (FileNotFoundError, ConnectionRefusedError):
                    time.sleep(0.0005)
            elapsed = time.perf_counter() - t0
            return elapsed * 1000, result["provisioning"]["state"]
        finally:
            proc.send_signal(signal.SIGTERM); proc.wait(timeout=10)

results = {True: [], False: []}
states = {True: set(), False: set()}
once(False)  # warm the page cache
for _ in range(rounds):
    for stalled in (True, False):
        ms, st = once(stalled)
        results[stalled].append(ms); states[stalled].add(st)
for stalled, name in ((True, "stalled "), (False, "disabled")):
    xs = sorted(results[stalled])
    print("%s: median %.1f ms  (min %.1f, max %.1f, n=%d; provisioning state at first answer: %s)"
          % (name, statistics.median(xs), xs[0], xs[-1], len(xs), ",".join(sorted(states[stalled]))))
PY
