"""Newcomers in a process of their own: reads `<url> <token> <identity>` lines on stdin, joins
with each (LiveKit's Python SDK, the harness's loopback ICE), leaves, and prints one JSON line
`{"joined": bool, "error": str, "seconds": float}` per request.

A scenario that measures gaps in fresh audio must not let a stream of joins share its own
event loop: a join's work would stall the receiver and show as a gap that is not on the wire.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import harness


async def main() -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        url, token, identity = line.split()
        p = harness.Participant(identity)
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(p.connect(url, token), 20)
            result = {"joined": True, "error": ""}
        except Exception as e:  # noqa: BLE001 - the SDK raises ConnectError; any failure is "refused"
            result = {"joined": False, "error": str(e)}
        finally:
            await p.disconnect()
        result["seconds"] = time.monotonic() - t0
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
