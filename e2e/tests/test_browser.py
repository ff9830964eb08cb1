"""Issue 19, section 2: a real browser in the call. Headless Chromium runs LiveKit's JavaScript
SDK (`livekit-client`, e2e/browser) against a node the product provisioned; a Python SDK
participant is the other side. The browser's fake microphone plays the harness's symbol tone, so
each side measures *fresh* audio from the other: the Python side decodes the symbols, the
browser counts non-concealed samples of its receiver (getStats). Figures as `FIGURE` lines."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import browser
import harness
from harness import figure, log
from test_scenarios import ROUNDS, boot, in_thread, kill_daemon, provision

# Python's monotonic clock on the page's clock (epoch milliseconds), to compare the two sides'
# timestamps on one host.
EPOCH_OFFSET = time.time() - time.monotonic()


def epoch_ms(monotonic: float) -> float:
    return (monotonic + EPOCH_OFFSET) * 1000


@dataclass
class Kit:
    directory: Path
    wav: Path
    pages: browser.PageServer


@pytest.fixture
def kit(request, workdir):
    """What a browser scenario needs besides the node: Chromium and livekit-client present (or a
    skip naming what is missing), the fake microphone's WAV, the page server."""
    why = browser.missing()
    if why:
        if os.environ.get("E2E_BROWSER_REQUIRED") == "1":
            pytest.fail(f"E2E_BROWSER_REQUIRED=1 but {why}")
        log(f"SKIPPING the browser scenarios: {why}")
        pytest.skip(why)
    directory = workdir / f"{request.node.name}-browser"
    directory.mkdir()
    pages = browser.PageServer()
    yield Kit(directory, browser.tone_wav(directory / "tone.wav"), pages)
    pages.close()


@dataclass
class Joined:
    sdk: str
    join_s: float
    browser_to_python_s: float
    python_to_browser_s: float


