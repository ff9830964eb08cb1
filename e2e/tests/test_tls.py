"""Issue 23: a browser-grade node. `wss://` signaling through the product's own TLS front, with
certificates obtained from a real ACME server (Pebble, HTTP-01) before the first start and
renewed by the product, bad ACME answers leaving the last good certificate in place, and
TURN/TLS sharing the front's port by SNI. Clients trust Pebble's root only: LiveKit's Python SDK
through SSL_CERT_FILE, the browser through an NSS DB of its own (see tlskit.py for what was
measured). Figures as `FIGURE` lines.

THE INTERFACE THESE SCENARIOS ASSUME (written before the product side landed; each is what the
test relies on, nothing more):

1. provision.yaml has a `tls:` section:
       tls:
         domain: lk.test             # the signaling name; the certificate covers it
         turn_domain: turn.lk.test   # optional; a second name on the same certificate or another
         port: <tcp>                 # the front's TLS port (default 443)
         http_port: <tcp>            # HTTP-01 answers + redirect to https (default 80)
         acme_directory: https://127.0.0.1:<gate>/dir
         acme_email: e2e@lk.test
         acme_ca_root: /path/ca.pem  # the PEM the ACME directory's HTTPS is verified with
         renew_before: 40s           # optional duration (`30d`, `40s`); default a third of the lifetime
   (`cert_file`/`key_file` instead of the acme_* keys are the operator-given alternative; not
   exercised here.) The front binds `port` and `http_port` on every address (0.0.0.0 or [::]):
   Pebble reaches http_port at 127.0.0.1, the clients reach `port` at 127.0.0.1.
2. With `tls.turn_domain` set and `turn: {enabled: true, domain: <turn_domain>, tls_port: <p>,
   udp_port: <q>, …}` without cert_file/key_file, the product supplies TURN's TLS: a connection
   to `tls.port` whose SNI is turn_domain reaches livekit-server's TURN (terminated by the front
   and forwarded to `turn.tls_port` with `external_tls`, or passed through to a TURN that loads
   the product's certificate: either way the client sees a certificate for turn_domain and a
   STUN/TURN stream). Any other SNI (or none) is HTTP(S) proxied to livekit-server's `port`.
3. The front is a media process named `tls-front`: listed in `status.media.processes` (with
   `pid`, `running`), pid file `<state>/run/tls-front.pid`, log `<state>/logs/tls-front.log`,
   started by the daemon like livekit-server and surviving control-plane restarts.
4. The certificate in use is `<state>/tls/live/cert.pem` (chain, leaf first) and
   `<state>/tls/live/key.pem` (mode 0600), present before livekit-server and the front first
   start on a bare node.
5. `status` (daemon RPC `status`, CLI `livekit-provision status --json`, the same object) has
   `tls`: {domain, names, issuer, not_after, renew_at, last_attempt (RFC 3339 or null), source
   ("acme" | "files"), last_error (null or text), issued (certificates obtained in this state directory, the first
   included), next_attempt, problem, serial}.
   A failed attempt sets last_error to text naming the cause (the ACME problem type, or the
   connection failure); a later success clears it.
6. A renewal is installed without cutting a connection: the front takes the new certificate for
   new handshakes, established TLS connections go on.
7. `livekit-provision check --json` reports certificate findings under codes starting `tls-`
   (e.g. `tls-acme-failed`) in `findings`.
8. The ACME client honours Retry-After and retries within the renewal window: with a 120 s
   certificate and renew_before 100 s, a failed attempt is followed by another within seconds,
   not days (only printed, never asserted).
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import browser
import harness
import tlskit
from harness import figure, log
from test_browser import kit, wait_browser_fresh  # noqa: F401 - `kit` is a fixture
from test_scenarios import in_thread, provision

DOMAIN = "lk.test"
TURN_DOMAIN = "turn.lk.test"
RESOLVE = {"*.test": "127.0.0.1"}


# ---------------------------------------------------------------- fixtures


@dataclass
class Acme:
    pebble: tlskit.Pebble
    gate: tlskit.AcmeGate
    root: Path  # Pebble's issuing root: what the clients trust


@pytest.fixture
def acme_server(request, workdir, reaper):
    """start(http_port, validity) → Pebble behind its gate (stopped by pid at the end); the
    issuing root written out and added to the Python SDK's trust."""
    why = tlskit.missing()
    if why:
        pytest.fail(why)
    started: list[Acme] = []

    def start(http_port: int, validity: int) -> Acme:
        directory = workdir / f"{request.node.name}-acme"
        pebble = tlskit.Pebble(reaper, directory, http_port=http_port, validity=validity)
        gate = tlskit.AcmeGate(pebble, retry_after=5)
        root = pebble.write_root(directory / "pebble-root.pem")
        tlskit.sdk_trust(root)
        acme = Acme(pebble, gate, root)
        started.append(acme)
        return acme

    yield start
    for acme in started:
        acme.gate.close()
        acme.pebble.stop()


