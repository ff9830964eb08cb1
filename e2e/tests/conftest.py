"""Fixtures: the binaries under test, the release mirror, a process reaper, node factories."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import harness


def _binary(var: str) -> Path | None:
    value = os.environ.get(var)
    return Path(value).resolve() if value else None


SERVER_BIN = _binary("LIVEKIT_SERVER_BIN")
SERVER_BIN_OLD = _binary("LIVEKIT_SERVER_BIN_OLD")


def pytest_collection_modifyitems(config, items):
    if SERVER_BIN is None:
        skip = pytest.mark.skip(reason="LIVEKIT_SERVER_BIN is not set: no real livekit-server to test against")
        for item in items:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def server_bin() -> Path:
    assert SERVER_BIN is not None
    assert SERVER_BIN.is_file(), f"LIVEKIT_SERVER_BIN={SERVER_BIN} is not a file"
    harness.require(harness.CLI, "the livekit-provision CLI")
    harness.require(harness.DAEMON, "livekit-provision-daemon")
    return SERVER_BIN


@pytest.fixture(scope="session")
def old_server_bin() -> Path:
    if SERVER_BIN_OLD is None:
        pytest.skip("LIVEKIT_SERVER_BIN_OLD is not set: the upgrade scenario needs an older release too")
    return SERVER_BIN_OLD


@pytest.fixture(scope="session")
def workdir():
    path = Path(tempfile.mkdtemp(prefix="lp-e2e-"))
    yield path
    if os.environ.get("E2E_KEEP") != "1":
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def mirror(workdir, server_bin):
    binaries = [server_bin] + ([SERVER_BIN_OLD] if SERVER_BIN_OLD else [])
    m = harness.Mirror(workdir / "mirror", binaries)
    yield m
    m.close()


@pytest.fixture(scope="session")
def version(server_bin) -> str:
    return harness.server_version(server_bin)


@pytest.fixture
def reaper():
    r = harness.Reaper()
    yield r
    r.cleanup()


@pytest.fixture
def make_node(request, workdir, mirror, reaper):
    """node(name, **kw) → a Node in a fresh state directory; every node is stopped at the end."""
    nodes: list[harness.Node] = []

    def make(name: str, **kw) -> harness.Node:
        kw.setdefault("release_url", mirror.http_url)
        root = workdir / f"{request.node.name}-{name}"
        node = harness.Node(root=root, reaper=reaper, **kw)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        harness.stop_node(node)


@pytest.fixture(scope="session")
def redis_server(workdir):
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not on PATH (the fleet scenario needs it)")
    port = harness.free_port()
    data = workdir / "redis"
    data.mkdir()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(data)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    reaper = harness.Reaper()
    reaper.track(proc.pid, "redis-server")
    try:
        import socket
        import time
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        reaper.cleanup()
        proc.wait(timeout=5)
