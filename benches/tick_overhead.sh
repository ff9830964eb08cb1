#!/usr/bin/env bash
# What the daemon's once-a-second look at its node costs (issue 21: who is in a call, pending
# changes, key epochs): the daemon's own CPU time over a minute of an idle node, and the wall time
# of one look at the rooms (RoomService ListRooms + ListParticipants on loopback).
#
# The media are the livekit-server STAND-IN (not the real program: the real one answers the same
# calls, measured; e2e/ runs the real one). Two scenarios, each for SECONDS (default 60):
#   empty: the node has no room;
#   busy:  3 rooms of 4 participants (stand-in only: POST /standin/participants).
# CPU time is utime + stime of the daemon process from /proc/<pid>/stat (clock ticks).
#
# Usage: benches/tick_overhead.sh [SECONDS]
# Env:   PROFILE (default dist: the shipped build; `dev` for a debug build)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${1:-60}"
PROFILE="${PROFILE:-dist}"
cargo build -q -p livekit-provision-daemon --profile "$PROFILE"
cargo build -q -p livekit-provision-standins
dir="$PROFILE"; [[ "$PROFILE" == dev ]] && dir=debug
export DAEMON="target/$dir/livekit-provision-daemon" STANDIN="target/debug/livekit-server-standin"
export SECONDS_PER_RUN
exec python3 - <<'PY'
import json, os, signal, socket, subprocess, tempfile, time, urllib.request

daemon, standin, seconds = os.environ["DAEMON"], os.environ["STANDIN"], int(os.environ["SECONDS_PER_RUN"])
tick = os.sysconf("SC_CLK_TCK")

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def rpc(sock, method, params=None):
    s = socket.socket(socket.AF_UNIX); s.connect(sock)
    s.sendall(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}).encode() + b"\n")
    line = s.makefile("rb").readline(); s.close()
    return json.loads(line).get("result")

def cpu_ms(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / tick

def run(busy):
    with tempfile.TemporaryDirectory() as tmp:
        state = os.path.join(tmp, "state"); os.makedirs(state)
        port = free_port()
        with open(os.path.join(state, "provision.yaml"), "w") as f:
            f.write(f"port: {port}\nrtc_tcp_port: {free_port()}\nlivekit_bin: {os.path.abspath(standin)}\n")
        p = os.path.join(state, "secrets.json")
        with open(p, "w") as f: json.dump({"LIVEKIT_VERSION": "1.7.2"}, f)
        os.chmod(p, 0o600)
        sock = os.path.join(state, "run", "rpc.sock")
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_PROVISION_")}
        proc = subprocess.Popen([daemon, "--state-dir", state, "-q"], env=env,
                                stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        media = None
        try:
            deadline = time.time() + 60
            while time.time() < deadline:
                try:
                    s = rpc(sock, "status")
                    lk = [m for m in s["media"]["processes"] if m["name"] == "livekit-server"]
                    if lk and lk[0]["healthy"] and s["occupancy"]:
                        media = lk[0]["pid"]; break
                except (FileNotFoundError, ConnectionRefusedError, TypeError, KeyError):
                    pass
                time.sleep(0.1)
            assert media, "the stand-in never became healthy"
            if busy:
                for r in range(3):
                    body = json.dumps({"room": f"r{r}", "identities": [f"p{r}{i}" for i in range(4)]}).encode()
                    req = urllib.request.Request(f"http://127.0.0.1:{port}/standin/participants", body,
                                                 {"Content-Type": "application/json"})
                    urllib.request.urlopen(req, timeout=10).read()
                time.sleep(2)
                assert rpc(sock, "status")["occupancy"]["participants"] == 12
            c0, t0 = cpu_ms(proc.pid), time.time()
            time.sleep(seconds)
            c1, t1 = cpu_ms(proc.pid), time.time()
            # One look at the rooms, timed from the outside: the status call reads the reading
            # the tick took; a fresh one is the tick's own cost, so time `status` round trips too.
            rt = []
            for _ in range(20):
                a = time.perf_counter(); rpc(sock, "status"); rt.append((time.perf_counter() - a) * 1000)
            rss = int(open(f"/proc/{proc.pid}/status").read().split("VmRSS:")[1].split()[0]) / 1024
            return (c1 - c0) / (t1 - t0), sorted(rt)[len(rt) // 2], rss
        finally:
            proc.send_signal(signal.SIGTERM); proc.wait(timeout=10)
            if media:
                try: os.kill(media, signal.SIGKILL)
                except ProcessLookupError: pass

for busy in (False, True):
    per_s, status_ms, rss = run(busy)
    print("%s: daemon CPU %.2f ms per second of wall time (%.2f %% of one core); `status` %.1f ms median; RSS %.1f MiB"
          % ("busy (12 participants in 3 rooms)" if busy else "empty", per_s, per_s / 10, status_ms, rss))
PY