@pytest.fixture
def names():
    """lk.test and turn.lk.test resolve to 127.0.0.1 for the Python SDK (an /etc/hosts line each,
    removed at the end); Chromium maps them itself (RESOLVE)."""
    with tlskit.hosts_entries([DOMAIN, TURN_DOMAIN]):
        yield


@dataclass
class TlsNode:
    node: harness.Node
    acme: Acme
    port: int
    http_port: int

    @property
    def url(self) -> str:
        return f"wss://{DOMAIN}:{self.port}"

    @property
    def live(self) -> Path:
        return self.node.state / "tls" / "live"

    def status(self) -> dict | None:
        return (self.node.try_rpc("status") or {}).get("tls")

    def served(self, sni: str = DOMAIN) -> tlskit.CertInfo:
        return tlskit.served_cert(self.port, sni, self.acme.root)

    def served_or_none(self, sni: str = DOMAIN) -> tlskit.CertInfo | None:
        try:
            return self.served(sni)
        except OSError:
            return None

    def front(self) -> dict | None:
        return self.node.media("tls-front")

    def track_front(self) -> int | None:
        try:
            pid = json.loads((self.node.state / "run" / "tls-front.pid").read_text())["pid"]
        except (OSError, ValueError, KeyError):
            return None
        self.node.reaper.track(pid, str(self.node.state))
        return pid

    def log_tail(self) -> str:
        out = [self.node.log_tail()]
        f = self.node.state / "logs" / "tls-front.log"
        if f.exists():
            out.append("--- tls-front.log\n" + "\n".join(f.read_text(errors="replace").splitlines()[-30:]))
        return "\n".join(out) + "\n" + self.acme.pebble.log_tail()


def tls_node(make_node, version: str, acme_server, *, validity: int, renew_before: str | None = None,
             turn: bool = False) -> TlsNode:
    """A bare node whose provision.yaml asks for wss:// on free ports, certificates from a fresh
    Pebble (HTTP-01 on the front's http_port)."""
    port, http_port = harness.free_ports(2)
    acme = acme_server(http_port, validity)
    tls = {"domain": DOMAIN, "port": port, "http_port": http_port,
           "acme_directory": acme.gate.directory_url, "acme_email": "e2e@lk.test",
           "acme_ca_root": str(acme.pebble.ca_pem)}
    if renew_before:
        tls["renew_before"] = renew_before
    settings = {"tls": tls}
    if turn:
        tls["turn_domain"] = TURN_DOMAIN
        tls_port, udp_port, relay = harness.free_ports(3)
        settings["turn"] = {"enabled": True, "domain": TURN_DOMAIN, "tls_port": tls_port,
                            "udp_port": udp_port, "relay_range_start": relay, "relay_range_end": relay + 9}
    node = make_node("n1", settings=settings)
    provision(node, version)
    # The product accepts the section (a refusal fails here, naming it, not after a long wait).
    dry = node.lp("ensure", "--dry-run", check=False)
    assert dry.returncode in (0, 2), f"ensure --dry-run exited {dry.returncode}:\n{dry.stderr}"
    return TlsNode(node, acme, port, http_port)


def boot_tls(t: TlsNode) -> tuple[int, dict]:
    """Start the daemon; wait for livekit-server healthy, the front running and a certificate in
    status; (server pid, status.tls)."""
    t.node.start_daemon()

    def up():
        if t.node.daemon.poll() is not None:
            raise AssertionError(f"the daemon exited {t.node.daemon.returncode}:\n{t.log_tail()}")
        return t.node.try_rpc("status")

    t.node.wait_for("the daemon's socket", up, timeout=30, interval=0.01)
    pid = t.node.wait_server_healthy()
    t.node.track_server()
    t.node.wait_for("tls-front running", lambda: (t.front() or {}).get("running"), timeout=60)
    t.track_front()
    tls = t.node.wait_for("status.tls with a certificate", lambda: (t.status() or {}).get("not_after") and t.status(),
                          timeout=60)
    return pid, tls


