#!/usr/bin/env python3
"""RPC load: the daemon under COUNT requests (default 1000) from CLIENTS concurrent clients
(default 50), about a fifth of them malformed or oversized, repeated for --rounds rounds (default 10).

Each client opens a connection to <state>/run/rpc.sock and sends its share of requests one
line at a time, reading each answer before the next. The mix, in order of a per-client RNG:
  valid      status, health, check, token.create {identity, room}, ensure (1 in 50)
  malformed  not JSON, JSON that is not a request, an unknown method, bad params, a bare
             string, a notification (no id: must get no answer), half a line then close
  oversized  a 100 KiB line (over the 64 KiB limit). What the daemon promises: it reads at
             most 64 KiB + 1 of a line, answers one -32600 error (id null), then closes the
             connection at once, without reading the rest. So the client's write of the rest
             may fail (EPIPE, or ECONNRESET), and that is part of the promise, not a failure;
             the answer is still in the client's receive queue (AF_UNIX keeps it), and after
             it the connection reads as closed (EOF, or ECONNRESET). The client reconnects.
Passes when: every valid request (and every malformed one that has an id) got an answer with
its id, within 30 s; the daemon is still alive and answers `status`; the daemon's RSS after the
last round is within 4 MiB of its RSS after the middle round (memory flat once warm: the first
rounds grow glibc's per-thread malloc arenas, which then plateau), and its open file
descriptors are back to their count after the first round.

Usage: reliability/load_rpc.py [--count N] [--clients C] [--rounds R] [--seed S]
Prints the figures and `N passed, M failed` (requests) at the end; exit 1 on any failure.
"""

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lkp  # noqa: E402

TIMEOUT = 30


class Client:
    def __init__(self, path):
        self.path = path
        self.sock = None
        self.buf = b""

    def connect(self):
        self.close()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(TIMEOUT)
        s.connect(self.path)
        self.sock = s
        self.buf = b""

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None

    def send(self, data):
        if self.sock is None:
            self.connect()
        self.sock.sendall(data)

    def read_line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def closed_by_peer(self):
        """True when nothing more is buffered and the peer has closed (EOF or a reset)."""
        if self.buf:
            return False
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True


def valid(rng, i):
    r = rng.random()
    if r < 0.02:
        return "ensure", {}
    if r < 0.30:
        return "status", {}
    if r < 0.50:
        return "health", {}
    if r < 0.70:
        return "check", {}
    return "token.create", {"identity": f"user-{i}", "room": "load"}


