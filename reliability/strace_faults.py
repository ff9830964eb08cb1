#!/usr/bin/env python3
"""System-call fault injection: make the Nth write/fsync/rename/... of `livekit-provision ensure`
fail (strace -e inject=SYSCALL:error=ERRNO:when=N) and check that the run ends in a clear error
with the previous state intact, for every N.

Scenarios (the same as the kill harness): first (fresh node), rerender (provision.yaml changed),
upgrade (LIVEKIT_VERSION 1.0.0 -> 1.1.0 from a file:// mirror). For each, a clean traced run
counts the calls of each syscall (writes: of the main thread); then every index 1..min(count, --max-index) is faulted with:
  write: ENOSPC, EIO   fsync: ENOSPC, EIO   rename, renameat: EXDEV, EACCES   symlink: ENOSPC
After each faulted run:
  - it exited 0 or 1, never a panic or a signal; on exit 1 stderr has an `error:` line;
  - secrets.json parses and (rerender/upgrade) still holds the original pair;
  - the fixed paths are all absent or all resolve, agree, and (rerender/upgrade) are
    byte-for-byte the old set or the new set; bin/livekit-server is the old or the new binary;
  - the next clean `ensure` exits 0 and converges (dry run exits 0), keeping the stored pair.

Usage: reliability/strace_faults.py [--max-index N] [--scenario NAME]...
Prints one line per scenario/fault and `N passed, M failed` at the end (exit 1 on failure).
"""

import argparse
import re
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lkp  # noqa: E402
from kill_harness import Scenario  # noqa: E402

STRACE = shutil.which("strace") or "/usr/bin/strace"
FAULTS = {
    "write": ["ENOSPC", "EIO"],
    "fsync": ["ENOSPC", "EIO"],
    "rename": ["EXDEV", "EACCES"],
    "renameat": ["EXDEV", "EACCES"],
    "symlink": ["ENOSPC"],
}


def count_calls(sc):
    """How many times the scenario's ensure makes each faulted syscall (all processes)."""
    state = sc.fresh("count")
    log = os.path.join(sc.work, "count.trace")
    subprocess.run(
        [STRACE, "-f", "-qq", "-o", log, "-e", "trace=" + ",".join(FAULTS),
         lkp.CLI, "--state-dir", state, *sc.args],
        env=sc.env, stdin=subprocess.DEVNULL, capture_output=True, check=True,
    )
    counts = Counter()
    main_pid = None
    with open(log) as f:
        for line in f:
            call = parse_trace_line(line)
            if call is None:
                continue
            pid, name = call
            main_pid = main_pid or pid
            # Writes are faulted in the main thread only (see faulted_run): count those.
            if name in FAULTS and (name != "write" or pid == main_pid):
                counts[name] += 1
    shutil.rmtree(state)
    return counts


# One line of `strace -f -o FILE`: the pid column, padded with spaces to a width that depends
# on the pid (`5405  fsync(3) = 0`, `12  write(...)`), or `[pid  N] ` on a terminal, then the call.
# Continuations (`<... write resumed>`) and signal/exit lines are not calls.
# Without -f there is no pid column at all.
TRACE_LINE = re.compile(r"^\s*(?:(?:\[pid\s+)?(\d+)\]?\s+)?([a-z_][a-z0-9_]*)\(")


def parse_trace_line(line):
    """(pid, syscall name) of a traced call line (pid "" when strace printed none), or None
    for anything else."""
    m = TRACE_LINE.match(line)
    return (m.group(1) or "", m.group(2)) if m else None