def started_at(pid: int) -> float:
    """When process `pid` started (Unix seconds, to a clock tick): /proc/<pid>/stat field 22
    after boot time."""
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    btime = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                 if line.startswith("btime "))
    return btime + ticks / os.sysconf("SC_CLK_TCK")


def cut(events: list[str]) -> int:
    """Participants that saw their connection go (reconnecting or disconnected)."""
    return len({e.split(":")[0] for e in events if e.split(":")[1] in ("reconnecting", "disconnected")})


def check_codes(node: harness.Node) -> list[str]:
    out = node.lp("--json", "check", check=False).stdout
    return [f["code"] for f in json.loads(out)["findings"]]


# ---------------------------------------------------------------- (a) bare node → wss:// join


def test_tls_bare_node_wss(make_node, version, acme_server, names,
                                                            reaper, kit):
    t = tls_node(make_node, version, acme_server, validity=7776000)
    t0 = time.monotonic()
    server = boot_tls(t)[0]
    booted = time.monotonic() - t0
    tls = t.status()

    # The certificate: in place, the key private, served for the domain under Pebble's root.
    cert, key = t.live / "cert.pem", t.live / "key.pem"
    assert cert.is_file() and key.is_file(), list(t.live.parent.rglob("*"))
    assert stat.S_IMODE(key.stat().st_mode) == 0o600, oct(key.stat().st_mode)
    on_disk = tlskit.cert_info(cert.read_bytes())
    served = t.served()
    assert served.serial == on_disk.serial, (served, on_disk)
    assert DOMAIN in served.names
    assert "Pebble" in served.issuer, served.issuer
    assert tls["source"] == "acme" and tls["domain"] == DOMAIN and DOMAIN in tls["names"], tls
    assert tls["last_error"] is None and tls["issued"] == 1, tls
    assert abs(harness.parse_time(tls["not_after"]) - on_disk.not_after) < 2, (tls, on_disk)
    cli = json.loads(t.node.lp("status", "--json").stdout)["tls"]
    assert cli["not_after"] == tls["not_after"], (cli, tls)
    # The cert was obtained before the first start: livekit-server and the front started after.
    assert cert.stat().st_mtime <= started_at(server) + 1, "livekit-server started before the certificate existed"
    codes = check_codes(t.node)
    log(f"check codes on a fresh ACME certificate: {codes}")

    async def scenario():
        peer = harness.Peer("python")
        try:
            t_join = time.monotonic()
            await peer.connect(t.url, await in_thread(t.node.token, "python", "wss"))
            first_join = time.monotonic() - t0
            join_s = time.monotonic() - t_join
            async with browser.Chromium(reaper, kit.directory, kit.wav,
                                        home=tlskit.nss_home(kit.directory, {"pebble": t.acme.root}),
                                        resolve=RESOLVE) as chrome:
                await chrome.open(kit.pages.url)
                joined = await chrome.call("join", t.url, await in_thread(t.node.token, "browser", "wss"),
                                           timeout=60)
                await peer.wait_fresh(0)
                await peer.publish()
                rx = await wait_browser_fresh(chrome)
                before = await chrome.call("measureFromNow")
                peer.rx.measure_from_now()
                await asyncio.sleep(3.0)
                report = await chrome.call("report")
                await chrome.call("leave")
                return first_join, join_s, joined, rx, before, report, peer.rx.worst_fresh_gap, peer.connection_events()
        finally:
            await peer.close()

    first_join, join_s, joined, rx, before, report, python_worst, events = asyncio.run(scenario())
    fresh_s = (report["rx"]["fresh"] - before["fresh"]) / harness.RATE
    window_s = (report["rx"]["at"] - before["at"]) / 1000
    figure("tls-bare-to-wss", f"daemon start -> livekit-server healthy, tls-front running and a "
                              f"certificate in status {booted:.2f} s; -> first wss:// join "
                              f"(Python SDK) {first_join:.2f} s (the join itself {join_s:.2f} s); "
                              f"browser join() to connected {(joined['connectedAt'] - joined['startedAt']) / 1000:.2f} s "
                              f"over wss://; certificate {served}")
    figure("tls-wss-call", f"browser <-> Python over wss://: over {window_s:.1f} s the browser counted "
                           f"{fresh_s:.2f} s of fresh samples; worst gap browser -> Python "
                           f"{python_worst * 1000:.0f} ms; connection events {events or 'none'}")
    assert fresh_s > 0.8 * window_s, (fresh_s, window_s)
    assert report["rx"]["windowEnergy"] > 0, report
    assert events == [], events