async def wait_browser_fresh(chrome: browser.Chromium, timeout: float = 30.0) -> dict:
    """The page's receiving side once it has counted fresh audio."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rx = (await chrome.call("report"))["rx"]
        if rx and rx["firstFreshAt"] is not None:
            return rx
        await asyncio.sleep(0.05)
    raise AssertionError(f"the browser heard no fresh audio within {timeout} s: "
                         f"{await chrome.call('report')}")


async def join_call(node: harness.Node, chrome: browser.Chromium, peer: harness.Peer, kit: Kit,
                    room: str) -> Joined:
    """The Python participant joins (listening), the browser joins and publishes its fake
    microphone, then the Python participant publishes its tone; both hear fresh audio."""
    await peer.connect(node.url, await in_thread(node.token, "python", room))
    # The browser's token comes from the CLI, as an app server would mint it.
    web_token = await in_thread(node.token, "browser", room)
    await chrome.open(kit.pages.url)
    joined = await chrome.call("join", node.url, web_token, timeout=60)
    log(f"browser joined: {joined}")
    await peer.wait_fresh(0)
    heard_browser = peer.rx.first_fresh_at
    published_at = time.time() * 1000
    await peer.publish()
    rx = await wait_browser_fresh(chrome)
    return Joined(sdk=joined["sdkVersion"],
                  join_s=(joined["connectedAt"] - joined["startedAt"]) / 1000,
                  browser_to_python_s=(epoch_ms(heard_browser) - joined["startedAt"]) / 1000,
                  python_to_browser_s=(rx["firstFreshAt"] - published_at) / 1000)


def disruptions(report: dict, peer: harness.Peer) -> list[str]:
    """Every connection event either side saw (the page records only reconnecting,
    signalReconnecting, reconnected and disconnected)."""
    return [f"browser:{e['event']}{':' + e['detail'] if e['detail'] else ''}"
            for e in report["events"]] + peer.connection_events()


def test_browser_joins_and_talks(make_node, version, reaper, kit):
    node = make_node("n1")
    provision(node, version)
    boot(node)

    async def scenario():
        peer = harness.Peer("python")
        try:
            async with browser.Chromium(reaper, kit.directory, kit.wav) as chrome:
                call = await join_call(node, chrome, peer, kit, "browser")
                # A window of conversation: both sides keep hearing fresh audio, and the
                # browser hears sound, not silence.
                before = await chrome.call("measureFromNow")
                python_before = peer.rx.last_fresh_at
                await asyncio.sleep(3.0)
                report = await chrome.call("report")
                python_after = peer.rx.last_fresh_at
                events = disruptions(report, peer)
                await chrome.call("leave")
                return call, before, report, python_before, python_after, events
        finally:
            await peer.close()

    call, before, report, python_before, python_after, events = asyncio.run(scenario())
    rx = report["rx"]
    fresh_s = (rx["fresh"] - before["fresh"]) / harness.RATE
    window_s = (rx["at"] - before["at"]) / 1000
    figure("browser-call", f"livekit-client {call.sdk} in Chromium: join() to connected "
                           f"{call.join_s:.2f} s; browser -> Python first fresh audio "
                           f"{call.browser_to_python_s:.2f} s after join(); Python -> browser "
                           f"{call.python_to_browser_s:.2f} s after publish; over {window_s:.1f} s the "
                           f"browser counted {fresh_s:.2f} s of fresh samples, energy "
                           f"+{rx['windowEnergy']:.3f}; connection events {events or 'none'}")
    assert python_before is not None and python_after is not None and python_after > python_before + 2.0, \
        f"the Python participant stopped hearing the browser ({python_before} -> {python_after})"
    assert fresh_s > 0.8 * window_s, f"the browser heard {fresh_s:.2f} s of fresh audio in {window_s:.1f} s"
    assert rx["windowEnergy"] > 0, f"the browser heard silence: {rx}"
    assert events == [], events


def test_browser_survives_control_plane_kills(make_node, version, reaper, kit):
    node = make_node("n1")
    provision(node, version)
    server = boot(node)

    async def scenario():
        peer = harness.Peer("python")
        try:
            async with browser.Chromium(reaper, kit.directory, kit.wav) as chrome:
                return await kills_during_call(node, server, chrome, peer, kit)
        finally:
            await peer.close()

    kills, start, report, python_worst, events = asyncio.run(scenario())
    rx = report["rx"]
    browser_worst = max(rx["worstGap"], rx["openGap"] or float("inf")) / 1000
    window_s = (rx["at"] - start["at"]) / 1000
    fresh_s = (rx["fresh"] - start["fresh"]) / harness.RATE
    figure("browser-control-plane-kills",
           f"{kills} kills ({ROUNDS} each of SIGTERM, SIGKILL, process group, process tree) over "
           f"{window_s:.1f} s: worst gap in fresh audio browser -> Python {python_worst * 1000:.0f} ms, "
           f"Python -> browser {browser_worst * 1000:.0f} ms (getStats snapshots at most "
           f"{rx['worstSnapshot']:.0f} ms apart); connection events {events or 'none'}; "
           f"load {os.getloadavg()[0]:.2f}")
    assert kills == 4 * ROUNDS
    assert (node.media() or {}).get("pid") == server
    assert events == [], events
    assert fresh_s > 0.8 * window_s, f"the browser heard {fresh_s:.2f} s of fresh audio in {window_s:.1f} s"
    assert rx["windowEnergy"] > 0, f"the browser heard silence: {rx}"
    assert python_worst < 0.100, f"worst fresh-audio gap browser -> Python {python_worst * 1000:.0f} ms"
    assert browser_worst < 0.100, f"worst fresh-audio gap Python -> browser {browser_worst * 1000:.0f} ms"


async def kills_during_call(node: harness.Node, server: int, chrome: browser.Chromium,
                            peer: harness.Peer, kit: Kit):
    """The daemon killed ROUNDS times each way (as test_calls_survive_the_control_plane does) and
    restarted, while the browser and the Python participant talk."""
    await join_call(node, chrome, peer, kit, "browser-kills")
    await asyncio.sleep(1.0)
    start = await chrome.call("measureFromNow")
    peer.rx.measure_from_now()
    kills = 0
    for how in ("SIGTERM", "SIGKILL", "process-group", "process-tree"):
        for _ in range(ROUNDS):
            await in_thread(kill_daemon, node, how)
            kills += 1
            await asyncio.sleep(0.3)  # the call carries on with no control plane at all
            pid = await in_thread(boot, node)
            assert pid == server, f"livekit-server pid changed after {how}: {server} -> {pid}"
            await asyncio.sleep(0.3)
    await asyncio.sleep(0.5)
    report = await chrome.call("report")
    rx = peer.rx
    # A gap still open now counts too: audio that never came back is the worst gap.
    python_worst = max(rx.worst_fresh_gap, time.monotonic() - (rx.last_fresh_at or 0.0))
    events = disruptions(report, peer)
    await chrome.call("leave")
    return kills, start, report, python_worst, events
