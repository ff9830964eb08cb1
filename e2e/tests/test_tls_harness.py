"""The TLS scenarios' harness checked against real programs before the product's TLS front
exists (issue 23): Pebble issues through the gate to a real ACME client (certbot's `acme`
library) and misbehaves on demand as `test_tls.py` expects; headless Chromium and LiveKit's
Python SDK trust a throwaway root exactly as the scenarios arrange it, and no other. Nothing
here runs the product; figures as `FIGURE` lines."""

from __future__ import annotations

import asyncio
import datetime
import http.server
import os
import threading
import time
from pathlib import Path

import pytest

import tlskit
import browser
import harness
from harness import figure, log

DOMAIN = "lk.test"
TURN_DOMAIN = "turn.lk.test"


@pytest.fixture
def tmp(request, workdir) -> Path:
    path = workdir / request.node.name
    path.mkdir()
    return path


def need_pebble() -> None:
    why = tlskit.missing()
    if why:
        pytest.fail(why)


class Http01:
    """What the product's front does on `http_port` for HTTP-01, for the reference client:
    serves /.well-known/acme-challenge/<token> from a dict, records the Host of each request."""

    def __init__(self, port: int) -> None:
        self.answers: dict[str, bytes] = {}
        self.hosts: list[str] = []
        me = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                me.hosts.append(self.headers.get("Host", ""))
                body = me.answers.get(self.path)
                self.send_response(200 if body else 404)
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def reference_client(directory_url: str, ca_pem: Path):
    """certbot's ACME client on `directory_url`, trusting `ca_pem` only; a new account."""
    import josepy as jose
    from acme import client, messages
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = jose.JWKRSA(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    net = client.ClientNetwork(key, user_agent="lp-e2e-reference", verify_ssl=str(ca_pem))
    c = client.ClientV2(client.ClientV2.get_directory(directory_url, net), net=net)
    c.new_account(messages.NewRegistration.from_data(email="e2e@lk.test", terms_of_service_agreed=True))
    return c, key


def obtain_with_key(c, key, http01: Http01, names: list[str]) -> tuple[str, bytes]:
    """One certificate for `names` over HTTP-01: the full chain and its key, PEM."""
    from acme import challenges, crypto_util
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    cert_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    order = c.new_order(crypto_util.make_csr(cert_key, names))
    for authz in order.authorizations:
        for chall in authz.body.challenges:
            if isinstance(chall.chall, challenges.HTTP01):
                response, validation = chall.response_and_validation(key)
                http01.answers[chall.chall.path] = validation.encode()
                c.answer_challenge(chall, response)
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=30)
    return c.poll_and_finalize(order, deadline=deadline).fullchain_pem, cert_key


def obtain(c, key, http01: Http01, names: list[str]) -> str:
    """One certificate for `names` over HTTP-01: the full chain, PEM."""
    return obtain_with_key(c, key, http01, names)[0]


