"""Issue 21: no change the product makes cuts a call or locks anyone out. This file first
measures, on the real livekit-server, the facts the design rests on; the product's scenarios
follow: a call spanning an upgrade pin, a crowd spanning a key rotation with grace, a call
spanning a node-IP change (each applied by the daemon itself once the room is empty), and
`restart` refused under a call, then forced (drain, SIGKILL, everyone rejoins).

`test_drain_endings`: livekit-server drains on its first SIGTERM (no new rooms, the rooms in
progress go on) and never ends that drain by itself while anyone is connected. What ends it
decides whether the participants come back: a second signal makes the server tell every
participant to leave (SERVER_SHUTDOWN), SIGKILL tells them nothing. Measured with a crowd of
LiveKit Python SDK participants and a fresh server started on the same config after each ending.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from livekit import api

import harness
from harness import Call, figure, log
from test_scenarios import boot, provision

CROWD = 6


def hand_started(server_bin: Path, workdir: Path, reaper: harness.Reaper, name: str,
                 ports: tuple[int, int, int]) -> tuple[subprocess.Popen, str, tuple[str, str]]:
    """livekit-server by hand on `ports` (HTTP, RTC TCP, RTC UDP), until it answers `GET /`."""
    port, tcp, udp = ports
    key, secret = "APIdrainmeasure", "drainmeasuresecretdrainmeasuresecret012345"
    conf = workdir / f"{name}.yaml"
    conf.write_text(f"port: {port}\nrtc:\n  tcp_port: {tcp}\n  udp_port: {udp}\n"
                    f"  use_external_ip: false\n  node_ip: 127.0.0.1\n  enable_loopback_candidate: true\n"
                    f"keys:\n  {key}: {secret}\n")
    logf = open(workdir / f"{name}.log", "ab")  # noqa: SIM115
    proc = reaper.popen([str(server_bin), "--config", str(conf)], marker=str(conf), stdout=logf,
                        stderr=subprocess.STDOUT, env={"PATH": "/usr/bin:/bin"})
    deadline = time.monotonic() + 30
    while harness.health(f"http://127.0.0.1:{port}", 0.5) != "OK":
        assert proc.poll() is None, f"livekit-server exited {proc.returncode}"
        assert time.monotonic() < deadline, "livekit-server never answered GET /"
        time.sleep(0.01)
    # livekit-server 1.13.5 ignores a SIGTERM that arrives in the first 100 ms after it starts
    # serving (`Stop` returns before `running` is set): measured, see docs/DESIGN.md.
    time.sleep(0.5)
    return proc, f"ws://127.0.0.1:{port}", (key, secret)


async def crowd_rejoins(server_bin: Path, workdir: Path, reaper: harness.Reaper,
                        ending: signal.Signals) -> dict:
    """A crowd in one room; SIGTERM (drain); then `ending`; a new server on the same config;
    how many participants are back in the room, and what the SDK said."""
    ports = tuple(harness.free_ports(3))
    name = f"drain-{ending.name}"
    proc, url, (key, secret) = hand_started(server_bin, workdir, reaper, name, ports)

    def tok(identity: str) -> str:
        return (api.AccessToken(key, secret).with_identity(identity)
                .with_grants(api.VideoGrants(room_join=True, room="crowd")).to_jwt())

    crowd = [harness.Participant(f"p{i}") for i in range(CROWD)]
    for p in crowd:
        await p.connect(url, tok(p.name))
    try:
        proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(2.0)
        draining_alive = proc.poll() is None
        events_in_drain = [f"{p.name}:{e}" for p in crowd for (_, e) in p.events]
        t_end = time.monotonic()
        proc.send_signal(ending)
        await asyncio.to_thread(proc.wait, 30)
        exit_after = time.monotonic() - t_end
        proc2, _, _ = await asyncio.to_thread(hand_started, server_bin, workdir, reaper, name, ports)
        back: list[str] = []
        deadline = time.monotonic() + 20
        lk = api.LiveKitAPI(url.replace("ws://", "http://"), key, secret)
        try:
            while time.monotonic() < deadline:
                try:
                    listed = await lk.room.list_participants(api.ListParticipantsRequest(room="crowd"))
                    back = sorted(p.identity for p in listed.participants)
                except api.TwirpError:
                    back = []
                if len(back) == CROWD:
                    break
                await asyncio.sleep(0.25)
            back_after = time.monotonic() - t_end
        finally:
            await lk.aclose()
        states = {p.name: [e for (_, e) in p.events] for p in crowd}
        reaper.stop(proc2.pid, f"{name}.yaml")
    finally:
        for p in crowd:
            await p.disconnect()
    return {"draining_alive": draining_alive, "events_in_drain": events_in_drain,
            "exit_after": exit_after, "back": back, "back_after": back_after, "events": states}


def test_drain_endings(server_bin, workdir, reaper):
    results = {}
    for ending in (signal.SIGTERM, signal.SIGKILL):
        r = asyncio.run(crowd_rejoins(server_bin, workdir, reaper, ending))
        log(f"ending {ending.name}: {r}")
        results[ending.name] = r
        assert r["draining_alive"], "livekit-server ended its drain by itself with a crowd connected"
        assert r["events_in_drain"] == [], f"the drain itself disturbed the crowd: {r['events_in_drain']}"
    term, kill = results["SIGTERM"], results["SIGKILL"]
    figure("drain-endings", f"{CROWD} participants, SIGTERM then after 2 s: second SIGTERM -> server gone in "
                            f"{term['exit_after']:.2f} s, {len(term['back'])}/{CROWD} back on a new server "
                            f"within 20 s; SIGKILL -> gone in {kill['exit_after']:.2f} s, "
                            f"{len(kill['back'])}/{CROWD} back after {kill['back_after']:.2f} s")
    # The product ends a drain that reaches its deadline with SIGKILL, never a second SIGTERM:
    # this is the measurement that choice rests on.
    assert len(kill["back"]) == CROWD, f"after SIGKILL only {kill['back']} came back: {kill['events']}"
    assert len(term["back"]) < CROWD, (
        f"after a second SIGTERM all {CROWD} came back: livekit no longer sends a leave; "
        f"revisit the drain ending ({term['events']})")


# ---------------------------------------------------------------- the product's scenarios
#
# Each scenario prints, on its FIGURE line: participants cut (goal 0: a `disconnected` event
# before the test's own leave), the worst gap in fresh audio while the change waited (goal
# < 100 ms; the harness's symbol tone from A, decoded by B, as in test_scenarios.py; the worst
# gap between frames beside it: when both are the same, the test process itself stalled), and
# the time from the room emptying to the change applied (goal <= 5 s: the daemon looks once a
# second, livekit-server then drains an empty node at once and the next one starts). The room
# is empty when the server lists nobody in it (RoomService, asked by the test): that is what
# the daemon sees too. It is normally 10-20 ms after the last `disconnect()` returned, but the
# Python SDK sometimes closes a participant's signal connection without its leave getting
# through (livekit-server logs `error writing to websocket ... broken pipe`, then closes the
# participant with PEER_CONNECTION_DISCONNECTED about 21 s later); the figure shows that lag.

# How long a pending change must leave the call alone before the test lets the room empty.
HOLD = float(os.environ.get("E2E_CHANGES_HOLD", "10"))
APPLY_GOAL = 5.0
GAP_GOAL = 0.100


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


async def in_thread(fn, *args, **kw):
    return await asyncio.to_thread(fn, *args, **kw)


def signed_with(token: str) -> str:
    """The API key a token is signed with (its `iss`)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["iss"]


