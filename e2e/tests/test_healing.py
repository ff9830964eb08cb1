"""Issue 22: the daemon heals its node's faults by itself. Each scenario runs the real
livekit-server under the real daemon with LiveKit Python SDK participants in the call, and prints
what a listener hears (the worst gap in fresh audio) and who was cut, with the time to heal.

A hung server (SIGSTOP: alive, holding its port, the kernel still completing connections into
its backlog, nothing answering) is told apart from one that answers "not ready": only the first
is replaced (`healing.hung_after`, 5 s by default), with SIGKILL so that the participants rejoin
the next server.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time

import harness
from harness import figure, log
from test_changes import Crowd, in_thread, load, room_identities
from test_scenarios import boot, provision


def test_hung_media_replaced(make_node, version):
    node = make_node("n1")
    provision(node, version)
    first = boot(node)
    key, secret = node.secret("LIVEKIT_API_KEY"), node.secret("LIVEKIT_API_SECRET")
    load_before = load()

    async def scenario():
        crowd = Crowd(silent=6)
        await crowd.join(node, "hung")
        n = len(crowd.everyone)
        stopped = time.monotonic()
        os.kill(first, signal.SIGSTOP)

        def unresponsive():
            p = node.media() or {}
            return p.get("condition") == "unresponsive" and p

        seen = await in_thread(node.wait_for, "livekit-server reported unresponsive", unresponsive, 30, 0.05)
        detected = time.monotonic()
        new, gone, serving = await in_thread(harness.wait_new_server, node, first, 60)
        back: list[str] = []
        while time.monotonic() - stopped < 60:
            back = await room_identities(node, key, secret, "hung")
            if back == crowd.identities:
                break
            await asyncio.sleep(0.1)
        all_back = time.monotonic()
        heard = await crowd.call.wait_fresh(serving, timeout=30)
        await asyncio.sleep(1.0)
        heard = crowd.call.rx.worst_fresh_gap_end or heard
        gap = crowd.call.rx.worst_fresh_gap
        status = await in_thread(node.media)
        states = {p.name: [e for (_, e) in p.events] for p in crowd.everyone}
        cut = crowd.cut()
        await crowd.leave()
        return dict(n=n, seen=seen, detected=detected - stopped, killed=gone - stopped,
                    serving=serving - stopped, new=new, back=back, all_back=all_back - stopped,
                    heard=heard - stopped, gap=gap, status=status, states=states, cut=cut,
                    identities=crowd.identities)

    r = asyncio.run(scenario())
    figure("hung-server", f"{r['n']} participants; livekit-server SIGSTOPped: reported unresponsive after "
                          f"{r['detected']:.2f} s, killed after {r['killed']:.2f} s, the next one serving after "
                          f"{r['serving']:.2f} s (pid {r['seen']['pid']} -> {r['new']}); {len(r['back'])}/{r['n']} "
                          f"back in the room by themselves after {r['all_back']:.2f} s; B heard A again after "
                          f"{r['heard']:.2f} s (worst gap in fresh audio {r['gap']:.2f} s); participants cut "
                          f"for good {len(r['cut'])}; healed {r['status'].get('healed')}; events {r['states']}; "
                          f"load {load_before} -> {load()}")
    assert r["seen"]["pid"] == first and r["seen"]["running"], r["seen"]
    assert not harness.alive(first), "the hung server is still there"
    assert r["back"] == r["identities"], f"back: {r['back']}; events {r['states']}"
    assert r["cut"] == [], r["cut"]
    healed = r["status"].get("healed") or {}
    assert f"pid {first} answered nothing" in healed.get("action", ""), r["status"]
    assert r["status"]["condition"] == "serving", r["status"]
    log(f"healed: {healed}")


def test_crash_loop_taken_back(make_node, version):
    """A change that passes every check (livekit-server's own parse too) yet makes the server
    exit at every start: `rtc_tcp_port` moved to a port another process holds. The daemon
    applies it at idle, the server crash-loops, and the daemon takes the set back to the files
    it served on; a rerun does not bring the loop back; fixing the input ends the hold."""
    node = make_node("n1")
    provision(node, version)
    first = boot(node)
    old_tcp = node.settings["rtc_tcp_port"]
    served = os.readlink(node.state / "current").rsplit("/", 1)[-1]
    node.wait_for("the generation served on recorded",
                  lambda: (node.state / "run/served.json").exists()
                  and served in (node.state / "run/served.json").read_text(), 30, 0.1)
    foreign = socket.socket()
    foreign.bind(("0.0.0.0", 0))
    foreign.listen()
    taken = foreign.getsockname()[1]
    try:
        node.settings["rtc_tcp_port"] = taken
        node.write_settings()
        changed = time.monotonic()
        node.lp("ensure")

        def held():
            media = node.rpc("status")["media"]
            return media.get("held") and media

        media = node.wait_for("the crash-looping set taken back", held, 120, 0.1)
        taken_back = time.monotonic()
        new, _, serving = harness.wait_new_server(node, first, 60)
        log(f"held: {media['held']}")
        livekit = node.media()
        assert f"listen tcp :{taken}: bind: address already in use" in media["held"]["reason"], media
        assert media["held"]["served"] == served, media
        bad = media["held"]["generation"]
        assert f"tcp_port: {old_tcp}" in node.livekit_yaml()
        assert f"tcp_port: {taken}" in (node.state / "generations" / bad / "livekit.yaml").read_text()
        # The node serves: a call on it hears fresh audio.
        async def call() -> float:
            c = harness.Call()
            await c.start(node.url, await in_thread(node.token, "a", "back"),
                          node.url, await in_thread(node.token, "b", "back"))
            t = time.monotonic()
            await c.wait_fresh(t)
            heard = time.monotonic() - t
            await c.close()
            return heard
        heard = asyncio.run(call())
        # A rerun does not bring the loop back.
        rerun = node.lp("ensure")
        said = rerun.stdout + rerun.stderr
        assert "not published" in said and f"generation {bad}" in said, said
        status_text = node.lp("status").stdout
        assert "held back since" in status_text, status_text
        assert node.media()["pid"] == new
        # Fixing the input ends the hold; the fix is applied at idle as usual.
        fixed = harness.free_port()
        node.settings["rtc_tcp_port"] = fixed
        node.write_settings()
        node.lp("ensure")
        node.wait_for("the hold ended", lambda: node.rpc("status")["media"].get("held") is None, 30, 0.1)
        final, _, _ = harness.wait_new_server(node, new, 60)
        assert f"tcp_port: {fixed}" in node.livekit_yaml()
    finally:
        foreign.close()
    figure("crash-loop-taken-back", f"rtc_tcp_port moved onto a port another process holds: livekit-server "
                                    f"crash-looped ({media['held']['reason']!r}); the set was taken back "
                                    f"{taken_back - changed:.2f} s after `ensure` and the node served again "
                                    f"{serving - changed:.2f} s after it (pid {first} -> {new}, generation "
                                    f"{bad} held, {served} republished as {media['held']['republished']}); a "
                                    f"call on it heard fresh audio after {heard:.2f} s; healed: "
                                    f"{livekit.get('healed')}; after the fix: pid {final}")


class OwnRedis:
    """A redis-server of this test alone (append-only, so that a restart keeps the store's
    secrets, as a production Redis does), stopped and started again on the same port."""

    def __init__(self, workdir, reaper: harness.Reaper, name: str) -> None:
        self.dir = workdir / name
        self.dir.mkdir()
        self.port = harness.free_port()
        self.reaper = reaper
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.proc = self.reaper.popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.dir)],
            marker="redis-server", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not self.answers():
            assert self.proc.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not come up"
            time.sleep(0.05)

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def test_store_away(make_node, version, workdir, reaper):
    """The Redis that holds the node's secrets and routes its rooms is killed under a call: the
    server answers `GET /` 406 (measured on 1.13.5: 200 for 3.5 s, then 406, alive throughout)
    and is never restarted for it; the call goes on; `status` says the store is away and
    since when; when Redis is back everything converges by itself, with nothing minted or
    rotated."""
    redis = OwnRedis(workdir, reaper, "store-away-redis")
    node = make_node("n1", secrets=f"redis://{redis.address}/0")
    provision(node, version)
    node.set_secret("LIVEKIT_REDIS_ADDRESS", redis.address)
    server = boot(node)
    key = node.secret("LIVEKIT_API_KEY")
    away_for = 25.0
    load_before = load()

    async def scenario():
        crowd = Crowd(silent=2)
        await crowd.join(node, "away")
        killed = time.monotonic()
        await in_thread(redis.kill)
        conditions: list[tuple[float, str]] = []
        store_seen = None
        while time.monotonic() - killed < away_for:
            status = await in_thread(node.rpc, "status")
            p = next(p for p in status["media"]["processes"] if p["name"] == "livekit-server")
            assert p["pid"] == server, f"livekit-server was replaced while Redis was away: {p}"
            if not conditions or conditions[-1][1] != p["condition"]:
                conditions.append((time.monotonic() - killed, p["condition"]))
            if store_seen is None and status["store"] and not status["store"]["reachable"]:
                store_seen = (time.monotonic() - killed, status["store"])
            await asyncio.sleep(0.5)
        gap_away = crowd.worst_gap()
        cut_away = crowd.cut()
        back_at = time.monotonic()
        await in_thread(redis.start)

        def converged():
            status = node.rpc("status")
            p = next(p for p in status["media"]["processes"] if p["name"] == "livekit-server")
            return (status["store"]["reachable"] and status["provisioning"]["state"] == "ready"
                    and p["condition"] == "serving" and status)

        status = await in_thread(node.wait_for, "everything converged", converged, 60, 0.2)
        converged_after = time.monotonic() - back_at
        await asyncio.sleep(1.0)
        gap, cut, events = crowd.worst_gap(), crowd.cut(), crowd.events()
        await crowd.leave()
        return dict(conditions=conditions, store_seen=store_seen, gap_away=gap_away,
                    cut_away=cut_away, converged=converged_after, status=status, gap=gap,
                    cut=cut, events=events)

    r = asyncio.run(scenario())
    figure("store-away", f"Redis (store and routing) killed under a call of 4 for {away_for:.0f} s: "
                         f"livekit-server conditions {r['conditions']} (same pid {server} throughout); "
                         f"`status.store` unreachable after {r['store_seen'][0] if r['store_seen'] else None} s; "
                         f"worst gap in fresh audio while away {r['gap_away'] * 1000:.0f} ms, participants cut "
                         f"{len(r['cut_away'])}; Redis back -> converged in {r['converged']:.2f} s; "
                         f"worst gap overall {r['gap'] * 1000:.0f} ms; cut {len(r['cut'])}; events "
                         f"{r['events'] or 'none'}; load {load_before} -> {load()}")
    assert r["store_seen"], "status never said the store was unreachable"
    assert r["store_seen"][1]["unreachable_since"], r["store_seen"]
    assert r["cut"] == [], r["cut"]
    assert node.secret("LIVEKIT_API_KEY") == key, "a key was minted or rotated"
    assert r["status"]["media"]["processes"][0]["pid"] == server
