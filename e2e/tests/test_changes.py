"""Issue 21: no change the product makes cuts a call or locks anyone out. This file first
measures, on the real livekit-server, the facts the design rests on; the product's scenarios
follow.

`test_drain_endings`: livekit-server drains on its first SIGTERM (no new rooms, the rooms in
progress go on) and never ends that drain by itself while anyone is connected. What ends it
decides whether the participants come back: a second signal makes the server tell every
participant to leave (SERVER_SHUTDOWN), SIGKILL tells them nothing. Measured with a crowd of
LiveKit Python SDK participants and a fresh server started on the same config after each ending.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

from livekit import api

import harness
from harness import figure, log

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