async def try_join(url: str, token: str, identity: str = "probe") -> tuple[bool, str]:
    """A participant joins with `token` and leaves: (joined, the refusal)."""
    p = harness.Participant(identity)
    try:
        await asyncio.wait_for(p.connect(url, token), 20)
        return True, ""
    except Exception as e:  # noqa: BLE001 - the SDK raises ConnectError; any failure is "refused"
        return False, str(e)
    finally:
        await p.disconnect()


class Joiner:
    """Newcomers joining from a process of their own (`joiner.py`), so that their joins do not
    stall the receiver this process measures fresh audio with."""

    def __init__(self, reaper: harness.Reaper) -> None:
        here = Path(__file__).resolve().parent
        self.proc = reaper.popen([sys.executable, str(here / "joiner.py")], marker="joiner.py",
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=here)

    def join(self, url: str, token: str, identity: str) -> tuple[bool, str]:
        self.proc.stdin.write(f"{url} {token} {identity}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"the joiner process exited ({self.proc.poll()})"
        result = json.loads(line)
        return result["joined"], result["error"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


class Crowd:
    """One room: a talking pair (A sends the harness's symbol tone, B decodes it, so gaps in
    fresh audio are seen) and `silent` more participants that only listen. Every token comes
    from the CLI (`livekit-provision token`)."""

    def __init__(self, silent: int) -> None:
        self.call = Call()
        self.silent = [harness.Participant(f"s{i}") for i in range(silent)]
        self.leaving_at: float | None = None

    @property
    def everyone(self) -> list[harness.Participant]:
        return [self.call.a, self.call.b, *self.silent]

    @property
    def identities(self) -> list[str]:
        return sorted(p.name for p in self.everyone)

    async def join(self, node: harness.Node, room: str) -> None:
        tokens = [await in_thread(node.token, p.name, room) for p in self.everyone]
        await self.call.start(node.url, tokens[0], node.url, tokens[1])
        for p, token in zip(self.silent, tokens[2:]):
            await p.connect(node.url, token)
        await self.call.wait_fresh(0)
        await asyncio.sleep(1.0)
        self.call.rx.measure_from_now()

    def events(self) -> list[str]:
        """Connection events before the test's own leave."""
        end = self.leaving_at or float("inf")
        return [f"{p.name}:{ev}" for p in self.everyone for (t, ev) in p.events if t < end]

    def cut(self) -> list[str]:
        """Who was disconnected before the test's own leave."""
        end = self.leaving_at or float("inf")
        return sorted({p.name for p in self.everyone for (t, ev) in p.events
                       if ev == "disconnected" and t < end})

    def worst_gap(self) -> float:
        """The worst gap in fresh audio since `measure_from_now`, a gap still open included."""
        rx = self.call.rx
        return max(rx.worst_fresh_gap, time.monotonic() - (rx.last_fresh_at or 0.0))

    async def wait_back(self, node: harness.Node, key: str, secret: str, room: str,
                        until: float) -> tuple[list[str], float]:
        """Until everyone is in `room` again (or `until`, monotonic): who is, and when."""
        back: list[str] = []
        while time.monotonic() < until:
            back = await room_identities(node, key, secret, room)
            if back == self.identities:
                break
            await asyncio.sleep(0.1)
        return back, time.monotonic()

    async def leave(self) -> float:
        """Everyone leaves; when the last `disconnect()` returned."""
        self.leaving_at = time.monotonic()
        for t in self.call.tasks:
            t.cancel()
        for p in self.everyone:
            await p.disconnect()
        return time.monotonic()


def server_pid(status: dict) -> int | None:
    for p in status["media"]["processes"]:
        if p.get("name") == "livekit-server":
            return p.get("pid")
    return None


def wait_pending(node: harness.Node, about: str, timeout: float = 10.0) -> dict:
    """Until `status.changes` says a change naming `about` waits (the daemon reads the reasons
    once a second): that status."""
    def pending():
        status = node.try_rpc("status") or {}
        changes = status.get("changes") or {}
        return changes.get("pending") and any(about in r for r in changes["reasons"]) and status
    return node.wait_for(f"a pending change about {about}", pending, timeout, 0.05)


def hold(node: harness.Node, pid: int, seconds: float, participants: int | None) -> list[dict]:
    """For `seconds`, every 0.5 s: the same livekit-server `pid`, a change pending and not
    draining, and (when given) `participants` in the daemon's reading. The statuses seen."""
    seen = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        status = node.rpc("status")
        changes = status["changes"]
        assert server_pid(status) == pid, f"livekit-server changed under the call: {status['media']}"
        assert changes["pending"] and changes["draining"] is None, changes
        if participants is not None:
            got = status["occupancy"]["participants"]
            assert got == participants, f"status says {got} participants, {participants} are in the call"
        seen.append(status)
        time.sleep(0.5)
    return seen


def wait_last_applied(node: harness.Node, after: float, timeout: float = 15.0) -> tuple[dict, float]:
    """Until `status.changes.last_applied` records an apply at or after `after` (wall clock,
    whole seconds): (it, when it was seen, monotonic)."""
    def applied():
        status = node.try_rpc("status") or {}
        last = (status.get("changes") or {}).get("last_applied")
        return last and harness.parse_time(last["at"]) >= int(after) and last
    last = node.wait_for("status.changes.last_applied", applied, timeout, 0.05)
    return last, time.monotonic()


async def room_identities(node: harness.Node, key: str, secret: str, room: str) -> list[str]:
    lk = api.LiveKitAPI(node.http, key, secret)
    try:
        listed = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
        return sorted(p.identity for p in listed.participants)
    except (api.TwirpError, OSError, aiohttp.ClientError):
        return []
    finally:
        await lk.aclose()


async def wait_room_empty(node: harness.Node, key: str, secret: str, room: str,
                          timeout: float = 60.0) -> float:
    """When the server first lists nobody in `room` (RoomService, polled every 50 ms; a server
    that no longer answers counts as empty: the daemon restarts it only at idle). A leave the
    server never got (a client's bug) shows here as the server's own timeout, about 20 s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not await room_identities(node, key, secret, room):
            return time.monotonic()
        await asyncio.sleep(0.05)
    raise AssertionError(f"the server still lists participants in {room} after {timeout} s")


# ---------------------------------------------------------------- 1. upgrade pin


def test_a_call_spans_an_upgrade_pin(make_node, version, old_server_bin):
    old = harness.server_version(old_server_bin)
    assert old != version
    node = make_node("n1")  # changes: apply: idle, the default
    provision(node, old)
    first = boot(node)
    assert old in os.readlink(f"/proc/{first}/exe")
    key, secret = node.secret("LIVEKIT_API_KEY"), node.secret("LIVEKIT_API_SECRET")
    load_before = load()

    async def scenario():
        crowd = Crowd(silent=2)
        await crowd.join(node, "upgrade")
        t_pin = time.monotonic()
        await in_thread(node.set_secret, "LIVEKIT_VERSION", f"v{version}")
        await in_thread(node.rpc, "ensure", None, 300)
        installed_in = time.monotonic() - t_pin
        gap_install = crowd.call.rx.worst_fresh_gap
        status = await in_thread(wait_pending, node, "binary")
        assert status["version"]["installed"] == version, status["version"]
        changes = status["changes"]
        log(f"pending under the call: {changes['reasons']}; applies {changes['applies']}")
        await in_thread(hold, node, first, HOLD, len(crowd.everyone))
        gap, events, cut = crowd.worst_gap(), crowd.events(), crowd.cut()
        frames = crowd.call.rx.worst_frame_gap
        wall_empty = time.time()
        t_left = await crowd.leave()
        t_empty = await wait_room_empty(node, key, secret, "upgrade")
        new, gone_at, serving_at = await in_thread(harness.wait_new_server, node, first)
        exe = os.readlink(f"/proc/{new}/exe")
        last, last_at = await in_thread(wait_last_applied, node, wall_empty)
        return dict(n=len(crowd.everyone), installed_in=installed_in, gap_install=gap_install,
                    gap=gap, frames=frames, events=events, cut=cut, changes=changes, new=new, exe=exe, last=last,
                    emptied=t_empty - t_left, gone=gone_at - t_empty, serving=serving_at - t_empty,
                    reported=last_at - t_empty)

    r = asyncio.run(scenario())
    figure("call-spans-upgrade-pin",
           f"{r['n']} participants (a talking pair + {r['n'] - 2} silent) on {old}; pin {version} "
           f"mid-call: installed in {r['installed_in']:.2f} s, restart pending, the same server "
           f"(pid {first}) for {HOLD:.0f} s more; participants cut {len(r['cut'])}; connection "
           f"events {r['events'] or 'none'}; worst gap in fresh audio {r['gap'] * 1000:.0f} ms "
           f"(between frames {r['frames'] * 1000:.0f} ms; during the install "
           f"{r['gap_install'] * 1000:.0f} ms); everyone left, the server listed nobody "
           f"{r['emptied']:.2f} s later; room empty -> old server gone "
           f"{r['gone']:.2f} s, {Path(r['exe']).name} serving {r['serving']:.2f} s (pid {r['new']}), "
           f"last_applied in status {r['reported']:.2f} s ({r['last']['reasons']}, participants "
           f"{r['last']['participants']}, ended_by_kill {r['last']['ended_by_kill']}); "
           f"load {load_before} -> {load()}")
    assert r["cut"] == [], r["cut"]
    assert r["events"] == [], r["events"]
    assert version in r["exe"], r["exe"]
    assert any("binary" in x for x in r["last"]["reasons"]), r["last"]
    assert r["last"]["participants"] == 0 and not r["last"]["ended_by_kill"], r["last"]
    assert r["serving"] <= APPLY_GOAL, f"applied {r['serving']:.2f} s after the room emptied"
    assert r["gap"] < GAP_GOAL, f"worst fresh-audio gap {r['gap'] * 1000:.0f} ms (load {load()})"


# ---------------------------------------------------------------- 2. rotation with grace


def test_a_crowd_spans_a_rotation_with_grace(make_node, version, reaper):
    node = make_node("n1")
    provision(node, version)
    first = boot(node)
    old_key, old_secret = node.secret("LIVEKIT_API_KEY"), node.secret("LIVEKIT_API_SECRET")
    grace = 20
    probe_for = 30.0
    load_before = load()

    async def scenario():
        crowd = Crowd(silent=4)
        await crowd.join(node, "crowd")
        joiner = await in_thread(Joiner, reaper)
        marks: dict[str, float] = {}
        # Stage, through the CLI, mid-call.
        await in_thread(node.lp, "secrets", "rotate", "--grace", f"{grace}s", "--yes")
        marks["staged"] = time.monotonic()
        status = await in_thread(wait_pending, node, "keys")
        keys = status["keys"]
        assert keys["phase"] == "staged" and keys["current_key"] == old_key, keys
        new_key = keys["next_key"]
        assert server_pid(status) == first, "staging touched the running server"
        log(f"staged {new_key}: pending {status['changes']['reasons']}; "
            f"applies {status['changes']['applies']}")
        # A token handed out now (signed with the current key) for someone who joins later.
        held = await in_thread(node.token, "holder", "crowd")
        assert signed_with(held) == old_key
        # Every second, a token from the CLI, and a newcomer joins the call with it.
        probes: list[tuple[float, bool, str, str]] = []
        i = 0
        while time.monotonic() - marks["staged"] < probe_for:
            due = marks["staged"] + i
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            token = await in_thread(node.token, f"probe{i}", "crowd")
            asked = time.monotonic() - marks["staged"]
            joined, why = await in_thread(joiner.join, node.url, token, f"probe{i}")
            probes.append((asked, joined, signed_with(token), why))
            status = await in_thread(node.rpc, "status")
            assert server_pid(status) == first, "livekit-server changed under the call"
            assert status["keys"]["phase"] == "staged", status["keys"]
            i += 1
        gap, events, cut = crowd.worst_gap(), crowd.events(), crowd.cut()
        frames = crowd.call.rx.worst_frame_gap
        # Where the longer gaps fell, against the newcomers' joins (asked at these times).
        log("fresh-audio gaps > 50 ms at (s after staging, ms): " + ", ".join(
            f"{t - marks['staged']:.1f}/{g * 1000:.0f}" for t, g in crowd.call.rx.long_gaps))
        log("newcomers asked to join at (s after staging): " + ", ".join(f"{p[0]:.1f}" for p in probes))
        await in_thread(joiner.close)
        marks["left"] = await crowd.leave()
        marks["empty"] = await wait_room_empty(node, old_key, old_secret, "crowd")
        # At idle: livekit-server restarts and loads the staged key; the daemon asks it whether
        # it accepts the key, then promotes it.
        loaded, _, marks["loaded"] = await in_thread(harness.wait_new_server, node, first)

        def promoted():
            s = node.try_rpc("status") or {}
            return (s.get("keys") or {}).get("phase") == "grace" and s["keys"]
        keys = await in_thread(node.wait_for, "the promotion", promoted, 30, 0.02)
        marks["promoted"] = time.monotonic()
        assert keys["current_key"] == new_key and keys["previous_key"] == old_key, keys
        until0 = harness.parse_time(keys["until"])
        marks["grace_until"] = time.monotonic() + (until0 - time.time())
        # The store says promoted; the signers' files follow with the daemon's next run (a few
        # tens of ms: meanwhile `token` still signs with the old key, which is accepted).
        def switched():
            token = node.token("newcomer", "crowd")
            return signed_with(token) == new_key and token
        new_token = await in_thread(node.wait_for, "the CLI signing with the new key", switched,
                                    10, 0.02)
        marks["switched"] = time.monotonic()
        # During the grace someone joins with the token handed out before the promotion and
        # stays: the daemon extends the grace while the node has participants.
        holder = harness.Participant("holder")
        await asyncio.wait_for(holder.connect(node.url, held), 20)
        marks["holder_joined"] = time.monotonic()
        new_joins_in_grace, why_new = await try_join(node.url, new_token, "newcomer")

        def extended():
            s = node.try_rpc("status") or {}
            k = s.get("keys") or {}
            return k.get("phase") == "grace" and harness.parse_time(k["until"]) > until0 and k
        keys = await in_thread(node.wait_for, "the grace extended", extended, 15, 0.05)
        marks["extended"] = time.monotonic()
        until1 = harness.parse_time(keys["until"])
        await holder.disconnect()
        marks["holder_left"] = time.monotonic()
        # The grace ends (wall clock -> monotonic); then, at idle, the old key leaves
        # livekit.yaml and livekit-server restarts without it.
        marks["grace_over"] = time.monotonic() + (until1 - time.time())
        retired, _, marks["retired"] = await in_thread(
            harness.wait_new_server, node, loaded, (until1 - time.time()) + 60)
        assert marks["retired"] >= marks["grace_over"], "the old key left before its grace ended"
        yaml_now = await in_thread(node.livekit_yaml)
        old_joins, why_old = await try_join(node.url, held, "holder")
        marks["refused"] = time.monotonic()
        after_token = await in_thread(node.token, "after", "crowd")
        new_joins, why_after = await try_join(node.url, after_token, "after")
        status = await in_thread(node.rpc, "status")
        return dict(n=len(crowd.everyone), gap=gap, frames=frames, events=events, cut=cut,
                    probes=probes, marks=marks, new_key=new_key, until0=until0, until1=until1,
                    new_joins_in_grace=(new_joins_in_grace, why_new),
                    yaml_has_old=old_key in yaml_now, old=(old_joins, why_old),
                    new=(new_joins, why_after), keys_after=status["keys"],
                    pids=(first, loaded, retired), last=status["changes"]["last_applied"])

    r = asyncio.run(scenario())
    m = r["marks"]
    probes = r["probes"]
    joined = [p for p in probes if p[1]]
    signers = sorted({p[2] for p in probes})

    def at(name: str) -> str:
        return f"{m[name] - m['staged']:.1f} s"
    figure("crowd-spans-rotation",
           f"{r['n']} participants (a talking pair + {r['n'] - 2} listeners); `secrets rotate "
           f"--grace {grace}s` mid-call; {len(joined)}/{len(probes)} newcomers (from a process of "
           f"their own) joined with a CLI token over {probe_for:.0f} s (signed with {signers}); "
           f"participants cut {len(r['cut'])}; "
           f"connection events {r['events'] or 'none'}; worst gap in fresh audio {r['gap'] * 1000:.0f} ms "
           f"(between frames {r['frames'] * 1000:.0f} ms); "
           f"everyone left, the server listed nobody {m['empty'] - m['left']:.2f} s later; "
           f"room empty -> staged key loaded {m['loaded'] - m['empty']:.2f} s, promoted "
           f"{m['promoted'] - m['empty']:.2f} s; old key's grace over -> restarted without it "
           f"{m['retired'] - max(m['grace_over'], m['holder_left']):.2f} s; load {load_before} -> {load()}")
    figure("crowd-spans-rotation timeline",
           f"staged at 0 s (pid {r['pids'][0]}); call ended at {at('empty')}; staged key loaded "
           f"at {at('loaded')} (pid {r['pids'][1]}); promoted at {at('promoted')} (grace until "
           f"{at('grace_until')}); an old-key "
           f"token joined at {at('holder_joined')} and the grace was extended at {at('extended')} "
           f"(by {r['until1'] - r['until0']:.0f} s) while it stayed; it left at {at('holder_left')}; "
           f"grace over at {at('grace_over')}; restarted without the old key at {at('retired')} "
           f"(pid {r['pids'][2]}); old key refused at {at('refused')} ({r['old'][1][:90]!r}); "
           f"a new-key token joins: {r['new'][0]}; the CLI signed with the new key "
           f"{(m['switched'] - m['promoted']) * 1000:.0f} ms after status said promoted")
    assert len(joined) == len(probes), [p for p in probes if not p[1]]
    assert signers == [old_key], f"staged-period tokens signed with {signers}, not the current key"
    assert r["cut"] == [], r["cut"]
    assert r["events"] == [], r["events"]
    assert m["loaded"] - m["empty"] <= APPLY_GOAL, (
        f"staged key loaded {m['loaded'] - m['empty']:.2f} s after the room emptied")
    assert r["new_joins_in_grace"][0], r["new_joins_in_grace"]
    assert r["until1"] > r["until0"]
    assert not r["yaml_has_old"], "the old key is still in livekit.yaml"
    # + 1 s: the grace's end is known to the whole second.
    assert m["retired"] - max(m["grace_over"], m["holder_left"]) <= APPLY_GOAL + 1, (
        "the old key's retirement waited")
    assert not r["old"][0] and "401" in r["old"][1], r["old"]
    assert r["new"][0], r["new"]
    keys_after = r["keys_after"]
    assert keys_after["phase"] == "stable" and keys_after["current_key"] == r["new_key"], keys_after
    assert r["gap"] < GAP_GOAL, f"worst fresh-audio gap {r['gap'] * 1000:.0f} ms (load {load()})"


# ---------------------------------------------------------------- 3. node IP


def test_a_call_spans_a_node_ip_change(make_node, version):
    node = make_node("n1")
    provision(node, version)  # node IP 127.0.0.1
    first = boot(node)
    key, secret = node.secret("LIVEKIT_API_KEY"), node.secret("LIVEKIT_API_SECRET")
    load_before = load()

    async def scenario():
        crowd = Crowd(silent=2)
        await crowd.join(node, "ip")
        await in_thread(node.set_secret, "LIVEKIT_NODE_IP", "127.0.0.2")
        await in_thread(node.rpc, "ensure")
        status = await in_thread(wait_pending, node, "node_ip")
        changes = status["changes"]
        log(f"pending under the call: {changes['reasons']}; applies {changes['applies']}")
        await in_thread(hold, node, first, HOLD, len(crowd.everyone))
        gap, events, cut = crowd.worst_gap(), crowd.events(), crowd.cut()
        frames = crowd.call.rx.worst_frame_gap
        wall_empty = time.time()
        t_left = await crowd.leave()
        t_empty = await wait_room_empty(node, key, secret, "ip")
        new, gone_at, serving_at = await in_thread(harness.wait_new_server, node, first)
        last, _ = await in_thread(wait_last_applied, node, wall_empty)
        node.node_ip = "127.0.0.2"
        c = Call()
        t_call = time.monotonic()
        await c.start(node.url, await in_thread(node.token, "a2", "ip2"),
                      node.url, await in_thread(node.token, "b2", "ip2"))
        heard = await c.wait_fresh(0)
        await c.close()
        return dict(n=len(crowd.everyone), gap=gap, frames=frames, events=events, cut=cut, changes=changes,
                    new=new, last=last, emptied=t_empty - t_left, gone=gone_at - t_empty,
                    serving=serving_at - t_empty, heard=heard - t_call)

    r = asyncio.run(scenario())
    figure("call-spans-node-ip-change",
           f"{r['n']} participants on ws://127.0.0.1; LIVEKIT_NODE_IP -> 127.0.0.2 mid-call: pending "
           f"{r['changes']['reasons']}, the same server (pid {first}) for {HOLD:.0f} s; participants "
           f"cut {len(r['cut'])}; connection events {r['events'] or 'none'}; worst gap in fresh audio "
           f"{r['gap'] * 1000:.0f} ms (between frames {r['frames'] * 1000:.0f} ms); everyone left, "
           f"the server listed nobody {r['emptied']:.2f} s "
           f"later; room empty -> old server gone {r['gone']:.2f} s, new one "
           f"serving {r['serving']:.2f} s (pid {r['new']}); a new call on ws://127.0.0.2 heard "
           f"audio {r['heard']:.2f} s after joining; load {load_before} -> {load()}")
    assert r["cut"] == [] and r["events"] == [], (r["cut"], r["events"])
    assert any("node_ip" in x for x in r["last"]["reasons"]), r["last"]
    assert r["serving"] <= APPLY_GOAL, f"applied {r['serving']:.2f} s after the room emptied"
    assert r["gap"] < GAP_GOAL, f"worst fresh-audio gap {r['gap'] * 1000:.0f} ms (load {load()})"


# ---------------------------------------------------------------- 4. restart, refused and forced


def test_restart_refuses_with_a_call_and_force_rejoins(make_node, version):
    node = make_node("n1")
    provision(node, version)
    first = boot(node)
    key, secret = node.secret("LIVEKIT_API_KEY"), node.secret("LIVEKIT_API_SECRET")
    drain = 3
    load_before = load()

    async def scenario():
        crowd = Crowd(silent=4)
        await crowd.join(node, "force")
        n = len(crowd.everyone)
        refused = await in_thread(node.lp, "restart", check=False)
        said = (refused.stderr + refused.stdout).strip()
        log(f"`restart` with {n} in a call: exit {refused.returncode}: {said}")
        assert refused.returncode != 0, said
        assert f"{n} participants" in said, said
        await asyncio.sleep(1.0)
        assert (await in_thread(node.media))["pid"] == first, "a refused restart touched the server"
        t_force = time.monotonic()
        forced = await in_thread(node.lp, "restart", "--force", "--grace", f"{drain}s")
        log(f"`restart --force --grace {drain}s`: {(forced.stderr + forced.stdout).strip()}")
        status = await in_thread(node.rpc, "status")
        draining = status["changes"]["draining"]
        assert draining and draining["forced"], status["changes"]
        assert server_pid(status) == first
        # The drain: the calls go on until livekit-server is ended (SIGKILL) at its end.
        while harness.alive(first):
            assert time.monotonic() - t_force < drain + 10, "the drain did not end"
            await asyncio.sleep(0.01)
        killed = time.monotonic()
        gap_drain, events_drain = crowd.call.rx.worst_fresh_gap, crowd.events()
        new, _, serving = await in_thread(harness.wait_new_server, node, first)
        back, all_back = await crowd.wait_back(node, key, secret, "force", killed + 30)
        # Fresh audio through the new server (B's jitter buffer still plays ~50 ms of the old
        # one's after the kill: only audio after the new server serves counts).
        heard = await crowd.call.wait_fresh(serving, timeout=30)
        await asyncio.sleep(1.0)
        gap_kill = crowd.call.rx.worst_fresh_gap
        heard = crowd.call.rx.worst_fresh_gap_end or heard  # the end of the kill's gap
        states = {p.name: [e for (_, e) in p.events] for p in crowd.everyone}
        cut = crowd.cut()
        status = await in_thread(node.rpc, "status")
        await crowd.leave()
        return dict(n=n, said=said, code=refused.returncode, drained=killed - t_force,
                    gap_drain=gap_drain, events_drain=events_drain, new=new,
                    serving=serving - killed, back=back, all_back=all_back - killed,
                    heard=heard - killed, audio_gap=gap_kill, states=states, cut=cut,
                    last=status["changes"]["last_applied"], identities=crowd.identities)

    r = asyncio.run(scenario())
    figure("restart-refused-then-forced",
           f"{r['n']} participants; `restart`: exit {r['code']}, {r['said'].splitlines()[0]!r}; "
           f"`restart --force --grace {drain}s`: the call went on for {r['drained']:.2f} s of drain "
           f"(worst gap in fresh audio {r['gap_drain'] * 1000:.0f} ms, connection events "
           f"{r['events_drain'] or 'none'}), then SIGKILL; new server serving {r['serving']:.2f} s "
           f"later (pid {first} -> {r['new']}); {len(r['back'])}/{r['n']} back in the room by "
           f"themselves after {r['all_back']:.2f} s; B heard A again {r['heard']:.2f} s after the kill "
           f"(worst gap in fresh audio {r['audio_gap']:.2f} s); participants cut for good {len(r['cut'])}; events "
           f"{r['states']}; last_applied {r['last']}; load {load_before} -> {load()}")
    assert r["events_drain"] == [], r["events_drain"]
    assert r["gap_drain"] < GAP_GOAL, f"worst fresh-audio gap during the drain {r['gap_drain'] * 1000:.0f} ms"
    assert r["back"] == r["identities"], f"back: {r['back']}; events {r['states']}"
    assert r["last"] and r["last"]["ended_by_kill"] and r["last"]["participants"] == r["n"], r["last"]