def test_tls_harness_pebble_issues_and_misbehaves(reaper, tmp):
    """Pebble behind the gate issues a short-lived certificate for the two names over HTTP-01 to
    our port (names resolved by challtestsrv to 127.0.0.1), chained to the root its management
    interface gives; then each bad answer `test_tls.py` relies on reaches a real ACME client as
    the problem it names."""
    need_pebble()
    from acme import errors, messages
    import requests
    http_port = harness.free_port()
    pebble = tlskit.Pebble(reaper, tmp / "pebble", http_port=http_port, validity=60)
    gate = tlskit.AcmeGate(pebble, retry_after=7)
    http01 = Http01(http_port)
    try:
        t0 = time.monotonic()
        c, key = reference_client(gate.directory_url, pebble.ca_pem)
        chain = obtain(c, key, http01, [DOMAIN, TURN_DOMAIN])
        took = time.monotonic() - t0
        leaf = tlskit.cert_info(chain.encode())
        root_pem, intermediate_pem = pebble.roots()
        (tmp / "root.pem").write_text(root_pem)
        # The chain verifies against the root from /roots/0 (and only with it).
        from cryptography import x509
        certs = x509.load_pem_x509_certificates(chain.encode())
        root = x509.load_pem_x509_certificate(root_pem.encode())
        intermediate = x509.load_pem_x509_certificate(intermediate_pem.encode())
        assert certs[-1].issuer == root.subject, (certs[-1].issuer, root.subject)
        assert certs[1] == intermediate
        certs[-1].verify_directly_issued_by(root)
        certs[0].verify_directly_issued_by(certs[1])
        assert sorted(leaf.names) == sorted([DOMAIN, TURN_DOMAIN]), leaf.names
        lifetime = leaf.not_after - leaf.not_before
        assert 55 <= lifetime <= 61, lifetime
        assert any(h.startswith(DOMAIN) for h in http01.hosts), http01.hosts
        figure("tls-harness-issue", f"Pebble via the gate issued {leaf} ({lifetime:.0f} s, "
                                    f"{len(certs)} certificates in the chain) in {took:.2f} s; "
                                    f"HTTP-01 requests to port {http_port}: {len(http01.hosts)}")

        # Rate limited: a 429 rateLimited problem with Retry-After, from the gate.
        gate.rate_limit()
        with pytest.raises(messages.Error) as err:
            obtain(c, key, http01, [DOMAIN])
        assert err.value.typ == "urn:ietf:params:acme:error:rateLimited", err.value
        gate.passthrough()

        # Challenge failing: challtestsrv answers SERVFAIL for the domain.
        pebble.dns_servfail(DOMAIN)
        with pytest.raises((errors.ValidationError, messages.Error)) as err:
            obtain(c, key, http01, [DOMAIN])
        problem = str(err.value)
        assert "could not resolve" in problem or "dns" in problem.lower(), problem
        pebble.dns_servfail(DOMAIN, on=False)

        # Directory down: connections to the gate are refused.
        gate.down()
        with pytest.raises(requests.exceptions.ConnectionError):
            obtain(c, key, http01, [DOMAIN])
        gate.up()

        # And back to normal with the same CA: the same root issues again.
        again = obtain(c, key, http01, [DOMAIN])
        x509.load_pem_x509_certificates(again.encode())[-1].verify_directly_issued_by(root)
        figure("tls-harness-faults", f"rate-limited, challenge failing (SERVFAIL), directory "
                                     f"down each refused as expected; gate faults injected "
                                     f"{gate.faults}, requests seen {len(gate.requests)}; "
                                     f"issued again under the same root afterwards")
    finally:
        http01.close()
        gate.close()
        pebble.stop()


@pytest.fixture
def echo(tmp):
    """A throwaway root, and an HTTPS + WebSocket server for lk.test signed by it."""
    root = tlskit.make_root(tmp, "throwaway-root")
    other = tlskit.make_root(tmp, "other-root")
    server = tlskit.TlsEcho(root.issue(tmp, "lk", [DOMAIN]), name="lk")
    yield root, other, server
    server.close()


def test_tls_harness_chromium_trusts_its_nss_root_only(reaper, tmp, echo):
    """Headless Chromium with a HOME whose NSS DB trusts the throwaway root, and *.test mapped to
    127.0.0.1 by --host-resolver-rules: the page over https://lk.test:<port> and a WebSocket to
    wss://lk.test:<port> work. The same Chromium with an empty NSS DB refuses the page."""
    if not os.access(browser.CHROMIUM, os.X_OK):  # as the browser scenarios (test_browser.kit)
        why = f"no Chromium at {browser.CHROMIUM} (apt-get install chromium)"
        if os.environ.get("E2E_BROWSER_REQUIRED") == "1":
            pytest.fail(f"E2E_BROWSER_REQUIRED=1 but {why}")
        pytest.skip(why)
    root, _other, server = echo
    url = f"https://{DOMAIN}:{server.port}/"
    ws_url = f"wss://{DOMAIN}:{server.port}/ws"
    wav = browser.tone_wav(tmp / "tone.wav", periods=1)
    resolve = {"*.test": "127.0.0.1"}

    async def trusted():
        home = tlskit.nss_home(tmp / "trusting", {"pebble": root.cert})
        async with browser.Chromium(reaper, tmp, wav, home=home, resolve=resolve) as chrome:
            await chrome.open(url, ready="complete:undefined")
            text = await chrome.evaluate("document.body.innerText")
            echoed = await chrome.evaluate(
                f"new Promise((ok, no) => {{ const ws = new WebSocket({ws_url!r}); "
                "ws.onopen = () => ws.send('hi'); ws.onmessage = e => { ok(e.data); ws.close(); }; "
                "ws.onerror = () => no(new Error('websocket error')); })")
            return text, echoed

    async def untrusting():
        home = tlskit.nss_home(tmp / "untrusting", {})
        async with browser.Chromium(reaper, tmp, wav, home=home, resolve=resolve) as chrome:
            with pytest.raises(browser.BrowserError) as err:
                await chrome.open(url, ready="complete:undefined")
            return str(err.value)

    text, echoed = asyncio.run(trusted())
    refused = asyncio.run(untrusting())
    figure("tls-harness-chromium", f"trusting: page {text!r}, WebSocket {echoed!r}; empty NSS DB: "
                                   f"{refused.split(': ')[-1]}; SNI seen {sorted(set(server.sni))}")
    assert text == "ok lk"
    assert echoed == "echo hi"
    assert "ERR_CERT_AUTHORITY_INVALID" in refused, refused
    assert set(server.sni) == {DOMAIN}, server.sni


