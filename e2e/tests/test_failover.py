"""Issue 22, item 5: Redis failover under a live fleet call.

A Redis master, one replica (or two) and three sentinels (down-after-milliseconds 1000,
failover-timeout 3000), all of this test alone, append-only, started and stopped by pid. Two
nodes route LiveKit through that Sentinel set (`redis_sentinel_master_name` +
`redis_sentinel_addresses` in provision.yaml) and keep their secrets in it
(`redis+sentinel://…`, the store's default `replicas=1`). A call runs across the nodes (A on
node 1, B on node 2, two silent listeners, one on each); the master is killed (SIGKILL) mid-call.
Measured: when the sentinels promoted a replica, what B hears (the worst gap in fresh audio),
who was cut, what each node's `status` says as it goes (`store.reachable`, `provisioning.state`,
`media.processes[].condition`, the other node in `changes.fleet`: the fleet's reports, kept in
the same Redis), whether a new room opened across the nodes is routed through the new master,
and, once the old master is back (started again, as its supervisor would, and turned into a
replica by the sentinels), when everything converges. Asserted only what the product controls,
and what the real server does every run (nobody cut): livekit-server is never restarted (same
pids), nothing is minted or rotated (same API key), the store follows the new master and
converges.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import threading
import time

import pytest
from livekit import api

import harness
from harness import figure, log
from test_changes import Crowd, in_thread, load
from test_scenarios import boot, provision

MASTER = "lkfail"
# How long the old master stays away (the call running on the new one) before it is back.
AWAY = float(os.environ.get("E2E_FAILOVER_AWAY", "20"))


def resp(port: int, *args: str, timeout: float = 1.0):
    """One command to 127.0.0.1:`port` (RESP): the reply, decoded (errors as `Exception`), or
    None when nothing answers."""
    out = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(out)
            f = s.makefile("rb")
            return _read(f)
    except OSError:
        return None


def _read(f):
    line = f.readline()
    if not line:
        raise OSError("closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        return Exception(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read(f) for _ in range(n)]
    raise OSError(f"unexpected reply {line!r}")


class SentinelSet:
    """A master, one replica and three sentinels on free loopback ports, append-only, each
    process tracked by pid in the test's reaper (its marker: `127.0.0.1:<port>`, which Redis
    puts in its process title)."""

    def __init__(self, workdir, reaper: harness.Reaper, name: str, replicas: int) -> None:
        self.dir = workdir / name
        self.dir.mkdir()
        self.reaper = reaper
        self.master_port = harness.free_port()
        self.replica_ports = [harness.free_port() for _ in range(replicas)]
        self.sentinel_ports = [harness.free_port() for _ in range(3)]
        self.procs: dict[int, subprocess.Popen] = {}
        self.start_redis(self.master_port)
        for port in self.replica_ports:
            self.start_redis(port, replica_of=self.master_port)
            self.wait(f"the replica on {port} in sync", lambda port=port: self.following(port))
        for port in self.sentinel_ports:
            self.start_sentinel(port)
        for port in self.sentinel_ports:
            self.wait(f"sentinel {port} to know the replicas and the other two", lambda port=port: (
                len(resp(port, "SENTINEL", "replicas", MASTER) or []) == replicas
                and len(resp(port, "SENTINEL", "sentinels", MASTER) or []) == 2))

    def following(self, port: int) -> bool:
        """`port` is a replica whose link to its master is up."""
        return self.role(port) == "slave" and "master_link_status:up" in str(resp(port, "INFO", "replication"))

    def wait(self, what: str, predicate, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            for port, proc in self.procs.items():
                assert proc.poll() is None, f"redis on {port} exited {proc.returncode} (see {self.dir})"
            assert time.monotonic() < deadline, f"timed out waiting for {what} (see {self.dir})"
            time.sleep(0.05)

    def start_redis(self, port: int, replica_of: int | None = None) -> None:
        data = self.dir / f"redis-{port}"
        data.mkdir(exist_ok=True)
        args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes", "--appendfsync", "always", "--dir", str(data),
                "--logfile", str(data / "redis.log")]
        if replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(replica_of)]
        self.procs[port] = self.reaper.popen(args, marker=f"127.0.0.1:{port}",
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait(f"redis-server on {port}", lambda: resp(port, "PING") == "PONG")

    def start_sentinel(self, port: int) -> None:
        data = self.dir / f"sentinel-{port}"
        data.mkdir()
        conf = data / "sentinel.conf"
        conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {data}\ndaemonize no\n"
                        f"logfile {data}/sentinel.log\n"
                        f"sentinel monitor {MASTER} 127.0.0.1 {self.master_port} 2\n"
                        f"sentinel down-after-milliseconds {MASTER} 1000\n"
                        f"sentinel failover-timeout {MASTER} 3000\n")
        self.procs[port] = self.reaper.popen(["redis-sentinel", str(conf)], marker=f"127.0.0.1:{port}",
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait(f"redis-sentinel on {port}", lambda: resp(port, "PING") == "PONG")

    def kill_master(self) -> None:
        proc = self.procs.pop(self.master_port)
        assert f"127.0.0.1:{self.master_port}" in harness.cmdline(proc.pid), harness.cmdline(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def named_master(self, sentinel: int) -> int | None:
        reply = resp(sentinel, "SENTINEL", "get-master-addr-by-name", MASTER, timeout=0.5)
        return int(reply[1]) if isinstance(reply, list) and len(reply) == 2 else None

    def role(self, port: int) -> str | None:
        reply = resp(port, "ROLE", timeout=0.5)
        return reply[0] if isinstance(reply, list) and reply else None

    @property
    def store_url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{MASTER}/0"

    @property
    def sentinel_addresses(self) -> list[str]:
        return [f"127.0.0.1:{p}" for p in self.sentinel_ports]


class Watch(threading.Thread):
    """Every 0.1 s: what each sentinel names as the master, and each node's `status`
    (livekit-server's pid and condition, `store.reachable`, `provisioning.state`); every change
    kept with its time since `t0` (monotonic)."""

    def __init__(self, sentinels: SentinelSet, nodes: dict[str, harness.Node]) -> None:
        super().__init__(daemon=True)
        self.sentinels = sentinels
        self.nodes = nodes
        self.t0 = time.monotonic()
        self.stop = threading.Event()
        self.named: dict[int, list[tuple[float, int | None]]] = {p: [] for p in sentinels.sentinel_ports}
        self.timeline: dict[str, list[tuple[float, tuple]]] = {n: [] for n in nodes}
        self.store_errors: dict[str, list[tuple[float, str]]] = {n: [] for n in nodes}
        self.pids: dict[str, set] = {n: set() for n in nodes}
        # Every `store.last_ok` seen (RFC 3339, whole seconds): a read the store got through.
        self.last_ok: dict[str, set] = {n: set() for n in nodes}

    def since(self) -> float:
        return round(time.monotonic() - self.t0, 2)

    def run(self) -> None:
        while not self.stop.is_set():
            for port, seen in self.named.items():
                named = self.sentinels.named_master(port)
                if not seen or seen[-1][1] != named:
                    seen.append((self.since(), named))
            for name, node in self.nodes.items():
                status = node.try_rpc("status")
                if status is None:
                    row = ("no answer",)
                else:
                    p = next(p for p in status["media"]["processes"] if p["name"] == "livekit-server")
                    store = status.get("store") or {}
                    fleet = (status.get("changes") or {}).get("fleet")
                    row = (p.get("pid"), p.get("condition"), store.get("reachable"),
                           status["provisioning"]["state"], None if fleet is None else len(fleet))
                    self.pids[name].add(p.get("pid"))
                    if store.get("last_ok"):
                        self.last_ok[name].add(store["last_ok"])
                    error = store.get("error")
                    errors = self.store_errors[name]
                    if error and (not errors or errors[-1][1] != error):
                        errors.append((self.since(), error))
                line = self.timeline[name]
                if not line or line[-1][1] != row:
                    line.append((self.since(), row))
            self.stop.wait(0.1)

    def promoted(self, old: int) -> list[float | None]:
        """For each sentinel, when it first named another master than `old` (seconds since t0)."""
        return [next((t for t, p in seen if p not in (old, None)), None) for seen in self.named.values()]


class CrossCrowd(Crowd):
    """Crowd's call across two nodes: A and s0 on node 1, B and s1 on node 2."""

    async def join_across(self, n1: harness.Node, n2: harness.Node, room: str) -> None:
        tokens = [await in_thread(n.token, p.name, room)
                  for n, p in zip((n1, n2, n1, n2), self.everyone)]
        await self.call.start(n1.url, tokens[0], n2.url, tokens[1])
        for (n, p), token in zip(zip((n1, n2), self.silent), tokens[2:]):
            await p.connect(n.url, token)
        await self.call.wait_fresh(0)
        await asyncio.sleep(1.0)
        self.call.rx.measure_from_now()


def minted(key: str, secret: str, identity: str, room: str) -> str:
    """A token signed in the test with the fleet's key, as an application's backend does (the
    CLI reads the store, which may be refusing reads during the failover)."""
    return (api.AccessToken(key, secret).with_identity(identity)
            .with_grants(api.VideoGrants(room_join=True, room=room)).to_jwt())


async def new_call_across(n1: harness.Node, n2: harness.Node, key: str, secret: str, room: str):
    """A new room opened across the nodes: the seconds until B hears A, or why not."""
    c = harness.Call()
    t = time.monotonic()
    try:
        await asyncio.wait_for(c.start(n1.url, minted(key, secret, "na", room),
                                       n2.url, minted(key, secret, "nb", room)), 30)
        await c.wait_fresh(t, timeout=30)
        return round(time.monotonic() - t, 2), c.connection_events()
    except Exception as e:  # noqa: BLE001 - LiveKit's routing, measured and reported
        return f"failed after {time.monotonic() - t:.1f} s: {e!r}", c.connection_events()
    finally:
        await c.close()


def converged(node: harness.Node):
    status = node.try_rpc("status")
    if not status:
        return None
    p = next(p for p in status["media"]["processes"] if p["name"] == "livekit-server")
    return ((status.get("store") or {}).get("reachable") and status["provisioning"]["state"] == "ready"
            and p["condition"] == "serving" and status)


@pytest.mark.parametrize("replicas", [1, 2], ids=["r1", "r2"])
def test_sentinel_failover(make_node, version, workdir, reaper, replicas):
    """With one replica (the brief's layout) the new master has none left, and the store's
    `replicas=1` refuses to read from it until the old master is back as a replica; with two,
    the new master keeps one and the store reads from it at once."""
    rs = SentinelSet(workdir, reaper, f"failover-redis-{replicas}", replicas)
    routing = {"redis_sentinel_master_name": MASTER, "redis_sentinel_addresses": rs.sentinel_addresses}
    n1 = make_node("n1", secrets=rs.store_url, settings=routing)
    n2 = make_node("n2", secrets=rs.store_url, settings=routing)
    provision(n1, version)
    servers = {"n1": boot(n1), "n2": boot(n2)}
    key, secret = n1.secret("LIVEKIT_API_KEY"), n1.secret("LIVEKIT_API_SECRET")
    assert n2.secret("LIVEKIT_API_KEY") == key
    for n in (n1, n2):
        text = n.livekit_yaml()
        assert f'sentinel_master_name: "{MASTER}"' in text, text
    load_before = load()
    watch = Watch(rs, {"n1": n1, "n2": n2})
    killed_wall: list[float] = []
    back_wall: list[float] = []

    async def scenario():
        crowd = CrossCrowd(silent=2)
        await crowd.join_across(n1, n2, "failover")
        watch.t0 = time.monotonic() + 1.0
        watch.start()
        await asyncio.sleep(1.0)
        killed = time.monotonic()
        killed_wall.append(time.time())
        await in_thread(rs.kill_master)
        # The sentinels promote the replica; the call runs on.
        while rs.named_master(rs.sentinel_ports[0]) not in rs.replica_ports and time.monotonic() - killed < 30:
            await asyncio.sleep(0.05)
        await asyncio.sleep(3.0)
        opened = time.monotonic() - killed
        after = await new_call_across(n1, n2, key, secret, "after-failover")
        while time.monotonic() - killed < AWAY:
            await asyncio.sleep(0.2)
        gap_away, cut_away, events_away = crowd.worst_gap(), crowd.cut(), crowd.events()
        # The old master comes back (its supervisor starts it again, same port and data); the
        # sentinels make it a replica of the new master.
        back = time.monotonic()
        back_wall.append(time.time())
        await in_thread(rs.start_redis, rs.master_port)
        await in_thread(rs.wait, "the old master to follow the new one", lambda: rs.following(rs.master_port), 60)
        replica_after = time.monotonic() - back
        statuses = {}
        for name, n in (("n1", n1), ("n2", n2)):
            statuses[name] = await in_thread(n.wait_for, f"{name} converged", lambda n=n: converged(n), 90, 0.1)
        converged_after = time.monotonic() - back
        await asyncio.sleep(2.0)
        gap, cut, events = crowd.worst_gap(), crowd.cut(), crowd.events()
        # Everyone still hears: fresh audio after all of it.
        heard = await crowd.call.wait_fresh(time.monotonic() - 0.5, timeout=10)
        await crowd.leave()
        return dict(opened=opened, after=after, gap_away=gap_away, cut_away=cut_away,
                    events_away=events_away, replica_after=replica_after, converged=converged_after,
                    statuses=statuses, gap=gap, cut=cut, events=events, heard=heard,
                    long_gaps=[(round(t - killed, 2), round(g, 3)) for t, g in crowd.call.rx.long_gaps])

    try:
        r = asyncio.run(scenario())
    finally:
        watch.stop.set()
        watch.join(timeout=5)
    promoted = watch.promoted(rs.master_port)
    new_master = rs.named_master(rs.sentinel_ports[0])
    same_pids = {name: (watch.pids[name] == {pid} and harness.alive(pid)) for name, pid in servers.items()}
    key_after = (n1.secret("LIVEKIT_API_KEY"), n2.secret("LIVEKIT_API_KEY"))
    roles = {port: rs.role(port) for port in [rs.master_port, *rs.replica_ports]}
    for name in ("n1", "n2"):
        log(f"{name} timeline (s since the kill: pid, condition, store.reachable, provisioning, fleet): "
            f"{watch.timeline[name]}")
        log(f"{name} store errors: {watch.store_errors[name]}")
    log(f"sentinels named: {watch.named}")
    unreachable = {name: next((t for t, row in watch.timeline[name] if len(row) > 2 and row[2] is False), None)
                   for name in ("n1", "n2")}
    reachable_again = {name: next((t for t, row in watch.timeline[name]
                                   if len(row) > 2 and row[2] is True and t > (unreachable[name] or 1e9)), None)
                       for name in ("n1", "n2")}
    # Reads the store got through while the old master was away, in seconds after the kill (whole
    # seconds: `last_ok` is): from the master the sentinels promoted.
    reads_away = {name: sorted(round(harness.parse_time(t) - int(killed_wall[0])) for t in seen
                               if int(killed_wall[0]) + 1 < harness.parse_time(t) < back_wall[0])
                  for name, seen in watch.last_ok.items()}
    named_new = {name: any(f"Redis at 127.0.0.1:{new_master} " in e for _, e in errors)
                 for name, errors in watch.store_errors.items() if errors}
    timelines = {name: [(t, row[1], row[2], row[4]) for t, row in line if len(row) > 2]
                 for name, line in watch.timeline.items()}
    figure("failover", f"Sentinel set (master :{rs.master_port}, {replicas} replica(s) {rs.replica_ports}, 3 "
                       f"sentinels, down-after 1000 ms; store replicas=1) under a call across 2 nodes (A+s0 on n1, "
                       f"B+s1 on n2); master SIGKILLed: :{new_master} promoted, named by the sentinels after "
                       f"{promoted} s; worst gap in fresh "
                       f"audio while the old master was away ({AWAY:.0f} s) {r['gap_away'] * 1000:.0f} ms, "
                       f"participants cut {len(r['cut_away'])}, events {r['events_away'] or 'none'}; gaps > 50 ms "
                       f"(s after the kill, length) {r['long_gaps']}; a new room across the nodes opened "
                       f"{r['opened']:.1f} s after the kill: B heard A after {r['after'][0]} s "
                       f"(events {r['after'][1] or 'none'}); store unreachable after {unreachable} s, "
                       f"reachable again after {reachable_again} s; reads the store got through while the old "
                       f"master was away (s after the kill) {reads_away}; store errors name the new master "
                       f"{named_new or 'none'}; status (s after the kill, condition, store.reachable, other nodes "
                       f"in changes.fleet) {timelines}; "
                       f"provisioning.state {sorted({row[3] for line in watch.timeline.values() for _, row in line if len(row) > 3})}; old master back -> a replica after "
                       f"{r['replica_after']:.2f} s, both nodes converged (store reachable, ready, serving) "
                       f"{r['converged']:.2f} s after it was back; worst gap overall {r['gap'] * 1000:.0f} ms, "
                       f"cut {len(r['cut'])}; livekit-server pids {servers} unchanged: {same_pids}; API key "
                       f"unchanged: {key_after == (key, key)}; roles at the end {roles}; load {load_before} "
                       f"-> {load()}")
    assert all(same_pids.values()), f"livekit-server was restarted: {watch.pids}"
    assert key_after == (key, key), "a key was minted or rotated"
    assert promoted[0] is not None, f"the sentinels never promoted the replica: {watch.named}"
    assert r["cut"] == [], f"participants cut: {r['cut']}; events {r['events']}"
    # Our store follows the new master: with a replica left, it reads from it while the old
    # master is away; without one, it reaches it and refuses to read (`replicas=1`: a master
    # with no replica in sync may be one a failover cut off), naming it.
    if replicas > 1:
        assert all(reads_away.values()), f"the store read nothing from the new master: {reads_away}"
    else:
        assert named_new == {"n1": True, "n2": True}, watch.store_errors
    for name, status in r["statuses"].items():
        p = next(p for p in status["media"]["processes"] if p["name"] == "livekit-server")
        assert p["pid"] == servers[name], status["media"]