def client_run(path, n, seed, results, errors):
    rng = random.Random(seed)
    c = Client(path)
    ok = bad = oversized = 0
    try:
        for i in range(n):
            rid = seed * 100000 + i
            kind = rng.random()
            try:
                if kind < 0.80:
                    method, params = valid(rng, i)
                    line = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}
                    c.send(json.dumps(line).encode() + b"\n")
                    answer = c.read_line()
                    if answer is None or answer.get("id") != rid or ("result" not in answer and "error" not in answer):
                        raise RuntimeError(f"{method}: no answer with id {rid}: {answer}")
                    if method != "ensure" and "error" in answer:
                        raise RuntimeError(f"{method}: error {answer['error']}")
                elif kind < 0.95:
                    choice = rng.randrange(7)
                    if choice == 0:
                        c.send(b"{this is not json\n")
                        expect = -32700
                    elif choice == 1:
                        c.send(json.dumps({"id": rid, "hello": 1}).encode() + b"\n")
                        expect = -32600
                    elif choice == 2:
                        c.send(json.dumps({"jsonrpc": "2.0", "id": rid, "method": "nope"}).encode() + b"\n")
                        expect = -32601
                    elif choice == 3:
                        p = {"jsonrpc": "2.0", "id": rid, "method": "token.create", "params": {"identity": 5}}
                        c.send(json.dumps(p).encode() + b"\n")
                        expect = -32602
                    elif choice == 4:
                        c.send(b'"just a string"\n')
                        expect = -32600
                    elif choice == 5:
                        # A notification: no answer; prove it by a status right after it.
                        c.send(json.dumps({"jsonrpc": "2.0", "method": "status"}).encode() + b"\n")
                        c.send(json.dumps({"jsonrpc": "2.0", "id": rid, "method": "status"}).encode() + b"\n")
                        expect = None
                    else:
                        # Half a line, then hang up mid-request.
                        c.send(b'{"jsonrpc": "2.0", "id": 1, "meth')
                        c.close()
                        ok += 1
                        continue
                    answer = c.read_line()
                    if answer is None:
                        raise RuntimeError(f"malformed #{choice}: connection closed without an answer")
                    if expect is None:
                        if answer.get("id") != rid or "result" not in answer:
                            raise RuntimeError(f"a notification was answered: {answer}")
                    elif answer.get("error", {}).get("code") != expect:
                        raise RuntimeError(f"malformed #{choice}: expected {expect}, got {answer}")
                else:
                    oversized += 1
                    try:
                        c.send(b'{"jsonrpc":"2.0","id":1,"method":"status","params":{"x":"' + b"a" * (100 * 1024) + b'"}}\n')
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the daemon stopped reading after 64 KiB, as promised
                    answer = c.read_line()
                    if answer is None or answer.get("error", {}).get("code") != -32600 or answer.get("id") is not None:
                        raise RuntimeError(f"oversized: expected one -32600 error with id null, got {answer}")
                    if not c.closed_by_peer():
                        raise RuntimeError("oversized: the daemon kept the connection open after the error")
                    c.close()
                ok += 1
            except (OSError, ValueError, RuntimeError) as e:
                bad += 1
                errors.append(f"client {seed} request {i}: {e}")
                c.close()
    finally:
        c.close()
        results.append((ok, bad, oversized))


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def call(path, method):
    c = Client(path)
    c.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method}).encode() + b"\n")
    answer = c.read_line()
    c.close()
    return answer


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    passed = failed = sent = oversized_sent = 0
    with tempfile.TemporaryDirectory(prefix="lkp-load-") as work:
        state = os.path.join(work, "state")
        home = os.path.join(work, "home")
        os.makedirs(home)
        env = lkp.clean_env(home)
        log = open(os.path.join(work, "daemon.log"), "w")
        daemon = subprocess.Popen(
            [lkp.DAEMON, "--state-dir", state], env=env, stdin=subprocess.DEVNULL,
            stdout=log, stderr=log,
        )
        try:
            path = os.path.join(state, "run", "rpc.sock")
            deadline = time.monotonic() + 30
            while True:
                try:
                    if call(path, "status").get("result") is not None:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline or daemon.poll() is not None:
                    raise SystemExit("the daemon did not come up")
                time.sleep(0.05)
            # Wait for the background provisioning to finish (token.create needs the files).
            deadline = time.monotonic() + 30
            while not os.path.exists(os.path.join(state, "runtime.json")):
                if time.monotonic() > deadline:
                    raise SystemExit("the daemon did not provision")
                time.sleep(0.05)
            rss0, fd0 = lkp.rss_kib(daemon.pid), fds(daemon.pid)
            rss, fd_after = [], []
            per = a.count // a.clients
            for r in range(a.rounds):
                results, errors = [], []
                threads = [
                    threading.Thread(target=client_run, args=(path, per, a.seed * 1000 + r * a.clients + k, results, errors))
                    for k in range(a.clients)
                ]
                start = time.monotonic()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                took = time.monotonic() - start
                ok = sum(o for o, _, _ in results)
                bad = sum(b for _, b, _ in results)
                sent += ok + bad
                oversized_sent += sum(v for _, _, v in results)
                passed += ok
                failed += bad
                for e in errors[:10]:
                    print("  FAIL " + e)
                time.sleep(0.2)
                rss.append(lkp.rss_kib(daemon.pid))
                fd_after.append(fds(daemon.pid))
                print(
                    f"round {r + 1}: {a.clients} clients x {per} requests in {took:.1f} s: "
                    f"{ok} answered as specified, {bad} not; daemon RSS {rss[-1]} KiB, fds {fds(daemon.pid)}",
                    flush=True,
                )
            alive = daemon.poll() is None and call(path, "status").get("result") is not None
            # The daemon closes the last connection asynchronously: poll, with a deadline.
            deadline = time.monotonic() + 5
            while fds(daemon.pid) > fd_after[0] and time.monotonic() < deadline:
                time.sleep(0.05)
            fd1 = fds(daemon.pid)
            mid = (a.rounds - 1) // 2
            growth = rss[-1] - rss[mid]
            print(f"daemon RSS: before {rss0} KiB, after round 1 {rss[0]} KiB, after round {mid + 1} {rss[mid]} KiB, "
                  f"after round {a.rounds} {rss[-1]} KiB "
                  f"(growth {growth} KiB); fds before {fd0}, after round 1 {fd_after[0]}, at the end {fd1}; alive: {alive}")
            if not alive:
                print("  FAIL the daemon died or stopped answering")
                failed += 1
            if growth > 4096:
                print("  FAIL memory grew by more than 4 MiB between the middle and the last round")
                failed += 1
            if fd1 > fd_after[0]:
                print("  FAIL file descriptors leaked")
                failed += 1
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
            log.close()
    return lkp.finish(passed, failed, {"requests sent": sent, "oversized requests": oversized_sent})


if __name__ == "__main__":
    sys.exit(main())
