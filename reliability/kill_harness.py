#!/usr/bin/env python3
"""Kill harness: SIGKILL `livekit-provision ensure` at random moments and check what it left.

Three scenarios, COUNT kills each (default 200):
  first    a fresh node: mint, store, write the three files;
  rerender a converged node whose provision.yaml changed (port 7880 -> 7890);
  upgrade  a converged node with livekit-server 1.0.0 installed from a file:// mirror whose
           LIVEKIT_VERSION was changed to 1.1.0 (download, verify, switch bin/, re-render).

Each run is killed after a delay drawn uniformly from [0, 1.2 x the median unkilled run time],
so kills land everywhere from process start to exit. After every kill:
  - secrets.json parses; in rerender/upgrade it still holds the original pair;
  - the three fixed paths all resolve or none does; when they do they agree with each other
    and with the store, and (rerender/upgrade) are byte-for-byte the old set or the new set;
  - (upgrade) bin/livekit-server is byte-for-byte the 1.0.0 or the 1.1.0 stand-in;
  - the next, unkilled `ensure` exits 0, converges (a dry run after it exits 0), and keeps the
    pair that was stored when the kill happened.

Usage: reliability/kill_harness.py [--count N] [--scenario first|rerender|upgrade] [--seed S]
Prints one line per scenario and `N passed, M failed` at the end (exit 1 on any failure).
"""

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lkp  # noqa: E402


class Scenario:
    def __init__(self, name, work, mirror_url):
        self.name = name
        self.work = work
        self.url = mirror_url
        self.template = os.path.join(work, f"template-{name}")
        self.home = os.path.join(work, "home")
        os.makedirs(self.home, exist_ok=True)
        self.env = lkp.clean_env(self.home)
        self.before_pair = None
        self.sets = None
        self.binaries = None
        self.args = ["ensure"]
        if name == "upgrade":
            self.args = ["ensure", "--release-url", self.url]
        self._prepare()

    def _prepare(self):
        t = self.template
        if self.name == "first":
            os.makedirs(t)
            return
        if self.name == "upgrade":
            lkp.cli(t, ["secrets", "set", "LIVEKIT_VERSION", "1.0.0"], self.env)
        lkp.cli(t, self.args, self.env)
        old = lkp.read_fixed(t)
        old_bin = lkp.binary_version(t)
        st = lkp.store(t)
        self.before_pair = (st["LIVEKIT_API_KEY"], st["LIVEKIT_API_SECRET"])
        self.change(t)
        ref = os.path.join(self.work, f"reference-{self.name}")
        lkp.copytree(t, ref)
        lkp.cli(ref, self.args, self.env)
        new = lkp.read_fixed(ref)
        assert old != new, "the input change must change the files"
        self.sets = [old, new]
        if self.name == "upgrade":
            new_bin = lkp.binary_version(ref)
            assert old_bin != new_bin
            self.binaries = {old_bin: "1.0.0", new_bin: "1.1.0"}

    def change(self, state):
        if self.name == "rerender":
            with open(os.path.join(state, "provision.yaml"), "w") as f:
                f.write("port: 7890\n")
        elif self.name == "upgrade":
            lkp.cli(state, ["secrets", "set", "LIVEKIT_VERSION", "1.1.0"], self.env)

    def fresh(self, i):
        state = os.path.join(self.work, f"run-{self.name}-{i}")
        lkp.copytree(self.template, state)
        return state

    def spawn(self, state):
        return subprocess.Popen(
            [lkp.CLI, "--state-dir", state, *self.args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def check(self, state):
        """Check after a kill; returns a label of what a reader sees."""
        label = lkp.check_state(state, self.before_pair, self.sets)
        if self.binaries is not None:
            b = lkp.binary_version(state)
            if b not in self.binaries:
                raise lkp.Broken("bin/livekit-server is neither the old binary nor the new one")
            label += f"/bin{self.binaries[b]}"
        st = lkp.store(state)
        stored = (st.get("LIVEKIT_API_KEY"), st.get("LIVEKIT_API_SECRET"))
        # Converge: the next run completes, a dry run then has nothing to do, pair unchanged.
        lkp.cli(state, self.args, self.env)
        dry = lkp.cli(state, [*self.args, "--dry-run"], self.env, check=False)
        if dry.returncode != 0:
            raise lkp.Broken(f"not converged after a rerun: dry run exited {dry.returncode}")
        lkp.check_state(state, None, self.sets[1:] if self.sets else None)
        st2 = lkp.store(state)
        for name, value in zip(("LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"), stored):
            if value is not None and st2.get(name) != value:
                raise lkp.Broken(f"the rerun changed the stored {name}")
        if self.binaries is not None and self.binaries.get(lkp.binary_version(state)) != "1.1.0":
            raise lkp.Broken("the rerun did not install 1.1.0")
        return label


def median_duration(sc, n=7):
    times = []
    for i in range(n):
        state = sc.fresh(f"timing{i}")
        start = time.monotonic()
        p = sc.spawn(state)
        if p.wait() != 0:
            raise SystemExit(f"{sc.name}: an unkilled run failed")
        times.append(time.monotonic() - start)
    return statistics.median(times)


def run(sc, count, rng):
    span = median_duration(sc) * 1.2
    passed = failed = killed = 0
    seen = Counter()
    for i in range(count):
        state = sc.fresh(i)
        p = sc.spawn(state)
        time.sleep(rng.uniform(0, span))
        try:
            os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        code = p.wait()
        if code == -signal.SIGKILL:
            killed += 1
        try:
            seen[sc.check(state)] += 1
            passed += 1
        except (lkp.Broken, subprocess.TimeoutExpired) as e:
            failed += 1
            print(f"  FAIL {sc.name} #{i} (kept {state}): {e}", flush=True)
            continue
        lkp.shutil.rmtree(state)
    print(
        f"{sc.name}: {count} runs, {killed} killed mid-run (others finished first), "
        f"window {span * 1000:.0f} ms; reader saw {dict(sorted(seen.items()))}; "
        f"{passed} passed, {failed} failed",
        flush=True,
    )
    return passed, failed, killed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=200, help="kills per scenario (default 200)")
    ap.add_argument("--scenario", choices=["first", "rerender", "upgrade"], action="append")
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"kill harness: seed {seed}, binary {lkp.CLI}", flush=True)
    total_p = total_f = 0
    killed = {}
    with tempfile.TemporaryDirectory(prefix="lkp-kill-") as work:
        url = lkp.make_mirror(os.path.join(work, "mirror"), ["1.0.0", "1.1.0"])
        for name in a.scenario or ["first", "rerender", "upgrade"]:
            p, f, k = run(Scenario(name, work, url), a.count, rng)
            total_p += p
            total_f += f
            killed[f"{name}: kills landed mid-run"] = k
        if total_f:
            # Keep the failing state directories for inspection.
            kept = work + "-failed"
            lkp.shutil.copytree(work, kept, symlinks=True)
            print(f"failing state directories copied to {kept}")
    # Runs that all finished before their kill proved nothing about a kill mid-run: counted per
    # scenario, so one scenario whose kills all came late fails on its own.
    return lkp.finish(total_p, total_f, killed)


if __name__ == "__main__":
    sys.exit(main())
