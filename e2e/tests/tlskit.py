"""ACME and TLS for the e2e TLS scenarios (issue 23): Pebble, Let's Encrypt's ACME test server,
with its pebble-challtestsrv as the DNS that points every test domain at loopback; a loopback
HTTPS gate in front of Pebble that misbehaves on demand; throwaway PKIs; what a TLS port serves;
and the trust each client needs (Chromium: an NSS DB in a HOME of its own; LiveKit's Python
SDK: `SSL_CERT_FILE`; both: a name that resolves to 127.0.0.1).

Nothing here installs Pebble: `e2e/pebble.sh` does (go install into a cache outside the
repository) and `run.sh` hands the binaries over as PEBBLE_BIN and PEBBLE_CHALLTESTSRV_BIN.

What was measured here, and what the scenarios rely on:
- Pebble keeps its CA in memory and makes a new root (and intermediate) at every start, so a
  Pebble that is stopped and started again issues under a root nobody trusts yet. "Directory
  down" is therefore the gate refusing connections (`AcmeGate.down()`), not Pebble stopped;
  `Pebble.stop()` is there for the teardown and for a scenario that wants the CA gone for good.
- Pebble v2.10.3 has no rate limiting of its own (no `PEBBLE_RATELIMIT`, no `rateLimited`
  problem anywhere in its source): the gate answers 429 `urn:ietf:params:acme:error:rateLimited`
  with a `Retry-After` instead (`AcmeGate.rate_limit()`).
- A failing challenge without any packet leaving the host: challtestsrv answers SERVFAIL for the
  domain (`Pebble.dns_servfail`), so Pebble's VA cannot resolve it and the authorization turns
  invalid (`urn:ietf:params:acme:error:dns`). Its hosts are FQDNs: `lk.test.`.
- Pebble reuses a valid authorization for half the orders by default (`PEBBLE_AUTHZREUSE`), so a
  renewal might never validate; it runs with `PEBBLE_AUTHZREUSE=0`: every order validates.
- Pebble picks a *random* profile for an order that names none, so the generated config has one
  profile only, `default`, with the validity asked for.
- LiveKit's Python SDK (livekit 1.2.1; Rust core: tokio-tungstenite 0.29 over rustls 0.23 with
  rustls-native-certs) reads `SSL_CERT_FILE` at every connect, and when it is set trusts that
  file *only* (the system store is not added): set in `os.environ` of the test process, it takes
  effect on the next `Room.connect`. It resolves names with the system resolver (getaddrinfo:
  /etc/hosts, then DNS), and this host's nsswitch has no `myhostname`, so `lk.localhost` does not
  resolve here (and would be asked of DNS): `hosts_entries` adds `127.0.0.1 <name>` lines to
  /etc/hosts for the test and removes exactly those lines after.
- Chromium (Debian's) trusts a root found in `$HOME/.pki/nssdb` with trust `C,,`; its names
  come from `--host-resolver-rules` (`browser.Chromium(..., home=, resolve=)`).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import http.client
import http.server
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import harness
from harness import log


def _binary(var: str) -> Path | None:
    value = os.environ.get(var)
    return Path(value).resolve() if value else None


PEBBLE_BIN = _binary("PEBBLE_BIN")
CHALLTESTSRV_BIN = _binary("PEBBLE_CHALLTESTSRV_BIN")


def missing() -> str | None:
    """Why Pebble cannot run here (what is missing and how to get it), or None."""
    for var, path in (("PEBBLE_BIN", PEBBLE_BIN), ("PEBBLE_CHALLTESTSRV_BIN", CHALLTESTSRV_BIN)):
        if path is None:
            return f"{var} is not set (e2e/run.sh sets it from `e2e/pebble.sh v2.10.3`)"
        if not os.access(path, os.X_OK):
            return f"{var}={path} is not an executable"
    return None


# ---------------------------------------------------------------- throwaway PKIs


@dataclass
class Leaf:
    cert: Path  # the leaf, then the root (a full chain)
    key: Path


@dataclass
class Root:
    """A throwaway CA: its certificate (what a client is told to trust) and its key."""

    cert: Path
    key: Path

    def issue(self, directory: Path, name: str, dns: list[str], ips: list[str] = (),
              days: float = 2) -> Leaf:
        """A server certificate for `dns` and `ips` signed by this root (key 0600)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
        import ipaddress
        ca_cert = x509.load_pem_x509_certificate(self.cert.read_bytes())
        ca_key = serialization.load_pem_private_key(self.key.read_bytes(), None)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns[0] if dns else ips[0])]))
                .issuer_name(ca_cert.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=days))
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        directory.mkdir(parents=True, exist_ok=True)
        leaf = Leaf(directory / f"{name}.pem", directory / f"{name}.key")
        leaf.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + self.cert.read_bytes())
        _write_private(leaf.key, key.private_bytes(serialization.Encoding.PEM,
                                                   serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
        return leaf


def make_root(directory: Path, name: str) -> Root:
    """A new self-signed CA (P-256, two days) in `directory`: `<name>.pem`, `<name>.key` (0600)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"lp-e2e {name}")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    root = Root(directory / f"{name}.pem", directory / f"{name}.key")
    root.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(root.key, key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return root


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- certificates as seen


@dataclass
class CertInfo:
    serial: str  # hex
    not_before: float  # Unix seconds
    not_after: float
    issuer: str  # RFC 4514
    names: list[str]  # DNS names of the SAN

    def __str__(self) -> str:
        end = datetime.datetime.fromtimestamp(self.not_after, datetime.timezone.utc)
        return (f"serial {self.serial[:16]}… names {self.names} issuer {self.issuer!r} "
                f"not_after {end:%H:%M:%S}Z")


def cert_info(data: bytes) -> CertInfo:
    """The first certificate of `data` (PEM or DER)."""
    from cryptography import x509
    cert = (x509.load_pem_x509_certificate(data) if data.lstrip().startswith(b"-----")
            else x509.load_der_x509_certificate(data))
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
            .get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    return CertInfo(serial=f"{cert.serial_number:x}", not_before=cert.not_valid_before_utc.timestamp(),
                    not_after=cert.not_valid_after_utc.timestamp(), issuer=cert.issuer.rfc4514_string(),
                    names=list(names))


def served_cert(port: int, sni: str, cafile: Path | None = None, host: str = "127.0.0.1",
                timeout: float = 5.0) -> CertInfo:
    """The leaf certificate a TLS port serves for `sni`; with `cafile`, the chain must verify
    against it for that name (ssl.SSLCertVerificationError otherwise)."""
    if cafile is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx = ssl.create_default_context(cafile=str(cafile))
    with socket.create_connection((host, port), timeout=timeout) as raw, \
            ctx.wrap_socket(raw, server_hostname=sni) as s:
        return cert_info(s.getpeercert(binary_form=True))


# ---------------------------------------------------------------- STUN over a TLS stream

STUN_MAGIC = 0x2112A442


def stun_binding_over_tls(port: int, sni: str, cafile: Path | None, host: str = "127.0.0.1",
                          timeout: float = 5.0) -> dict:
    """Send a STUN Binding request (RFC 5389) over a TLS connection with `sni` to `port` and read
    the answer: {"class": "success"|"error"|…, "mapped": "ip:port"|None, "cert": CertInfo}.
    TURN over TLS frames STUN messages back to back on the stream (RFC 6062)."""
    import struct
    txid = os.urandom(12)
    request = struct.pack("!HHI", 0x0001, 0, STUN_MAGIC) + txid
    ctx = ssl.create_default_context(cafile=str(cafile)) if cafile else ssl._create_unverified_context()  # noqa: S323
    with socket.create_connection((host, port), timeout=timeout) as raw, \
            ctx.wrap_socket(raw, server_hostname=sni) as s:
        cert = cert_info(s.getpeercert(binary_form=True))
        s.sendall(request)
        head = _read_exactly(s, 20)
        mtype, length, magic = struct.unpack("!HHI", head[:8])
        body = _read_exactly(s, length)
    if magic != STUN_MAGIC or head[8:20] != txid:
        raise AssertionError(f"not a STUN answer to our request: {head.hex()}")
    klass = {0x0101: "success", 0x0111: "error"}.get(mtype, f"type {mtype:#06x}")
    mapped = None
    i = 0
    while i + 4 <= len(body):
        atype, alen = struct.unpack("!HH", body[i:i + 4])
        value = body[i + 4:i + 4 + alen]
        if atype == 0x0020 and len(value) >= 8 and value[1] == 0x01:  # XOR-MAPPED-ADDRESS, IPv4
            xport = struct.unpack("!H", value[2:4])[0] ^ (STUN_MAGIC >> 16)
            xaddr = struct.unpack("!I", value[4:8])[0] ^ STUN_MAGIC
            mapped = f"{socket.inet_ntoa(struct.pack('!I', xaddr))}:{xport}"
        i += 4 + alen + (-alen % 4)
    return {"class": klass, "mapped": mapped, "cert": cert}


def _read_exactly(s, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise AssertionError(f"the stream closed after {len(out)} of {n} bytes")
        out += chunk
    return out


def https_get(port: int, sni: str, path: str, cafile: Path, host: str = "127.0.0.1",
              timeout: float = 5.0) -> tuple[int, str]:
    """GET https://<sni>:<port><path> on `host` with `cafile` as the only trust: (status, body)."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
    # Connect to the IP, present and verify the name.
    conn.sock = ctx.wrap_socket(socket.create_connection((host, port), timeout=timeout), server_hostname=sni)
    try:
        conn.request("GET", path, headers={"Host": f"{sni}:{port}"})
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        conn.close()


# ---------------------------------------------------------------- Pebble


def _get(url: str, cafile: Path, timeout: float = 5.0) -> bytes:
    ctx = ssl.create_default_context(cafile=str(cafile))
    with urllib.request.urlopen(url, timeout=timeout, context=ctx) as r:  # noqa: S310 - loopback https
        return r.read()


class Pebble:
    """pebble-challtestsrv (DNS only, every A query answered `127.0.0.1`, no AAAA) and pebble
    (its HTTP-01 validations to `http_port`, names resolved through that DNS), each on free
    loopback ports, with a throwaway CA for Pebble's own HTTPS listeners. Both are tracked by the
    reaper and stopped by pid in `stop()`.

    `validity` is the lifetime of the certificates Pebble issues, in seconds."""

    def __init__(self, reaper: harness.Reaper, directory: Path, http_port: int,
                 validity: int = 7776000) -> None:
        why = missing()
        assert why is None, why
        self.reaper = reaper
        self.directory = directory
        self.http_port = http_port
        self.validity = validity
        directory.mkdir(parents=True, exist_ok=True)
        self.listener_root = make_root(directory, "pebble-listener-ca")
        leaf = self.listener_root.issue(directory, "pebble-listener", ["localhost"], ["127.0.0.1"])
        # What the product is told to trust for the ACME directory (`tls.acme_ca_root`).
        self.ca_pem: Path = self.listener_root.cert
        self.dns_port, self.chall_port, self.port, self.mgmt_port, self.tls_port = harness.free_ports(5)
        self.procs: list[subprocess.Popen] = []
        self.chall_log = directory / "challtestsrv.log"
        self.log_path = directory / "pebble.log"
        config = {"pebble": {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.mgmt_port}",
            "certificate": str(leaf.cert),
            "privateKey": str(leaf.key),
            "httpPort": http_port,
            # TLS-ALPN-01 is not offered by the product; a port nobody serves.
            "tlsPort": self.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
            "retryAfter": {"authz": 1, "order": 1},
            "keyAlgorithm": "ecdsa",
            "profiles": {"default": {"description": "e2e", "validityPeriod": validity}},
        }}
        self.config = directory / "pebble-config.json"
        self.config.write_text(json.dumps(config, indent=2))
        self._start()

    def _start(self) -> None:
        chall = [str(CHALLTESTSRV_BIN), "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
                 "-dnsserver", f"127.0.0.1:{self.dns_port}", "-management", f"127.0.0.1:{self.chall_port}",
                 "-http01", "", "-https01", "", "-doh", "", "-tlsalpn01", ""]
        with open(self.chall_log, "ab") as out:
            p = self.reaper.popen(chall, marker=str(CHALLTESTSRV_BIN), stdin=subprocess.DEVNULL,
                                  stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(p)
        # No authorization is ever reused (Pebble reuses a valid one half the time by default):
        # every order, renewals included, goes through an HTTP-01 validation.
        env = {"PATH": "/usr/bin:/bin", "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0",
               "PEBBLE_AUTHZREUSE": "0"}
        with open(self.log_path, "ab") as out:
            p = self.reaper.popen([str(PEBBLE_BIN), "-config", str(self.config),
                                   "-dnsserver", f"127.0.0.1:{self.dns_port}"],
                                  marker=str(self.config), stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT, env=env, cwd=self.directory)
        self.procs.append(p)
        deadline = time.monotonic() + 30
        while True:
            try:
                json.loads(_get(self.direct_directory_url, self.ca_pem))
                self._chall("/set-default-ipv4", {"ip": "127.0.0.1"})
                break
            except (OSError, ValueError):
                for p in self.procs:
                    assert p.poll() is None, f"{p.args[0]} exited {p.returncode}:\n{self.log_tail()}"
                assert time.monotonic() < deadline, f"Pebble did not come up:\n{self.log_tail()}"
                time.sleep(0.05)
        log(f"pebble on 127.0.0.1:{self.port} (pid {self.procs[1].pid}), challtestsrv DNS on "
            f"127.0.0.1:{self.dns_port} (pid {self.procs[0].pid}), HTTP-01 to port {self.http_port}, "
            f"validity {self.validity} s")

    @property
    def direct_directory_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def log_tail(self, n: int = 20) -> str:
        out = []
        for f in (self.log_path, self.chall_log):
            with contextlib.suppress(OSError):
                out.append(f"--- {f.name}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-n:]))
        return "\n".join(out)

    def roots(self) -> list[str]:
        """Pebble's issuing root and intermediate as PEM, from its management interface
        (`/roots/0`, `/intermediates/0`): the root is what a client of the product must trust."""
        base = f"https://127.0.0.1:{self.mgmt_port}"
        return [_get(f"{base}/roots/0", self.ca_pem).decode(),
                _get(f"{base}/intermediates/0", self.ca_pem).decode()]

    def write_root(self, path: Path) -> Path:
        """Pebble's issuing root (only the root) as a PEM file at `path`."""
        path.write_text(self.roots()[0])
        return path

    # -- the DNS Pebble's validation sees

    def _chall(self, path: str, body: dict) -> None:
        req = urllib.request.Request(f"http://127.0.0.1:{self.chall_port}{path}",
                                     data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:  # noqa: S310 - loopback
            assert r.status == 200, f"challtestsrv {path}: {r.status}"

    def dns_servfail(self, host: str, on: bool = True) -> None:
        """challtestsrv answers SERVFAIL for `host` (on) or normally again (off): Pebble's HTTP-01
        validation of `host` fails with a DNS problem."""
        self._chall("/set-servfail" if on else "/clear-servfail", {"host": _fqdn(host)})

    def dns_a(self, host: str, addresses: list[str] | None) -> None:
        """challtestsrv answers `addresses` for A queries of `host` (None: the default again)."""
        if addresses:
            self._chall("/add-a", {"host": _fqdn(host), "addresses": addresses})
        else:
            self._chall("/clear-a", {"host": _fqdn(host)})

    def stop(self) -> None:
        """Stop pebble and challtestsrv by pid. Pebble's CA lives in memory: it is gone."""
        for p in reversed(self.procs):
            self.reaper.stop(p.pid, self.reaper.pids.get(p.pid, ""))
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)


def _fqdn(host: str) -> str:
    return host if host.endswith(".") else host + "."


# ---------------------------------------------------------------- the gate in front of Pebble


RATE_LIMITED_PATHS = ("/order-plz", "/sign-me-up", "/finalize-order/")


class AcmeGate:
    """A loopback HTTPS reverse proxy in front of Pebble (same listener certificate, so the same
    `acme_ca_root`), the directory URL the product is given. It passes everything through
    (the client's Host header kept, so the URLs Pebble writes point back at the gate) until told
    to misbehave:

    - `down()`: the port refuses connections (the listener is closed) until `up()`;
    - `rate_limit()`: POSTs to new-account, new-order and finalize get 429 with a
      `urn:ietf:params:acme:error:rateLimited` problem and `Retry-After`, until `passthrough()`.

    `requests` records (time, method, path, status) of each request answered; `faults` counts
    the requests it refused or rate-limited."""

    def __init__(self, pebble: Pebble, retry_after: int = 60) -> None:
        self.pebble = pebble
        self.retry_after = retry_after
        self.port = harness.free_port()
        self.mode = "pass"
        self.requests: list[tuple[float, str, str, int]] = []
        self.faults = 0
        self.lock = threading.Lock()
        self.connections: set = set()
        self.server: http.server.ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None
        leaf_dir = pebble.directory
        self.server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_ctx.load_cert_chain(str(leaf_dir / "pebble-listener.pem"),
                                        str(leaf_dir / "pebble-listener.key"))
        self.upstream_ctx = ssl.create_default_context(cafile=str(pebble.ca_pem))
        self.up()

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def up(self) -> None:
        if self.server is not None:
            return
        gate = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with gate.lock:
                    gate.connections.add(self.connection)

            def finish(self) -> None:
                with gate.lock:
                    gate.connections.discard(self.connection)
                super().finish()

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if gate.mode == "rate-limited" and self.command == "POST" \
                        and self.path.startswith(RATE_LIMITED_PATHS):
                    problem = json.dumps({
                        "type": "urn:ietf:params:acme:error:rateLimited",
                        "detail": "e2e: too many certificates already issued for this name (gate)",
                        "status": 429}).encode()
                    gate._record(self.command, self.path, 429, fault=True)
                    self.send_response(429)
                    # A real CA's error answers carry a fresh nonce too: one of Pebble's.
                    nonce = gate._nonce()
                    if nonce:
                        self.send_header("Replay-Nonce", nonce)
                    self.send_header("Content-Type", "application/problem+json")
                    self.send_header("Retry-After", str(gate.retry_after))
                    self.send_header("Content-Length", str(len(problem)))
                    self.end_headers()
                    self.wfile.write(problem)
                    return
                conn = http.client.HTTPSConnection("127.0.0.1", gate.pebble.port, timeout=30,
                                                   context=gate.upstream_ctx)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("connection", "keep-alive", "transfer-encoding")}
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    r = conn.getresponse()
                    data = r.read()
                    gate._record(self.command, self.path, r.status)
                    self.send_response(r.status)
                    for k, v in r.getheaders():
                        if k.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_POST = do_HEAD = _any  # noqa: N815 - the stdlib's names

            def log_message(self, *args) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        server.socket = self.server_ctx.wrap_socket(server.socket, server_side=True,
                                                    do_handshake_on_connect=False)
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)
        self.thread.start()
        self.mode = "pass"

    def down(self) -> None:
        """The directory is down: connections to the gate's port are refused, and the ones a
        client keeps alive are cut."""
        if self.server is None:
            return
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            for conn in self.connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self.connections.clear()
        self.server = None
        self.mode = "down"

    def rate_limit(self) -> None:
        self.up()
        self.mode = "rate-limited"

    def passthrough(self) -> None:
        self.up()
        self.mode = "pass"

    def _nonce(self) -> str | None:
        conn = http.client.HTTPSConnection("127.0.0.1", self.pebble.port, timeout=10, context=self.upstream_ctx)
        try:
            conn.request("HEAD", "/nonce-plz")
            return conn.getresponse().getheader("Replay-Nonce")
        except OSError:
            return None
        finally:
            conn.close()

    def _record(self, method: str, path: str, status: int, fault: bool = False) -> None:
        with self.lock:
            self.requests.append((time.monotonic(), method, path, status))
            self.faults += fault

    def close(self) -> None:
        self.down()


# ---------------------------------------------------------------- trust: names and roots


HOSTS = Path("/etc/hosts")


@contextlib.contextmanager
def hosts_entries(names: list[str], address: str = "127.0.0.1"):
    """`<address> <name>` lines in /etc/hosts for the duration (LiveKit's Python SDK resolves
    with getaddrinfo), each marked with this process's pid; exactly those lines are removed after,
    also on failure. A lock file serialises edits with other runs of the suite."""
    marker = f"# lp-e2e {os.getpid()}"
    lines = [f"{address} {name} {marker}\n" for name in names]

    def edit(add: bool) -> None:
        with open("/run/lock/lp-e2e-hosts.lock" if Path("/run/lock").is_dir() else "/tmp/lp-e2e-hosts.lock",
                  "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            text = HOSTS.read_text()
            kept = [line for line in text.splitlines(keepends=True) if not line.rstrip().endswith(marker)]
            if kept and not kept[-1].endswith("\n"):
                kept[-1] += "\n"
            new = "".join(kept + (lines if add else []))
            # In place (same inode): /etc/hosts may be a bind mount.
            with open(HOSTS, "r+") as f:
                f.seek(0)
                f.write(new)
                f.truncate()

    edit(True)
    try:
        yield
    finally:
        edit(False)


SDK_ROOTS: Path | None = None


def sdk_trust(root_pem: Path) -> Path:
    """LiveKit's Python SDK trusts `root_pem` from its next connect on: the root is appended to
    one bundle for the whole process, which SSL_CERT_FILE names.

    Measured (livekit 1.2.1): the signal WebSocket (tokio-tungstenite over rustls with
    rustls-native-certs) reads SSL_CERT_FILE at every connect, and then trusts that file only;
    the SDK's HTTP client (reqwest, for `/rtc/v1/validate` after a failed WebSocket) loads its
    roots once per process. So one path, set once, that only ever grows: a root added later is
    trusted by the WebSocket at once (the HTTP client's diagnostics may still say UnknownIssuer)."""
    global SDK_ROOTS
    if SDK_ROOTS is None:
        import tempfile
        SDK_ROOTS = Path(tempfile.mkdtemp(prefix="lp-e2e-sdk-roots-")) / "roots.pem"
        SDK_ROOTS.write_text("")
    with open(SDK_ROOTS, "a") as f:
        f.write(root_pem.read_text())
    os.environ["SSL_CERT_FILE"] = str(SDK_ROOTS)
    return SDK_ROOTS


def nss_home(directory: Path, roots: dict[str, Path]) -> Path:
    """A HOME for one Chromium whose NSS DB (`$HOME/.pki/nssdb`) trusts `roots` (nickname → PEM)
    as issuers of server certificates (`C,,`), and nothing else of ours."""
    certutil = shutil.which("certutil")
    assert certutil, "certutil is not on PATH (apt-get install libnss3-tools)"
    home = directory / "home"
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True, exist_ok=True)
    subprocess.run([certutil, "-d", f"sql:{db}", "-N", "--empty-password"], check=True, capture_output=True)
    for nickname, pem in roots.items():
        subprocess.run([certutil, "-d", f"sql:{db}", "-A", "-t", "C,,", "-n", nickname, "-i", str(pem)],
                       check=True, capture_output=True)
    return home


# ---------------------------------------------------------------- a throwaway TLS server


@dataclass
class TlsEcho:
    """An HTTPS + WebSocket server on 127.0.0.1 (aiohttp, its own thread and loop) serving `leaf`:
    `GET /` answers `ok <name>`, `/ws` echoes text messages, any other path 404 (what an SDK sees
    of a non-LiveKit server). Records the SNI of each handshake and each request's path."""

    leaf: Leaf
    name: str = "tls-echo"
    port: int = 0
    sni: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        import asyncio
        from aiohttp import web
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.leaf.cert), str(self.leaf.key))
        ctx.sni_callback = lambda _sock, name, _ctx: self.sni.append(name)

        async def index(req):
            self.paths.append(req.path)
            return web.Response(text=f"ok {self.name}", content_type="text/html")

        async def ws(req):
            self.paths.append(req.path)
            sock = web.WebSocketResponse()
            await sock.prepare(req)
            async for msg in sock:
                if msg.type == web.WSMsgType.TEXT:
                    await sock.send_str(f"echo {msg.data}")
            return sock

        async def other(req):
            self.paths.append(req.path)
            return web.Response(status=404, text="not here")

        app = web.Application()
        app.router.add_get("/", index)
        app.router.add_get("/ws", ws)
        app.router.add_route("*", "/{tail:.*}", other)
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", self.port, ssl_context=ctx)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        import asyncio
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


