"""The e2e harness: a release mirror of the given livekit-server, state directories driven by the
real CLI and daemon, process bookkeeping (everything started is stopped by pid), and WebRTC calls
between LiveKit's own Python SDK participants.

Nothing here builds or fetches livekit-server: the binary comes from LIVEKIT_SERVER_BIN.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import http.server
import io
import json
import os
import signal
import socket
import subprocess
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from livekit import api, rtc

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("E2E_TARGET_DIR", ROOT / "target" / "dist"))
CLI = TARGET / "livekit-provision"
DAEMON = TARGET / "livekit-provision-daemon"

# Audio: 48 kHz mono, 10 ms frames. Each 20 ms "symbol" is a pure tone whose frequency encodes a
# counter (mod SYMBOLS), so the receiver can tell fresh audio from the packet-loss concealment
# libwebrtc plays when media stop (frames keep arriving every 10 ms either way).
RATE = 48000
FRAME = 480
SYMBOL_FRAMES = 2
SYMBOLS = 32
BASE_HZ = 600.0
STEP_HZ = 200.0


def log(msg: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def figure(name: str, value: str) -> None:
    """One reported figure, on a line of its own (collected into E2E.md by hand)."""
    print(f"FIGURE {name}: {value}", flush=True)


def server_version(binary: Path) -> str:
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30,
                         env={"PATH": "/usr/bin:/bin"}).stdout
    return out.strip().split("version ", 1)[1].strip()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    # Free on every address, IPv4 and IPv6: livekit-server binds `:port` unless bind_addresses
    # narrows it, and a port taken on another address (a connection from 127.0.0.2, a socket
    # in TIME_WAIT) fails that bind with "address already in use".
    with socket.socket(socket.AF_INET6, kind) as s:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", 0))
        return s.getsockname()[1]


def free_ports(n: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < n:
        p = free_port()
        # The UDP mux port must be free too.
        with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("0.0.0.0", p))
            ports.add(p)
    return sorted(ports)


# ---------------------------------------------------------------- certificates


def make_pki(directory: Path) -> dict[str, Path]:
    """A private CA, a server certificate for 127.0.0.1 and a client certificate, made with the
    openssl command line (keys 0600)."""
    directory.mkdir(parents=True, exist_ok=True)
    d = {name: directory / name for name in
         ("ca", "ca_key", "server_cert", "server_key", "client_cert", "client_key")}

    def openssl(*args: str, ext: str | None = None) -> None:
        extra: list[str] = []
        if ext is not None:
            (directory / "ext.cnf").write_text(ext + "\n")
            extra = ["-extfile", str(directory / "ext.cnf")]
        subprocess.run(["openssl", *args, *extra], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=lp-e2e-ca",
            "-keyout", str(d["ca_key"]), "-out", str(d["ca"]))
    for who, subject, ext in [
        ("server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
        ("client", "/CN=lp-e2e-node", "extendedKeyUsage=clientAuth"),
    ]:
        key, cert, csr = d[f"{who}_key"], d[f"{who}_cert"], directory / f"{who}.csr"
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", str(key), "-out", str(csr))
        openssl("x509", "-req", "-in", str(csr), "-CA", str(d["ca"]), "-CAkey", str(d["ca_key"]),
                "-CAcreateserial", "-days", "2", "-out", str(cert), ext=ext)
    for path in d.values():
        path.chmod(0o600)
    return d


# ---------------------------------------------------------------- processes


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def group_members(pgid: int) -> list[int]:
    """Live processes of process group `pgid` other than its leader."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == pgid:
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            out.append(int(entry.name))
    return out


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return not alive(pid)


