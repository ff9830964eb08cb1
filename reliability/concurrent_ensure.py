#!/usr/bin/env python3
"""Concurrency: 32 concurrent `livekit-provision ensure` runs plus a daemon on one state dir.

Each round starts from a FRESH state directory (so the 32 runs and the daemon race to mint the
credentials), starts the daemon, launches the CLI runs at once while sending the daemon SIGHUP
(ensure again) a few times, then changes provision.yaml and does it again (a racing re-render).
Passes when, in every round: every run exits 0; no run prints an `error:` line (waiting for the
lock is the only contention message allowed); secrets.json holds one key and one secret; the
three files agree with it; a dry run afterwards has nothing to do; the daemon is still up and
its `status` agrees with the key on disk.

Usage: reliability/concurrent_ensure.py [--rounds N] [--runs 32]
Prints one line per round and `N passed, M failed` (rounds) at the end; exit 1 on failure.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lkp  # noqa: E402

ALLOWED = ("waiting for", "warning: LIVEKIT_VERSION is not set", "warning: LIVEKIT_NODE_IP is not set")


def status(path):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(path)
    s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"status"}\n')
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    return json.loads(buf)


def burst(state, env, runs, daemon):
    procs = [
        subprocess.Popen([lkp.CLI, "--state-dir", state, "ensure"], env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(runs)
    ]
    for _ in range(3):
        daemon.send_signal(signal.SIGHUP)
        time.sleep(0.01)
    problems, waited = [], 0
    for p in procs:
        out, err = p.communicate(timeout=120)
        if p.returncode != 0:
            problems.append(f"exit {p.returncode}: {err.strip()[-300:]}")
        for line in err.splitlines():
            if "waiting for" in line:
                waited += 1
            elif not line.startswith(ALLOWED) and line.strip():
                problems.append(f"unexpected stderr: {line}")
    return problems, waited


def one_round(work, i, runs):
    state = os.path.join(work, f"state-{i}")
    home = os.path.join(work, "home")
    os.makedirs(home, exist_ok=True)
    env = lkp.clean_env(home)
    log = open(os.path.join(work, f"daemon-{i}.log"), "w")
    daemon = subprocess.Popen([lkp.DAEMON, "--state-dir", state], env=env, stdin=subprocess.DEVNULL,
                              stdout=log, stderr=log)
    problems, waited = [], 0
    try:
        # The daemon serves its socket before it provisions (in the background): once it
        # answers, its first ensure races the CLI runs. (And SIGHUP is then handled, not fatal.)
        sock = os.path.join(state, "run", "rpc.sock")
        deadline = time.monotonic() + 30
        while True:
            try:
                status(sock)
                break
            except (OSError, ValueError):
                if time.monotonic() > deadline:
                    raise SystemExit("the daemon did not come up")
                time.sleep(0.005)
        for phase in ("fresh", "rerender"):
            if phase == "rerender":
                with open(os.path.join(state, "provision.yaml"), "w") as f:
                    f.write("port: 7990\n")
            p, w = burst(state, env, runs, daemon)
            problems += [f"{phase}: {x}" for x in p]
            waited += w
            try:
                lkp.check_state(state)
                st = lkp.store(state)
                secrets = [k for k in st if "SECRET" in k]
                if secrets != ["LIVEKIT_API_SECRET"]:
                    problems.append(f"{phase}: store holds {secrets}")
                if lkp.cli(state, ["ensure", "--dry-run"], env, check=False).returncode != 0:
                    problems.append(f"{phase}: not converged")
                if b"port: 7990" not in lkp.read_fixed(state)["livekit.yaml"] and phase == "rerender":
                    problems.append("rerender: the change was not published")
            except lkp.Broken as e:
                problems.append(f"{phase}: {e}")
        if daemon.poll() is not None:
            problems.append("the daemon exited")
        else:
            answer = status(sock)
            if "result" not in answer:
                problems.append(f"daemon status: {answer}")
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        log.close()
    return problems, waited, lkp.store(state).get("LIVEKIT_API_KEY")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--runs", type=int, default=32)
    a = ap.parse_args()
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="lkp-conc-") as work:
        for i in range(a.rounds):
            problems, waited, key = one_round(work, i, a.runs)
            if problems:
                failed += 1
                for p in problems[:10]:
                    print(f"  FAIL round {i + 1}: {p}")
            else:
                passed += 1
            print(f"round {i + 1}: {2 * a.runs} CLI runs + daemon (3 SIGHUPs per burst): "
                  f"{waited} waited for the lock, key {key}, {len(problems)} problems", flush=True)
    return lkp.finish(passed, failed, {"rounds": a.rounds, "CLI runs": 2 * a.runs * a.rounds})


if __name__ == "__main__":
    sys.exit(main())