def test_tls_harness_python_sdk_trusts_ssl_cert_file(tmp, echo):
    """LiveKit's Python SDK connecting to wss://lk.test:<port> (an /etc/hosts line for the test),
    with SSL_CERT_FILE the process-wide bundle `tlskit.sdk_trust` keeps: while the bundle holds
    another root only, the signal WebSocket refuses the certificate and no request arrives; once
    the throwaway root is appended (same file, same process), the next connect's TLS succeeds and
    the server sees the SDK's /rtc requests (answered 404: it is not a LiveKit server). A fresh
    process without SSL_CERT_FILE refuses it (the system store does not have it)."""
    import subprocess
    import sys
    from livekit import rtc
    root, other, server = echo
    url = f"wss://{DOMAIN}:{server.port}"

    async def connect() -> str:
        room = rtc.Room()
        try:
            await asyncio.wait_for(room.connect(url, "not.a.token",
                                                rtc.RoomOptions(rtc_config=harness.LOOPBACK_ICE)), 20)
            return "connected"
        except Exception as e:  # noqa: BLE001 - the outcome is the message
            return str(e)

    def signal_requests(paths: list[str]) -> list[str]:
        # The signal WebSocket's upgrade requests; /rtc/v1/validate comes from the SDK's HTTP
        # client, which loads its roots once per process (see tlskit.sdk_trust).
        return [p for p in paths if p.startswith("/rtc") and not p.endswith("/validate")]

    outcomes = {}
    with tlskit.hosts_entries([DOMAIN]):
        for label, pem in (("another root only", other.cert), ("throwaway root appended", root.cert)):
            tlskit.sdk_trust(pem)
            before = len(server.paths)
            outcome = asyncio.run(connect())
            outcomes[label] = (outcome, signal_requests(server.paths[before:]))
        before = len(server.paths)
        env = {k: v for k, v in os.environ.items() if k != "SSL_CERT_FILE"}
        script = (f"import asyncio; from livekit import rtc\n"
                  f"async def main():\n"
                  f"    try: await asyncio.wait_for(rtc.Room().connect({url!r}, 'not.a.token'), 20)\n"
                  f"    except Exception as e: print('OUTCOME', e)\n"
                  f"asyncio.run(main())\n")
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                             timeout=60).stdout
        outcome = next((line[8:] for line in out.splitlines() if line.startswith("OUTCOME ")), out[-200:])
        outcomes["unset (fresh process)"] = (outcome, signal_requests(server.paths[before:]))
    for label, (outcome, paths) in outcomes.items():
        log(f"SDK, SSL_CERT_FILE {label}: {outcome}; signal requests {paths}")
    assert DOMAIN not in Path("/etc/hosts").read_text(), "the hosts entry was not removed"
    figure("tls-harness-python-sdk", "; ".join(f"SSL_CERT_FILE {k}: {len(v[1])} signal requests "
                                               f"({v[0][:80]})" for k, v in outcomes.items()))
    assert outcomes["throwaway root appended"][1], outcomes
    for label in ("another root only", "unset (fresh process)"):
        outcome, paths = outcomes[label]
        assert "UnknownIssuer" in outcome and not paths, (label, outcome, paths)