class Reaper:
    """Every process the suite starts or makes start, stopped by pid at the end (identity checked
    against its command line, so a recycled pid is never signalled). A process tracked with
    `group=True` leads its own process group (started with `start_new_session`): stopping it
    stops the whole group, children included."""

    def __init__(self) -> None:
        self.pids: dict[int, str] = {}
        self.groups: set[int] = set()
        self.popens: list[subprocess.Popen] = []

    def track(self, pid: int, marker: str, group: bool = False) -> None:
        self.pids[pid] = marker
        if group:
            self.groups.add(pid)

    def popen(self, args: list[str], marker: str, group: bool = False, **kw) -> subprocess.Popen:
        assert not group or kw.get("start_new_session"), "a group leader needs start_new_session"
        proc = subprocess.Popen(args, **kw)
        self.popens.append(proc)
        self.track(proc.pid, marker, group)
        return proc

    def stop(self, pid: int, marker: str, timeout: float = 10.0) -> None:
        if pid in self.groups:
            self._stop_group(pid, marker, timeout)
            return
        if not alive(pid) or marker not in cmdline(pid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not wait_gone(pid, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_gone(pid, 5)

    def _stop_group(self, pgid: int, marker: str, timeout: float) -> None:
        # The leader is identity-checked; once it is gone, a pgid is not reused while any member
        # of the group lives, so what is left in the group is still ours.
        if alive(pgid) and marker in cmdline(pgid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            wait_gone(pgid, timeout)
        elif alive(pgid):
            return  # a recycled pid: not ours
        if group_members(pgid) or alive(pgid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            wait_gone(pgid, 5)
            deadline = time.monotonic() + 5
            while group_members(pgid) and time.monotonic() < deadline:
                time.sleep(0.02)

    def _left(self, pid: int, marker: str) -> bool:
        return (alive(pid) and marker in cmdline(pid)) or (pid in self.groups and bool(group_members(pid)))

    def cleanup(self) -> None:
        for pid, marker in list(self.pids.items()):
            self.stop(pid, marker)
        for proc in self.popens:
            with contextlib.suppress(Exception):
                proc.wait(timeout=1)
        left = [pid for pid, marker in self.pids.items() if self._left(pid, marker)]
        if left:
            log(f"WARNING: still alive after cleanup: {left}")


# ---------------------------------------------------------------- release mirror


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # noqa: D102 - silence the access log
        pass


class Mirror:
    """Release-shaped artifacts for each given binary: v<ver>/livekit_<ver>_linux_amd64.tar.gz
    (livekit-server and LICENSE at top level) and v<ver>/checksums.txt (sha256sum format), served
    over loopback HTTP (port 0) and readable as file://."""

    def __init__(self, root: Path, binaries: list[Path]) -> None:
        self.root = root
        self.versions: dict[str, Path] = {}
        for binary in binaries:
            version = server_version(binary)
            self.versions[version] = binary
            self._pack(version, binary)
        handler = functools.partial(QuietHandler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.http_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.file_url = root.as_uri()

    def _pack(self, version: str, binary: Path) -> None:
        asset = f"livekit_{version}_linux_amd64.tar.gz"
        directory = self.root / f"v{version}"
        directory.mkdir(parents=True)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            tar.add(str(binary), arcname="livekit-server")
            text = b"Apache License 2.0 (placeholder LICENSE of an e2e mirror)\n"
            info = tarfile.TarInfo("LICENSE")
            info.size = len(text)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(text))
        data = buf.getvalue()
        (directory / asset).write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        (directory / "checksums.txt").write_text(f"{digest}  {asset}\n")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------- nodes


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LIVEKIT_", "REDIS_")) and k not in ("NODE_IP", "UDP_PORT")}
    env["RUST_LOG"] = env.get("E2E_RUST_LOG", "info")
    return env


@dataclass
class Node:
    """One state directory driven by the real CLI and daemon."""

    root: Path
    reaper: Reaper
    release_url: str
    secrets: str | None = None
    node_ip: str = "127.0.0.1"
    settings: dict = field(default_factory=dict)
    daemon: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.state = self.root / "state"
        self.state.mkdir(mode=0o700, exist_ok=True)
        port, tcp, udp = free_ports(3)
        self.port = port
        base = {
            "port": port,
            "rtc_tcp_port": tcp,
            "rtc_udp_port": udp,
            "rtc_enable_loopback_candidate": True,
            "backend_port": free_port(),
            "release_url": self.release_url,
        }
        base.update(self.settings)
        self.settings = base
        self.write_settings()

    def write_settings(self) -> None:
        lines = [f"{k}: {json.dumps(v)}" for k, v in self.settings.items()]  # JSON is YAML
        (self.state / "provision.yaml").write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        return f"ws://{self.node_ip}:{self.port}"

    @property
    def http(self) -> str:
        return f"http://{self.node_ip}:{self.port}"

    def base_args(self) -> list[str]:
        args = ["--state-dir", str(self.state)]
        if self.secrets:
            args += ["--secrets", self.secrets]
        return args

    def lp(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120):
        proc = subprocess.run([str(CLI), *self.base_args(), *args], input=input, text=True,
                              capture_output=True, env=clean_env(), timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"livekit-provision {' '.join(args)} exited {proc.returncode}:\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def set_secret(self, name: str, value: str) -> None:
        self.lp("secrets", "set", name, "-", input=value)

    def secret(self, name: str) -> str:
        return self.lp("secrets", "get", name).stdout.strip()

    def livekit_yaml(self) -> str:
        return (self.state / "livekit.yaml").read_text()

    def start_daemon(self) -> subprocess.Popen:
        logf = open(self.root / "daemon.log", "ab")  # noqa: SIM115 - closed with the process
        self.daemon = self.reaper.popen([str(DAEMON), *self.base_args()], marker=str(self.state),
                                        stdout=logf, stderr=subprocess.STDOUT, env=clean_env(),
                                        start_new_session=True)
        return self.daemon

    def rpc(self, method: str, params: dict | None = None, timeout: float = 30.0) -> dict:
        request = {"jsonrpc": "2.0", "id": 1, "method": method}
        if params is not None:
            request["params"] = params
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(timeout)
            s.connect(str(self.state / "run" / "rpc.sock"))
            s.sendall(json.dumps(request).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        reply = json.loads(buf)
        if "error" in reply:
            raise RuntimeError(f"rpc {method}: {reply['error']}")
        return reply["result"]

    def try_rpc(self, method: str, params: dict | None = None) -> dict | None:
        try:
            return self.rpc(method, params, timeout=5)
        except (OSError, RuntimeError, ValueError):
            return None

    def media(self, name: str = "livekit-server") -> dict | None:
        status = self.try_rpc("status")
        if not status:
            return None
        for p in status["media"]["processes"]:
            if p.get("name") == name:
                return p
        return None

    def wait_for(self, what: str, predicate, timeout: float = 120.0, interval: float = 0.05):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; "
                             f"daemon log tail:\n{self.log_tail()}")

    def wait_server_healthy(self, timeout: float = 120.0) -> int:
        def healthy():
            p = self.media()
            return p and p.get("running") and p.get("healthy") and p.get("pid")
        return self.wait_for("a healthy livekit-server", healthy, timeout)

    def server_pid_file(self) -> int | None:
        try:
            return json.loads((self.state / "run" / "livekit-server.pid").read_text())["pid"]
        except (OSError, ValueError, KeyError):
            return None

    def track_server(self) -> int | None:
        pid = self.server_pid_file()
        if pid:
            self.reaper.track(pid, str(self.state))
        return pid

    def log_tail(self, n: int = 30) -> str:
        out = []
        for f in (self.root / "daemon.log", self.state / "logs" / "livekit-server.log"):
            with contextlib.suppress(OSError):
                out.append(f"--- {f.name}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-n:]))
        return "\n".join(out)

    def stop_daemon(self, sig: int = signal.SIGTERM) -> None:
        if self.daemon and self.daemon.poll() is None:
            os.kill(self.daemon.pid, sig)
            self.daemon.wait(timeout=30)

    def token(self, identity: str, room: str) -> str:
        out = self.lp("--json", "token", "--identity", identity, "--room", room).stdout
        return json.loads(out)["token"]

    def daemon_token(self, identity: str, room: str) -> str:
        return self.rpc("token.create", {"identity": identity, "room": room})["token"]


def parse_time(text: str) -> float:
    """An RFC 3339 time of `status` (whole seconds, `Z`) as Unix seconds."""
    from datetime import datetime
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def wait_idle(node: Node, timeout: float = 30.0) -> dict:
    """Wait until the daemon's own reading of who is in a call (`status.occupancy`, asked of
    livekit-server every second) says nobody, in a reading taken after this call began; return
    that status. A participant that has just left may still be listed for a moment, and
    `restart` refuses while anyone is."""
    since = time.time()

    def idle():
        status = node.try_rpc("status")
        occupancy = (status or {}).get("occupancy") or {}
        fresh = occupancy.get("checked_at") and parse_time(occupancy["checked_at"]) > since
        return fresh and occupancy.get("participants") == 0 and status
    return node.wait_for("the daemon to see the node idle", idle, timeout, 0.05)


def wait_new_server(node: Node, old: int, timeout: float = 60.0) -> tuple[int, float, float]:
    """Until livekit-server `old` is gone and another one is healthy (polled every 20 ms):
    (new pid, when `old` was seen gone, when the new one was seen healthy), monotonic."""
    gone_at = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = time.monotonic()
        if gone_at is None and not alive(old):
            gone_at = now
        p = node.media() or {}
        if p.get("pid") not in (None, old) and p.get("running") and p.get("healthy"):
            node.track_server()
            return p["pid"], gone_at or now, now
        time.sleep(0.02)
    raise AssertionError(f"no new livekit-server within {timeout} s (old pid {old}); "
                         f"daemon log tail:\n{node.log_tail()}")


def stop_node(node: Node) -> None:
    """Stop a node's daemon and its media, by pid."""
    node.track_server()
    if node.daemon and node.daemon.poll() is None:
        node.reaper.stop(node.daemon.pid, str(node.state))
    pid = node.server_pid_file()
    if pid:
        node.reaper.stop(pid, str(node.state), timeout=15)


def tree_kill(pid: int) -> list[int]:
    """SIGKILL a process and every descendant (what a supervisor killing a service's tree does)."""
    victims = [pid, *descendants(pid)]
    for p in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    return victims


# ---------------------------------------------------------------- audio calls


def tone_frame(counter: int) -> rtc.AudioFrame:
    symbol = (counter // SYMBOL_FRAMES) % SYMBOLS
    freq = BASE_HZ + STEP_HZ * symbol
    n0 = counter * FRAME
    t = (np.arange(FRAME) + n0) / RATE
    samples = (0.5 * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    frame = rtc.AudioFrame.create(RATE, 1, FRAME)
    np.frombuffer(frame.data, dtype=np.int16)[:] = samples
    return frame


def decode_symbol(frame: rtc.AudioFrame) -> int | None:
    data = np.frombuffer(frame.data, dtype=np.int16).astype(np.float64)
    if frame.num_channels > 1:
        data = data[:: frame.num_channels]
    if len(data) < 64 or np.sqrt(np.mean(data ** 2)) < 500:
        return None
    spectrum = np.abs(np.fft.rfft(data * np.hanning(len(data))))
    freqs = np.fft.rfftfreq(len(data), 1.0 / frame.sample_rate)
    peak = freqs[int(np.argmax(spectrum))]
    symbol = round((peak - BASE_HZ) / STEP_HZ)
    if 0 <= symbol < SYMBOLS and abs(peak - (BASE_HZ + STEP_HZ * symbol)) < STEP_HZ / 2:
        return symbol
    return None


@dataclass
class Receiver:
    """What B hears: arrival times of frames, and of fresh audio (a new tone symbol)."""

    frames: int = 0
    first_frame_at: float | None = None
    first_fresh_at: float | None = None
    last_frame_at: float | None = None
    last_fresh_at: float | None = None
    last_symbol: int | None = None
    worst_frame_gap: float = 0.0
    worst_fresh_gap: float = 0.0
    worst_fresh_gap_end: float | None = None
    window_start: float | None = None
    # Each gap in fresh audio longer than 50 ms in the window: (when it ended, how long).
    long_gaps: list[tuple[float, float]] = field(default_factory=list)

    def on_frame(self, frame: rtc.AudioFrame) -> None:
        now = time.monotonic()
        self.frames += 1
        if self.first_frame_at is None:
            self.first_frame_at = now
        if self.last_frame_at is not None and self.window_start is not None:
            self.worst_frame_gap = max(self.worst_frame_gap, now - self.last_frame_at)
        self.last_frame_at = now
        symbol = decode_symbol(frame)
        if symbol is not None and symbol != self.last_symbol:
            if self.first_fresh_at is None:
                self.first_fresh_at = now
            if self.last_fresh_at is not None and self.window_start is not None:
                gap = now - self.last_fresh_at
                if gap > self.worst_fresh_gap:
                    self.worst_fresh_gap = gap
                    self.worst_fresh_gap_end = now
                if gap > 0.050:
                    self.long_gaps.append((now, gap))
            self.last_fresh_at = now
            self.last_symbol = symbol

    def measure_from_now(self) -> None:
        self.window_start = time.monotonic()
        self.worst_frame_gap = 0.0
        self.worst_fresh_gap = 0.0
        self.worst_fresh_gap_end = None
        self.long_gaps = []


async def hear(track, rx: Receiver) -> None:
    """Feed every frame of a subscribed audio track to `rx`."""
    stream = rtc.AudioStream(track, sample_rate=RATE, num_channels=1)
    async for ev in stream:
        rx.on_frame(ev.frame)


# livekit-server hands every client public STUN servers by default (Google's, Twilio's), and the
# SDK resolves and asks them; an empty list here means "use the server's". One STUN server on
# loopback's discard port instead: nothing answers, nothing leaves the host, and the loopback host
# candidates are all a call on one host needs.
LOOPBACK_ICE = rtc.RtcConfiguration(ice_servers=[rtc.IceServer(urls=["stun:127.0.0.1:9"])])


class Participant:
    def __init__(self, name: str) -> None:
        self.name = name
        self.room = rtc.Room()
        self.events: list[tuple[float, str]] = []
        for ev in ("disconnected", "reconnecting", "reconnected"):
            self.room.on(ev, functools.partial(self._event, ev))

    def _event(self, ev: str, *_args) -> None:
        self.events.append((time.monotonic(), ev))

    async def connect(self, url: str, token: str) -> None:
        await self.room.connect(url, token, rtc.RoomOptions(auto_subscribe=True, rtc_config=LOOPBACK_ICE))

    async def disconnect(self) -> None:
        try:
            await self.room.disconnect()
        except Exception as e:  # noqa: BLE001 - leaving is best effort; said, not raised
            log(f"{self.name}: disconnect raised {e!r}")


async def fresh_after(rx: "Receiver", after: float, timeout: float, who) -> float:
    """Wait until `rx` has heard fresh audio that arrived after `after` (monotonic); return when
    it did. `who()` describes the listener (and its connection events) for the failure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if rx.last_fresh_at is not None and rx.last_fresh_at > after:
            return rx.last_fresh_at
        await asyncio.sleep(0.005)
    raise AssertionError(f"no fresh audio heard within {timeout} s (frames {rx.frames}; {who()})")


class Call:
    """A publishes a tone; B subscribes and records what it hears."""

    def __init__(self) -> None:
        self.a = Participant("a")
        self.b = Participant("b")
        self.rx = Receiver()
        self.tasks: list[asyncio.Task] = []
        self.source = rtc.AudioSource(RATE, 1, queue_size_ms=100)
        self.track = rtc.LocalAudioTrack.create_audio_track("tone", self.source)
        self.sent = 0
        self.resubscribed = asyncio.Event()

        @self.b.room.on("track_subscribed")
        def _subscribed(track, _pub, _participant):
            if track.kind == rtc.TrackKind.KIND_AUDIO:
                self.tasks.append(asyncio.ensure_future(self._read(track)))
                self.resubscribed.set()

    async def _read(self, track) -> None:
        await hear(track, self.rx)

    async def _pump(self) -> None:
        while True:
            await self.source.capture_frame(tone_frame(self.sent))
            self.sent += 1

    async def start(self, url_a: str, token_a: str, url_b: str, token_b: str) -> None:
        await self.b.connect(url_b, token_b)
        await self.a.connect(url_a, token_a)
        await self.publish()

    async def publish(self) -> None:
        await self.a.room.local_participant.publish_track(
            self.track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
        if not any(t.get_name() == "_pump" for t in self.tasks if hasattr(t, "get_name")):
            pump = asyncio.ensure_future(self._pump())
            pump.set_name("_pump")
            self.tasks.append(pump)

    async def wait_fresh(self, after: float, timeout: float = 30.0) -> float:
        """Wait until B hears fresh audio that arrived after `after`; return when it did."""
        return await fresh_after(self.rx, after, timeout,
                                 lambda: f"B, events A {self.a.events} B {self.b.events}")

    def connection_events(self) -> list[str]:
        return [f"{p.name}:{ev}" for p in (self.a, self.b) for (_, ev) in p.events]

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await self.a.disconnect()
        await self.b.disconnect()


class Peer:
    """One participant that both publishes the tone and records what it hears: the Python side
    of a call whose other side is not ours (the browser)."""

    def __init__(self, name: str) -> None:
        self.participant = Participant(name)
        self.rx = Receiver()
        self.source = rtc.AudioSource(RATE, 1, queue_size_ms=100)
        self.track = rtc.LocalAudioTrack.create_audio_track("tone", self.source)
        self.sent = 0
        self.tasks: list[asyncio.Task] = []

        @self.participant.room.on("track_subscribed")
        def _subscribed(track, _pub, _participant):
            if track.kind == rtc.TrackKind.KIND_AUDIO:
                self.tasks.append(asyncio.ensure_future(hear(track, self.rx)))

    async def connect(self, url: str, token: str) -> None:
        await self.participant.connect(url, token)

    async def publish(self) -> None:
        await self.participant.room.local_participant.publish_track(
            self.track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
        self.tasks.append(asyncio.ensure_future(self._pump()))

    async def _pump(self) -> None:
        while True:
            await self.source.capture_frame(tone_frame(self.sent))
            self.sent += 1

    async def wait_fresh(self, after: float, timeout: float = 30.0) -> float:
        """Wait until fresh audio that arrived after `after` (monotonic) is heard; return when."""
        return await fresh_after(self.rx, after, timeout,
                                 lambda: f"{self.participant.name}, events {self.participant.events}")

    def connection_events(self) -> list[str]:
        return [f"{self.participant.name}:{ev}" for (_, ev) in self.participant.events]

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await self.participant.disconnect()


async def list_rooms(node: Node) -> list[str]:
    key = node.secret("LIVEKIT_API_KEY")
    secret = node.secret("LIVEKIT_API_SECRET")
    lk = api.LiveKitAPI(node.http, key, secret)
    try:
        rooms = await lk.room.list_rooms(api.ListRoomsRequest())
        return [r.name for r in rooms.rooms]
    finally:
        await lk.aclose()


def health(url: str, timeout: float = 2.0) -> str | None:
    import urllib.request
    try:
        with urllib.request.urlopen(url + "/", timeout=timeout) as r:
            return r.read().decode(errors="replace").strip()
    except OSError:
        return None


def require(path: Path, what: str) -> None:
    if not path.exists():
        raise AssertionError(f"{what} not found at {path} (run e2e/run.sh, which builds it)")

