"""A real browser in the call: headless Chromium (Debian's, never downloaded) driving LiveKit's
JavaScript SDK `livekit-client` on a page served from loopback, over the DevTools protocol
directly (aiohttp, which livekit-api already brings; no playwright, no puppeteer).

- `PageServer` serves e2e/browser/page.html, page.js and the SDK's UMD bundle from
  e2e/browser/node_modules (`npm ci` there) on http://127.0.0.1:<port 0>: a secure context, so
  getUserMedia works without TLS.
- `tone_wav` writes the harness's symbol tone as the fake microphone, so the Python receiver's
  fresh-audio decoder hears the browser unchanged.
- `Chromium` starts the browser in its own process group (recorded in the Reaper, stopped by pid
  with its whole group), opens the page and evaluates the page's `e2e.*` functions.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import wave
from pathlib import Path

import aiohttp
import numpy as np

import harness
from harness import log

BROWSER_DIR = harness.ROOT / "e2e" / "browser"
UMD = BROWSER_DIR / "node_modules" / "livekit-client" / "dist" / "livekit-client.umd.js"
CHROMIUM = Path(os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium"))

# Nothing here may reach the internet (and a closed network stalls a browser waiting on it): the
# background-networking flags turn off what Chromium fetches by itself, and the resolver rule
# answers every host name "not found" without asking DNS (Debian's wrapper still enables remote
# extensions and Google API keys, whose services look names up): the page and the node are IP
# literals on loopback. The throttling flags keep the page's stats timer on time whatever
# Chromium thinks of the page's visibility.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--remote-debugging-port=0",
]


def resolver_rules(resolve: dict[str, str] | None = None) -> str:
    """`--host-resolver-rules`: each pattern of `resolve` (e.g. `*.test`) to its address, every
    other name "not found", IP literals as they are. Chromium applies the first rule that
    matches."""
    rules = [f"MAP {pattern} {address}" for pattern, address in (resolve or {}).items()]
    return "--host-resolver-rules=" + " , ".join([*rules, "MAP * ~NOTFOUND", "EXCLUDE 127.0.0.1"])


def missing() -> str | None:
    """Why the browser scenarios cannot run here (what is missing and how to get it), or None."""
    if not os.access(CHROMIUM, os.X_OK):
        return (f"no Chromium at {CHROMIUM} (apt-get install chromium, or point E2E_CHROMIUM at a "
                f"Chromium binary)")
    if not UMD.is_file():
        return (f"livekit-client is not installed: {UMD} is missing "
                f"(run `npm ci --no-audit --no-fund` in {BROWSER_DIR})")
    return None


# ---------------------------------------------------------------- the fake microphone


def tone_wav(path: Path, periods: int = 10) -> Path:
    """The harness's symbol tone as a WAV (48 kHz, mono, 16-bit) of a whole number of 32-symbol
    periods: every symbol's frequency is a multiple of 1/0.64 s, so the phase and the counter
    both come back to their start at the end and Chromium's loop of the file is seamless."""
    frames_per_period = harness.SYMBOLS * harness.SYMBOL_FRAMES
    samples = np.concatenate([
        np.frombuffer(harness.tone_frame(i).data, dtype=np.int16)
        for i in range(periods * frames_per_period)
    ])
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(harness.RATE)
        w.writeframes(samples.tobytes())
    return path


# ---------------------------------------------------------------- the page


class PageServer:
    """page.html, page.js and the SDK's UMD bundle on loopback (port 0, its own thread); any
    other path is a 404."""

    FILES = {
        "/": (BROWSER_DIR / "page.html", "text/html; charset=utf-8"),
        "/page.html": (BROWSER_DIR / "page.html", "text/html; charset=utf-8"),
        "/page.js": (BROWSER_DIR / "page.js", "text/javascript; charset=utf-8"),
        "/livekit-client.umd.js": (UMD, "text/javascript; charset=utf-8"),
    }

    def __init__(self) -> None:
        files = self.FILES

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                entry = files.get(self.path.split("?", 1)[0])
                if entry is None:
                    self.send_error(404)
                    return
                body = entry[0].read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", entry[1])
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/page.html"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------- Chromium over DevTools


class BrowserError(AssertionError):
    pass