# ---------------------------------------------------------------- (b) renewal under a call


def test_tls_renewal_under_call(make_node, version, acme_server, names):
    t = tls_node(make_node, version, acme_server, validity=60, renew_before="40s")
    server, tls = boot_tls(t)
    first = t.served()
    log(f"first certificate {first}; status renew_at {tls['renew_at']}")

    async def scenario():
        call = harness.Call()
        try:
            await call.start(t.url, await in_thread(t.node.token, "a", "renewal"),
                             t.url, await in_thread(t.node.token, "b", "renewal"))
            await call.wait_fresh(0)
            call.rx.measure_from_now()
            t_start = time.monotonic()
            # Until a renewal is served on the wire and counted in status (at most two lifetimes).
            renewed = None
            while time.monotonic() - t_start < 120:
                now = await in_thread(t.served_or_none)
                status = await in_thread(t.status) or {}
                if now and now.serial != first.serial and status.get("issued", 0) >= 2:
                    renewed = (time.monotonic() - t_start, now, status)
                    break
                await asyncio.sleep(0.5)
            # The call goes on past the switch.
            await asyncio.sleep(3.0)
            await call.wait_fresh(time.monotonic() - 0.5, timeout=5)
            worst = max(call.rx.worst_fresh_gap, time.monotonic() - (call.rx.last_fresh_at or 0.0))
            return renewed, worst, call.connection_events()
        finally:
            await call.close()

    renewed, worst, events = asyncio.run(scenario())
    assert renewed is not None, f"no renewal served within 120 s (first {first}):\n{t.log_tail()}"
    after_s, new, status = renewed
    figure("tls-renewal-under-call", f"60 s certificates, renew_before 40 s: renewed {after_s:.1f} s into "
                                     f"the call ({first.serial[:12]}… -> {new.serial[:12]}…, not_after "
                                     f"+{new.not_after - first.not_after:.0f} s), status.tls.issued "
                                     f"{status['issued']}; worst gap in fresh audio "
                                     f"{worst * 1000:.0f} ms; participants cut {cut(events)}; "
                                     f"connection events {events or 'none'}")
    assert new.not_after > first.not_after
    assert status["last_error"] is None, status
    assert (t.node.media() or {}).get("pid") == server, "livekit-server restarted for a signaling renewal"
    assert cut(events) == 0, events


# ---------------------------------------------------------------- (c) bad ACME answers