def faulted_run(sc, syscall, errno, n):
    """One faulted run; returns (outcome label, None) or (None, failure message)."""
    state = sc.fresh(f"{syscall}-{errno}-{n}")
    log = os.path.join(sc.work, "fault.trace")
    # strace counts `when` per thread. Tokio's worker threads wake each other by writing an
    # eventfd; faulting that write (not a disk write; it cannot fail so in reality) makes tokio
    # panic in a worker and the run hang. So the Nth write is faulted in the main thread only,
    # except N = 1, which with -f also faults every thread's first write: the one write of the
    # extracted binary, which runs on a worker thread.
    follow = ["-f"] if syscall != "write" or n == 1 else []
    try:
        out = run_traced(state, log, follow, syscall, errno, n, sc)
    except subprocess.TimeoutExpired:
        return None, f"hung for 60 s (state kept in {state})"
    with open(log) as f:
        injected = "(INJECTED)" in f.read()
    code = out.returncode
    try:
        if "panicked" in out.stderr or code not in (0, 1):
            raise lkp.Broken(f"exit {code}: {out.stderr.strip()[-400:]}")
        if code == 1 and "error:" not in out.stderr:
            raise lkp.Broken(f"exit 1 without an error: line: {out.stderr.strip()[-400:]}")
        seen = sc.check(state)  # consistency now, then the clean rerun converges
        if code == 0 and ("set0" in seen or "absent" in seen or "bin1.0.0" in seen):
            raise lkp.Broken(f"exit 0 but the node was left at {seen}")
    except (lkp.Broken, subprocess.TimeoutExpired) as e:
        return None, f"{e} (state kept in {state})"
    shutil.rmtree(state)
    if not injected:
        return "not-reached", None
    return ("error:" if code == 1 else "ok:") + seen, None


def run_traced(state, log, follow, syscall, errno, n, sc):
    return subprocess.run(
        [STRACE, *follow, "-qq", "-o", log, "-e", f"trace={syscall}",
         "-e", f"inject={syscall}:error={errno}:when={n}",
         lkp.CLI, "--state-dir", state, *sc.args],
        env=sc.env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--max-index", type=int, default=60, help="highest call index faulted (default 60)")
    ap.add_argument("--scenario", choices=["first", "rerender", "upgrade"], action="append")
    a = ap.parse_args()
    passed = failed = 0
    calls_seen = Counter()
    injected = Counter()
    work = tempfile.mkdtemp(prefix="lkp-strace-")
    url = lkp.make_mirror(os.path.join(work, "mirror"), ["1.0.0", "1.1.0"])
    for name in a.scenario or ["first", "rerender", "upgrade"]:
        sc = Scenario(name, work, url)
        counts = count_calls(sc)
        print(f"{name}: traced calls {dict(sorted(counts.items()))}", flush=True)
        calls_seen.update(counts)
        for syscall, errnos in FAULTS.items():
            top = min(counts[syscall], a.max_index)
            for errno in errnos:
                outcomes = defaultdict(int)
                p = f = 0
                for n in range(1, top + 1):
                    label, problem = faulted_run(sc, syscall, errno, n)
                    if problem:
                        f += 1
                        print(f"  FAIL {name} {syscall}={errno} call #{n}: {problem}", flush=True)
                    else:
                        p += 1
                        outcomes[label] += 1
                        if label != "not-reached":
                            injected[f"{syscall}:{errno}"] += 1
                passed += p
                failed += f
                print(
                    f"{name} {syscall}:{errno}: calls 1..{top} of {counts[syscall]}: "
                    f"{dict(sorted(outcomes.items()))}; {p} passed, {f} failed",
                    flush=True,
                )
    if not failed:
        shutil.rmtree(work)
    # Every fault listed must have been injected at least once: a parser that sees no calls,
    # or a scenario that makes none, is a harness that tested nothing.
    covered = {f"{sc}:{e} faults injected": injected[f"{sc}:{e}"] for sc, es in FAULTS.items() for e in es}
    print(f"traced calls over all scenarios: {dict(sorted(calls_seen.items()))}; "
          f"faults injected: {sum(injected.values())}")
    return lkp.finish(passed, failed, covered)


if __name__ == "__main__":
    sys.exit(main())