class Chromium:
    """One headless Chromium with one page, driven over the DevTools protocol (one WebSocket to
    the browser endpoint, a flat session for the page). Console messages and exceptions of the
    page go to the test log and to `console`."""

    def __init__(self, reaper: harness.Reaper, directory: Path, wav: Path, *, home: Path | None = None,
                 resolve: dict[str, str] | None = None) -> None:
        """`home`: the HOME Chromium runs with (its NSS DB, `$HOME/.pki/nssdb`, is the trust
        store for the roots a test adds, see `acme.nss_home`); `resolve`: host patterns mapped to
        addresses (`{"*.test": "127.0.0.1"}`), every other name still resolves to nothing."""
        self.home = home
        self.resolve = resolve
        self.reaper = reaper
        self.directory = directory
        self.wav = wav
        self.profile = Path(tempfile.mkdtemp(prefix="lp-e2e-chromium-", dir=directory))
        self.log_path = directory / "chromium.log"
        self.proc: subprocess.Popen | None = None
        self.http: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.session: str | None = None
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future] = {}
        self.console: list[str] = []
        self.reader: asyncio.Task | None = None

    async def __aenter__(self) -> Chromium:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # -- process

    async def start(self, timeout: float = 60.0) -> None:
        args = [str(CHROMIUM), *FLAGS, resolver_rules(self.resolve), f"--user-data-dir={self.profile}",
                f"--use-file-for-fake-audio-capture={self.wav}", "about:blank"]
        logf = open(self.log_path, "wb")  # noqa: SIM115 - closed with the process
        # Its own process group: Chromium's zygote, renderer and utility processes go with it.
        env = None if self.home is None else {**os.environ, "HOME": str(self.home)}
        self.proc = self.reaper.popen(args, marker=str(self.profile), group=True,
                                      stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                      start_new_session=True, env=env)
        logf.close()
        endpoint = await asyncio.to_thread(self._endpoint, timeout)
        log(f"chromium pid {self.proc.pid}: {endpoint}")
        self.http = aiohttp.ClientSession()
        self.ws = await self.http.ws_connect(endpoint, max_msg_size=0, timeout=aiohttp.ClientWSTimeout(ws_close=5))
        self.reader = asyncio.ensure_future(self._read())

    def _endpoint(self, timeout: float) -> str:
        """The `DevTools listening on ws://…` line of Chromium's stderr."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            m = re.search(r"DevTools listening on (ws://\S+)", text)
            if m:
                return m.group(1)
            if self.proc.poll() is not None:
                raise BrowserError(f"chromium exited {self.proc.returncode} before DevTools listened:\n"
                                   f"{self.log_tail()}")
            time.sleep(0.05)
        raise BrowserError(f"chromium did not open DevTools within {timeout} s:\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return ""

    async def close(self) -> None:
        if self.reader:
            self.reader.cancel()
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self.http is not None:
            await self.http.close()
        if self.proc is not None:
            await asyncio.to_thread(self.reaper.stop, self.proc.pid, str(self.profile))
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        shutil.rmtree(self.profile, ignore_errors=True)

    # -- protocol

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            if "id" in data:
                fut = self.pending.pop(data["id"], None)
                if fut and not fut.done():
                    fut.set_result(data)
            else:
                self._event(data.get("method", ""), data.get("params", {}))
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(BrowserError(f"the DevTools connection closed:\n{self.log_tail()}"))

    def _event(self, method: str, params: dict) -> None:
        line = None
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", a.get("type"))))
                            for a in params.get("args", []))
            line = f"console.{params.get('type')}: {text}"
        elif method == "Runtime.exceptionThrown":
            d = params.get("exceptionDetails", {})
            line = f"exception: {d.get('exception', {}).get('description') or d.get('text')}"
        elif method == "Log.entryAdded":
            e = params.get("entry", {})
            line = f"log.{e.get('level')}: {e.get('text')} {e.get('url', '')}".rstrip()
        if line is not None:
            self.console.append(line)
            log(f"browser {line[:300]}")

    async def send(self, method: str, params: dict | None = None, *, session: bool = True,
                   timeout: float = 30.0) -> dict:
        msg_id = next(self.ids)
        msg = {"id": msg_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        fut = asyncio.get_running_loop().create_future()
        self.pending[msg_id] = fut
        await self.ws.send_str(json.dumps(msg))
        try:
            reply = await asyncio.wait_for(fut, timeout)
        finally:
            self.pending.pop(msg_id, None)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    async def open(self, url: str, ready: str = "complete:object") -> None:
        """A new page at `url`, with console and exceptions reported; returns once it loaded
        (`ready`: the page's `readyState:typeof window.e2e`; "complete:undefined" for a page
        that is not ours)."""
        target = await self.send("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = await self.send("Target.attachToTarget",
                                   {"targetId": target["targetId"], "flatten": True}, session=False)
        self.session = attached["sessionId"]
        await self.send("Runtime.enable")
        await self.send("Log.enable")
        await self.send("Page.enable")
        nav = await self.send("Page.navigate", {"url": url})
        if nav.get("errorText"):
            # A failed navigation (net::ERR_CERT_AUTHORITY_INVALID, net::ERR_NAME_NOT_RESOLVED…).
            raise BrowserError(f"navigating to {url}: {nav['errorText']}")
        deadline = time.monotonic() + 30
        while await self.evaluate("document.readyState + ':' + (typeof window.e2e)") != ready:
            if time.monotonic() > deadline:
                raise BrowserError(f"the page at {url} did not load (console: {self.console[-10:]})")
            await asyncio.sleep(0.05)

    async def evaluate(self, expression: str, timeout: float = 30.0):
        """The value of `expression` in the page (awaited if it is a promise), as JSON."""
        result = await self.send("Runtime.evaluate",
                                 {"expression": expression, "awaitPromise": True, "returnByValue": True},
                                 timeout=timeout)
        if "exceptionDetails" in result:
            d = result["exceptionDetails"]
            raise BrowserError(f"{expression[:80]}: "
                               f"{d.get('exception', {}).get('description') or d.get('text')}")
        return result["result"].get("value")

    async def call(self, function: str, *args, timeout: float = 30.0):
        """`await e2e.<function>(...args)` in the page."""
        return await self.evaluate(f"e2e.{function}(...{json.dumps(list(args))})", timeout=timeout)