FAULTS = {
    # how the fault is injected, how it is cleared, words one of which status.tls.last_error has
    "directory-down": (lambda a: a.gate.down(), lambda a: a.gate.up(),
                       ("connect", "refused", "unreachable", "directory")),
    "challenge-failing": (lambda a: a.pebble.dns_servfail(DOMAIN), lambda a: a.pebble.dns_servfail(DOMAIN, on=False),
                          ("challenge", "http-01", "resolve", "dns", "connection", "invalid")),
    "rate-limited": (lambda a: a.gate.rate_limit(), lambda a: a.gate.passthrough(),
                     ("ratelimited", "rate limit", "rate-limit", "429")),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_tls_bad_acme(make_node, version, acme_server, names, fault):
    inject, clear, words = FAULTS[fault]
    t = tls_node(make_node, version, acme_server, validity=120, renew_before="100s")
    server, tls = boot_tls(t)
    good = t.served()
    inject(t.acme)
    t_fault = time.monotonic()
    log(f"{fault}: injected; good certificate {good}; renew_at {tls['renew_at']}")
    # The first attempt after renew_at fails and says so.
    failed = t.node.wait_for(f"status.tls.last_error after {fault}",
                             lambda: (s := t.status()) and s.get("last_error") and s, timeout=60)
    seen = time.monotonic() - t_fault
    still = t.served()
    codes = check_codes(t.node)

    async def joins() -> tuple[bool, str]:
        p = harness.Participant("late")
        try:
            await asyncio.wait_for(p.connect(t.url, await in_thread(t.node.token, "late", "bad-acme")), 20)
            return True, ""
        except Exception as e:  # noqa: BLE001 - any failure is "could not join"
            return False, str(e)
        finally:
            await p.disconnect()

    joined, why = asyncio.run(joins())
    gate_faults = t.acme.gate.faults
    # Cleared: does the product come back by itself before the good certificate expires?
    clear(t.acme)
    t_clear = time.monotonic()
    recovered = None
    while time.monotonic() - t_clear < max(5.0, good.not_after - time.time() - 5):
        now = t.served_or_none()
        s = t.status() or {}
        if now and now.serial != good.serial and s.get("last_error") is None:
            recovered = time.monotonic() - t_clear
            break
        time.sleep(0.5)
    figure(f"tls-bad-acme-{fault}", f"last_error {seen:.1f} s after the fault: {failed['last_error']!r}; "
                                    f"served serial unchanged {still.serial == good.serial}; a new "
                                    f"participant over wss:// joined {joined}{' (' + why + ')' if why else ''}; "
                                    f"check codes {codes}; gate faults injected {gate_faults}; after clearing: "
                                    + (f"renewed in {recovered:.1f} s" if recovered is not None
                                       else "no renewal before the good certificate's end"))
    assert still.serial == good.serial, (good, still)
    assert any(w in failed["last_error"].lower() for w in words), (fault, failed["last_error"])
    assert failed["last_attempt"] is not None, failed
    assert any(c.startswith("tls-") for c in codes), codes
    assert joined, why
    assert (t.node.media() or {}).get("pid") == server
    if fault == "rate-limited":
        assert gate_faults > 0, "the gate never rate-limited a request"


# ---------------------------------------------------------------- (d) TURN/TLS by SNI


def test_tls_turn_by_sni(make_node, version, acme_server, names):
    """TURN/TLS and wss:// share one port by name; livekit-server's TURN loads the ACME
    certificate, and a renewed one is a pending change applied at the first idle moment (here
    at once: nobody is connected), after which TURN/TLS serves the new certificate."""
    t = tls_node(make_node, version, acme_server, validity=60, renew_before="40s", turn=True)
    server, _ = boot_tls(t)
    tls = t.status()
    stun = tlskit.stun_binding_over_tls(t.port, TURN_DOMAIN, t.acme.root)
    status_code, body = tlskit.https_get(t.port, DOMAIN, "/", t.acme.root)
    signaling = t.served(DOMAIN)
    figure("tls-turn-sni", f"one port {t.port}: SNI {TURN_DOMAIN} -> certificate {stun['cert']}, STUN "
                           f"Binding {stun['class']} (XOR-MAPPED-ADDRESS {stun['mapped']}); SNI {DOMAIN} "
                           f"-> certificate {signaling}, GET / {status_code} {body.strip()[:20]!r}; "
                           f"status.tls.names {tls['names']}")
    assert TURN_DOMAIN in stun["cert"].names, stun
    assert stun["class"] == "success" and stun["mapped"] and stun["mapped"].startswith("127.0.0.1:"), stun
    assert status_code == 200, (status_code, body)
    assert DOMAIN in signaling.names
    assert TURN_DOMAIN in tls["names"] and DOMAIN in tls["names"], tls

    # The renewal: livekit-server reads TURN's certificate only at start, so it is restarted,
    # at once on an idle node, and TURN/TLS then serves the renewed certificate.
    t0 = time.monotonic()
    renewed = t.node.wait_for("a renewal", lambda: (st := t.status() or {}).get("issued", 0) >= 2 and st,
                              timeout=90)
    t_renewed = time.monotonic() - t0

    def restarted_on_new():
        pid = (t.node.media() or {}).get("pid")
        if not pid or pid == server or not (t.node.media() or {}).get("healthy"):
            return None
        now = tlskit.stun_binding_over_tls(t.port, TURN_DOMAIN, t.acme.root)
        return (pid, now) if now["cert"].serial != stun["cert"].serial else None

    pid, after = t.node.wait_for("livekit-server restarted on the renewed TURN certificate",
                                 restarted_on_new, timeout=60)
    t.node.track_server()
    figure("tls-turn-renewal", f"TURN certificate renewed {t_renewed:.1f} s after the first check "
                               f"(issued {renewed['issued']}); livekit-server restarted (pid {server} -> {pid}) "
                               f"{time.monotonic() - t0:.1f} s in, TURN/TLS serving {after['cert']}; "
                               f"STUN Binding {after['class']}")
    assert after["class"] == "success", after