def test_tls_harness_probes_against_the_real_server(reaper, tmp):
    """The scenarios' clients and probes through a stand-in front (tlskit.StandInFront, not the
    product) to a hand-started livekit-server with TURN on plain TCP (`external_tls`), using a
    certificate Pebble issued for both names: SNI turn.lk.test gets a STUN Binding success from
    livekit-server's TURN, SNI lk.test gets livekit-server's `GET /`, and two Python SDK
    participants trusting Pebble's root only talk over wss://lk.test:<port>."""
    need_pebble()
    # The binary by path (not the `server_bin` fixture, which wants the product built too).
    server_bin = Path(os.environ["LIVEKIT_SERVER_BIN"])
    from livekit import api
    import subprocess
    # A certificate for both names from Pebble, through the gate, by the reference client.
    http_port = harness.free_port()
    pebble = tlskit.Pebble(reaper, tmp / "pebble", http_port=http_port, validity=3600)
    gate = tlskit.AcmeGate(pebble)
    http01 = Http01(http_port)
    front = None
    try:
        c, key = reference_client(gate.directory_url, pebble.ca_pem)
        chain, key_pem = obtain_with_key(c, key, http01, [DOMAIN, TURN_DOMAIN])
        leaf = tlskit.Leaf(tmp / "live-cert.pem", tmp / "live-key.pem")
        leaf.cert.write_text(chain)
        leaf.key.write_bytes(key_pem)
        root = pebble.write_root(tmp / "pebble-root.pem")

        # livekit-server by hand, TURN over plain TCP behind the terminator.
        port, tcp, udp, turn_tcp, turn_udp, relay = harness.free_ports(6)
        k, secret = "APItlsharness", "tlsharnesssecrettlsharnesssecret0123456"
        conf = tmp / "livekit.yaml"
        conf.write_text(f"port: {port}\nrtc:\n  tcp_port: {tcp}\n  udp_port: {udp}\n"
                        f"  use_external_ip: false\n  node_ip: 127.0.0.1\n  enable_loopback_candidate: true\n"
                        f"turn:\n  enabled: true\n  domain: {TURN_DOMAIN}\n  tls_port: {turn_tcp}\n"
                        f"  udp_port: {turn_udp}\n  external_tls: true\n"
                        f"  relay_range_start: {relay}\n  relay_range_end: {relay + 9}\n"
                        f"keys:\n  {k}: {secret}\n")
        with open(tmp / "livekit.log", "wb") as logf:
            reaper.popen([str(server_bin), "--config", str(conf)], marker=str(conf), stdout=logf,
                         stderr=subprocess.STDOUT, env={"PATH": "/usr/bin:/bin"})
        deadline = time.monotonic() + 30
        while harness.health(f"http://127.0.0.1:{port}", 0.5) != "OK":
            assert time.monotonic() < deadline, (tmp / "livekit.log").read_text()[-2000:]
            time.sleep(0.05)
        front = tlskit.StandInFront({DOMAIN: (leaf, port), TURN_DOMAIN: (leaf, turn_tcp)}, default=DOMAIN)

        stun = tlskit.stun_binding_over_tls(front.port, TURN_DOMAIN, root)
        status, body = tlskit.https_get(front.port, DOMAIN, "/", root)

        def tok(identity: str) -> str:
            return (api.AccessToken(k, secret).with_identity(identity)
                    .with_grants(api.VideoGrants(room_join=True, room="tls")).to_jwt())

        async def call():
            tlskit.sdk_trust(root)
            url = f"wss://{DOMAIN}:{front.port}"
            call = harness.Call()
            try:
                t0 = time.monotonic()
                await call.start(url, tok("a"), url, tok("b"))
                heard = await call.wait_fresh(0) - t0
                call.rx.measure_from_now()
                await asyncio.sleep(2.0)
                return heard, call.rx.worst_fresh_gap, call.connection_events()
            finally:
                await call.close()

        with tlskit.hosts_entries([DOMAIN, TURN_DOMAIN]):
            heard, worst, events = asyncio.run(call())
        figure("tls-harness-real-server", f"through a stand-in front on one port: SNI {TURN_DOMAIN} -> "
                                          f"STUN Binding {stun['class']} {stun['mapped']} from livekit-server's "
                                          f"TURN; SNI {DOMAIN} -> GET / {status} {body.strip()!r}; Python SDK "
                                          f"call over wss:// first fresh audio {heard:.2f} s, worst gap "
                                          f"{worst * 1000:.0f} ms over 2 s, events {events or 'none'}")
        assert stun["class"] == "success" and stun["mapped"], stun
        assert TURN_DOMAIN in stun["cert"].names
        assert status == 200 and body.strip() == "OK", (status, body)
        assert events == [], events
    finally:
        if front is not None:
            front.close()
        http01.close()
        gate.close()
        pebble.stop()