# ---------------------------------------------------------------- a stand-in front


class StandInFront:
    """Not the product: a TLS terminator on 127.0.0.1:<port 0> that picks its certificate and its
    upstream by SNI (`routes`: name → (Leaf, upstream TCP port); any other name or none → the
    `default` name's), then pipes bytes both ways. It exists to check the harness's probes and
    clients against the real livekit-server before the product's front does the same."""

    def __init__(self, routes: dict[str, tuple[Leaf, int]], default: str) -> None:
        import asyncio
        self.routes = routes
        self.default = default
        self.contexts = {}
        for name, (leaf, _port) in routes.items():
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(leaf.cert), str(leaf.key))
            self.contexts[name] = ctx
        self.chosen: dict[int, str] = {}
        base = self.contexts[default]

        def pick(sslobj, name, _ctx):
            route = name if name in self.contexts else default
            sslobj.context = self.contexts[route]
            self.chosen[id(sslobj)] = route

        base.sni_callback = pick
        self.loop = asyncio.new_event_loop()
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=base))
        self.port = self.server.sockets[0].getsockname()[1]
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def _serve(self, reader, writer) -> None:
        import asyncio
        sslobj = writer.get_extra_info("ssl_object")
        route = self.chosen.pop(id(sslobj), self.default)
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.routes[route][1])
        except OSError:
            writer.close()
            return

        async def pipe(r, w) -> None:
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except (OSError, ConnectionError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    w.close()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

    def close(self) -> None:
        import asyncio

        async def stop() -> None:
            self.server.close()
            await self.server.wait_closed()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
