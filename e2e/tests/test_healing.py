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
from test_changes import Crowd, in_thread, load
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
        back, all_back = await crowd.wait_back(node, key, secret, "hung", stopped + 60)
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
    # Longer than `status.store`'s 10 s read, shorter than the SDK's reconnect budget: while its
    # Redis is away livekit-server answers signaling with 500, and LiveKit's Rust SDK gives up
    # after 10 attempts (measured: a 25 s outage cut 1 participant of 4 in one CI run of 4).
    away_for = 18.0
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


def _run(*args: str) -> None:
    out = subprocess.run(list(args), capture_output=True, text=True)
    assert out.returncode == 0, f"{' '.join(args)}: {out.stderr.strip()} (needs root)"


def _fill(path) -> None:
    """Write `path` until the disk refuses (ENOSPC)."""
    chunk = b"\0" * (1 << 20)
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass


def test_disk_full(make_node, version, old_server_bin, workdir):
    """The state directory on a small disk (tmpfs) that fills up under a call, first during a
    publish (a setting changed), then during an install (an older release pinned): nothing torn,
    the media untouched, the daemon answering; both complete by themselves once space returns."""
    old = harness.server_version(old_server_bin)
    # The secrets outside the small disk, so that a new pin can be stored while it is full.
    node = make_node("n1", secrets=f"file:{workdir / 'disk-full-secrets.json'}")
    _run("mount", "-t", "tmpfs", "-o", "size=192m,mode=0700", "tmpfs", str(node.state))
    try:
        node.write_settings()
        provision(node, version)
        server = boot(node)
        live = node.state / "livekit.yaml"
        binary = node.state / "bin" / "livekit-server"

        async def scenario():
            crowd = Crowd(silent=2)
            await crowd.join(node, "full")
            before = live.read_text()
            generation = os.readlink(node.state / "current")
            installed = binary.resolve()
            filler = node.state / "filler"
            await in_thread(_fill, filler)
            # An install on the full disk: an older release pinned (the files do not change).
            await in_thread(node.rpc, "secrets.set", {"name": "LIVEKIT_VERSION", "value": f"v{old}"})
            install_failed = await in_thread(
                node.wait_for, "the install refused",
                lambda: "No space left on device" in str(node.rpc("status")["provisioning"]["last_error"])
                and node.rpc("status")["provisioning"], 60, 0.2)
            assert binary.resolve() == installed, "the binary changed on a full disk"
            assert not list((node.state / "bin").glob(f"*{old}*")), "a partial release was left"
            # A publish on the full disk: a setting changed.
            node.settings["log_level"] = "debug"
            node.write_settings()
            refused = await in_thread(node.lp, "ensure", check=False)
            said = (refused.stdout + refused.stderr).strip()
            assert refused.returncode != 0 and "No space left on device" in said, said
            assert live.read_text() == before and os.readlink(node.state / "current") == generation
            # The daemon's own run (as a Hero host or a retry makes one) fails the same way and
            # is retried by itself.
            try:
                await in_thread(node.rpc, "ensure")
                raise AssertionError("the daemon's ensure published on a full disk")
            except RuntimeError as e:
                assert "No space left on device" in str(e), e
            status = await in_thread(node.rpc, "status")
            p = status["media"]["processes"][0]
            assert p["pid"] == server and p["running"], p
            failed = install_failed
            gap_full, cut_full = crowd.worst_gap(), crowd.cut()
            freed = time.monotonic()
            filler.unlink()

            def recovered():
                s = node.rpc("status")
                return (s["provisioning"]["state"] == "ready" and s["version"]["installed"] == old
                        and "level: debug" in live.read_text() and s)

            s = await in_thread(node.wait_for, "the publish and the install completed", recovered, 120, 0.2)
            recovered_after = time.monotonic() - freed
            pending = s["media"]["processes"][0]["restart_reasons"]
            await asyncio.sleep(1.0)
            gap, cut, events = crowd.worst_gap(), crowd.cut(), crowd.events()
            await crowd.leave()
            return dict(said=said, failed=failed, gap_full=gap_full, cut_full=cut_full,
                        recovered=recovered_after, pending=pending, gap=gap, cut=cut, events=events)

        r = asyncio.run(scenario())
        new, _, _ = harness.wait_new_server(node, server, 60)
        figure("disk-full", f"state dir on a 192 MiB tmpfs filled under a call of 4: `ensure` refused "
                            f"({r['said'].splitlines()[0]!r}), the live set unchanged; pinning v{old} installed "
                            f"nothing (provisioning {r['failed']['state']}: {r['failed']['last_error']!r}); "
                            f"media untouched (pid {server}); worst gap in fresh audio while full "
                            f"{r['gap_full'] * 1000:.0f} ms, cut {len(r['cut_full'])}; space freed -> publish and "
                            f"install done by themselves after {r['recovered']:.2f} s, applied at idle after "
                            f"the call (pid {server} -> {new}); pending then {r['pending']}; cut {len(r['cut'])}; "
                            f"events {r['events'] or 'none'}")
        assert r["cut"] == [], r["cut"]
    finally:
        harness.stop_node(node)
        subprocess.run(["umount", "-l", str(node.state)], capture_output=True)


def test_address_gone(make_node, version):
    """The address the node advertises (LIVEKIT_NODE_IP, on an interface) is removed while a
    call runs: `status` alerts within seconds, with what to do, and no restart is made (none
    would heal it); the alert clears when the address is back."""
    ip = f"203.0.113.{1 + os.getpid() % 250}"
    _run("ip", "addr", "add", f"{ip}/32", "dev", "lo")
    try:
        node = make_node("n1")
        provision(node, version, node_ip=ip)
        server = boot(node)

        async def scenario():
            crowd = Crowd(silent=2)
            await crowd.join(node, "addr")
            await asyncio.sleep(3.0)  # seen on an interface first (looked for every 2 s)
            assert (await in_thread(node.media)).get("alert") is None
            removed = time.monotonic()
            await in_thread(_run, "ip", "addr", "del", f"{ip}/32", "dev", "lo")
            alert = await in_thread(node.wait_for, "the alert", lambda: (node.media() or {}).get("alert"), 30, 0.1)
            alerted = time.monotonic() - removed
            await asyncio.sleep(2.0)
            p = await in_thread(node.media)
            await in_thread(_run, "ip", "addr", "add", f"{ip}/32", "dev", "lo")
            back = time.monotonic()
            await in_thread(node.wait_for, "the alert cleared", lambda: (node.media() or {}).get("alert") is None, 30, 0.1)
            cleared = time.monotonic() - back
            gap, cut, events = crowd.worst_gap(), crowd.cut(), crowd.events()
            await crowd.leave()
            return dict(alert=alert, alerted=alerted, pid=p["pid"], cleared=cleared, gap=gap, cut=cut,
                        events=events)

        r = asyncio.run(scenario())
        figure("address-gone", f"{ip} removed from its interface under a call of 4: alerted after "
                               f"{r['alerted']:.2f} s ({r['alert'][:90]!r}...), no restart (pid {server} -> "
                               f"{r['pid']}); cleared {r['cleared']:.2f} s after it was back; worst gap in fresh "
                               f"audio {r['gap'] * 1000:.0f} ms (media over the loopback candidate), cut "
                               f"{len(r['cut'])}; events {r['events'] or 'none'}")
        assert r["pid"] == server
        assert ip in r["alert"] and "LIVEKIT_NODE_IP" in r["alert"], r["alert"]
    finally:
        subprocess.run(["ip", "addr", "del", f"{ip}/32", "dev", "lo"], capture_output=True)
