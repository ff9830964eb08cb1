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


def _redis(workdir: Path, name: str, port: int, args: list[str], ready):
    """Run redis-server on 127.0.0.1 with `args` until the session ends; wait for `ready()`."""
    import time
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not on PATH (the fleet scenarios need it)")
    data = workdir / name
    data.mkdir()
    proc = subprocess.Popen([exe, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(data), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    reaper = harness.Reaper()
    reaper.track(proc.pid, "redis-server")
    try:
        deadline = time.monotonic() + 20
        while not ready():
            assert proc.poll() is None, f"redis-server {' '.join(args)} exited {proc.returncode}"
            assert time.monotonic() < deadline, "redis-server did not come up"
            time.sleep(0.05)
        yield
    finally:
        reaper.cleanup()
        proc.wait(timeout=5)


def _answers_ping(port: int) -> bool:
    import socket
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_server(workdir):
    port = harness.free_port()
    for _ in _redis(workdir, "redis", port, ["--port", str(port)], lambda: _answers_ping(port)):
        yield f"127.0.0.1:{port}"


@pytest.fixture(scope="session")
def redis_tls_server(workdir):
    """redis-server on TLS only, requiring a client certificate: (address, ca, cert, key)."""
    import ssl
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not on PATH (the TLS fleet scenario makes its certificates with it)")
    pki = harness.make_pki(workdir / "redis-pki")
    port = harness.free_port()
    client = ssl.create_default_context(cafile=str(pki["ca"]))
    client.load_cert_chain(str(pki["client_cert"]), str(pki["client_key"]))

    def ready() -> bool:
        import socket
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as raw, \
                    client.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    args = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(pki["server_cert"]),
            "--tls-key-file", str(pki["server_key"]), "--tls-ca-cert-file", str(pki["ca"]),
            "--tls-auth-clients", "yes"]
    for _ in _redis(workdir, "redis-tls", port, args, ready):
        yield f"127.0.0.1:{port}", pki["ca"], pki["client_cert"], pki["client_key"]
