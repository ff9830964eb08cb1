"""Issue 21, the fleet: two nodes and one redis-server (the secret store of both, and LiveKit's
routing), a rolling upgrade 1.13.4 -> 1.13.5 while a call is on one node. The nodes change one at
a time (a lease in Redis): a node drains — its calls go on, new rooms go to the other node — and
restarts when its calls end; a room opened during the drain lands on the other node; the call is
never cut; both nodes end on the new release."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time

import harness
from harness import Call, figure, log
from test_scenarios import boot, in_thread, provision


def livekit_node_id(node: harness.Node) -> str | None:
    """The LiveKit node id of the livekit-server that started last on `node` (its log)."""
    text = (node.state / "logs" / "livekit-server.log").read_text(errors="replace")
    ids = re.findall(r'"nodeID": "(ND_[A-Za-z0-9]+)"', text)
    return ids[-1] if ids else None


def room_node(redis: str, room: str) -> str | None:
    """Which LiveKit node hosts `room` (livekit's `room_node_map` in the routing Redis)."""
    host, port = redis.rsplit(":", 1)
    out = subprocess.run(["redis-cli", "-h", host, "-p", port, "HGET", "room_node_map", room],
                         capture_output=True, text=True, timeout=10).stdout.strip()
    return out or None


def exe_version(node: harness.Node) -> str:
    """The binary livekit-server runs now; "" while none does. The pid file can name a process
    that has just exited (a restart in progress): that reads as none, not as an error (this race
    failed the scenario now and then)."""
    pid = node.server_pid_file()
    try:
        return os.readlink(f"/proc/{pid}/exe") if pid else ""
    except OSError:
        return ""


def test_a_fleet_rolls_an_upgrade_under_a_call(make_node, version, old_server_bin, redis_server):
    old = harness.server_version(old_server_bin)
    assert old != version
    store = f"redis://{redis_server}/0"
    n1 = make_node("n1", secrets=store)
    n2 = make_node("n2", secrets=store)
    provision(n1, old)
    n1.set_secret("LIVEKIT_REDIS_ADDRESS", redis_server)
    boot(n1)
    boot(n2)
    for n in (n1, n2):
        assert old in exe_version(n), exe_version(n)

    async def scenario():
        # Where LiveKit places the room decides which node hosts the call: the participants join
        # through the node that hosts it (through the other one, their signalling would be
        # relayed by a node that has no participant of its own — see E2E.md, run 9).
        probe = harness.Participant("probe")
        await probe.connect(n1.url, await in_thread(n1.token, "probe", "long"))
        host_id = room_node(redis_server, "long")
        await probe.disconnect()
        host, other = (n1, n2) if host_id == livekit_node_id(n1) else (n2, n1)
        log(f"room 'long' is on {'node 1' if host is n1 else 'node 2'} ({host_id})")
        call = Call()
        await call.start(host.url, await in_thread(host.token, "a", "long"),
                         host.url, await in_thread(host.token, "b", "long"))
        await call.wait_fresh(0)
        call.rx.measure_from_now()
        # The new release for the whole fleet, in the shared store.
        t_pin = time.monotonic()
        await in_thread(n1.set_secret, "LIVEKIT_VERSION", f"v{version}")
        for n in (n1, n2):
            await in_thread(n.rpc, "ensure", None, 300)
        # The other node has no call: it may go first. The call's node drains while the other
        # serves.
        order = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            s_host = (await in_thread(host.rpc, "status"))["changes"]
            s_other = (await in_thread(other.rpc, "status"))["changes"]
            d_host, d_other = s_host["draining"] is not None, s_other["draining"] is not None
            assert not (d_host and d_other), f"both nodes drain at once: {s_host} {s_other}"
            for name, d in (("other", d_other), ("call's node", d_host)):
                if d and name not in order:
                    order.append(name)
            if d_host:
                break
            await asyncio.sleep(0.2)
        assert "call's node" in order, f"the call's node never drained: {order}"
        drain_began = time.monotonic()
        log(f"drain order: {order}; the call's node drains {drain_began - t_pin:.1f} s after the pin")
        # A room opened during the drain, through the draining node's URL: LiveKit places it on
        # the other node.
        fresh = Call()
        await fresh.start(host.url, await in_thread(host.token, "c", "fresh"),
                          host.url, await in_thread(host.token, "d", "fresh"))
        await fresh.wait_fresh(0)
        placed = room_node(redis_server, "fresh")
        other_id = livekit_node_id(other)
        await fresh.close()
        # The call goes on through the drain.
        await asyncio.sleep(3.0)
        still = (await in_thread(host.media))["pid"]
        worst = call.rx.worst_fresh_gap
        events = call.connection_events()
        await call.close()
        t_end = time.monotonic()
        # The call ended: its node restarts on the new release, then both serve it.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if version in exe_version(n1) and version in exe_version(n2):
                break
            await asyncio.sleep(0.1)
        applied = time.monotonic() - t_end
        return order, placed, other_id, still, worst, events, applied

    order, placed, other_id, still, worst, events, applied = asyncio.run(scenario())
    n1.track_server()
    n2.track_server()
    figure("fleet-rolling-upgrade", f"{old} -> {version} on 2 nodes + 1 redis: drain order {order}; "
                                    f"a room opened during the call's node's drain landed on "
                                    f"{'the other node' if placed == other_id else placed}; the call: "
                                    f"participants cut {len(events)} (events {events or 'none'}), "
                                    f"worst gap in fresh audio {worst * 1000:.0f} ms; "
                                    f"call ended -> its node on {version} in {applied:.2f} s")
    assert events == [], f"the call was disturbed: {events}"
    assert worst < 0.100, f"worst fresh-audio gap {worst * 1000:.0f} ms"
    assert placed is not None and placed == other_id, f"room 'fresh' on {placed}, the other node is {other_id}"
    assert version in exe_version(n1) and version in exe_version(n2), (exe_version(n1), exe_version(n2))
    # How long the apply took after the call ended is a figure, not an assertion: livekit-server
    # looks for its last participant every 5 s while it drains, so 1-7 s is its normal range.
