"""Shared helpers of the reliability harnesses: run the binaries, read a state directory,
check the invariants of docs/DESIGN.md on what a killed or faulted run left behind.

Only the standard library: every harness runs with a plain `python3`.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN_DIR = os.environ.get("LKP_BIN_DIR", os.path.join(ROOT, "target", "debug"))
CLI = os.path.join(BIN_DIR, "livekit-provision")
DAEMON = os.path.join(BIN_DIR, "livekit-provision-daemon")
FIXED = ("livekit.yaml", "backend.env", "runtime.json")


class Broken(Exception):
    """An invariant does not hold; the message says which and where."""


def clean_env(home):
    """A clean environment: PATH kept, HOME inside the work dir, nothing LIVEKIT_*."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home}


def cli(state, args, env, check=True, timeout=60):
    """Run `livekit-provision --state-dir STATE ARGS` to completion."""
    out = subprocess.run(
        [CLI, "--state-dir", state, *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and out.returncode != 0:
        raise Broken(f"{' '.join(args)} exited {out.returncode}: {out.stderr.strip()}")
    return out


def read_fixed(state):
    """The bytes each fixed path shows (None when it does not resolve to a file), with the
    state directory's own path replaced by `<STATE>`."""
    shown = {}
    for name in FIXED:
        try:
            with open(os.path.join(state, name), "rb") as f:
                # backend.env names the state directory (SQLITE_PATH); the harness copies
                # state directories, so that path is masked to compare copies alike.
                shown[name] = re.sub(
                    rb"SQLITE_PATH=\S*/data/", b"SQLITE_PATH=<STATE>/data/", f.read()
                )
        except FileNotFoundError:
            shown[name] = None
    return shown


def store(state):
    """The file store as a dict ({} when absent); Broken when unparsable."""
    path = os.path.join(state, "secrets.json")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return {}
    try:
        value = json.loads(data)
    except ValueError as e:
        raise Broken(f"secrets.json is torn or corrupt: {e}") from e
    if not isinstance(value, dict):
        raise Broken("secrets.json is not an object")
    return value


def pair_of(shown):
    """The (key, secret) the three files name; Broken unless complete and in agreement."""
    yaml = shown["livekit.yaml"].decode()
    env = shown["backend.env"].decode()
    try:
        runtime = json.loads(shown["runtime.json"])
    except ValueError as e:
        raise Broken(f"runtime.json is torn: {e}") from e
    keys_block = re.search(r"^keys:\n((?:  .*\n)+)", yaml, re.M)
    if not keys_block or "\nlogging:\n" not in yaml or not yaml.endswith("\n"):
        raise Broken("livekit.yaml is torn (no keys: block or no logging: section)")
    entries = re.findall(r'^  "([^"]+)": "([^"]+)"$', keys_block.group(1), re.M)
    env_vars = dict(l.split("=", 1) for l in env.splitlines() if "=" in l and not l.startswith("#"))
    if "SQLITE_PATH" not in env_vars:
        raise Broken("backend.env is torn (no SQLITE_PATH)")
    from_env = (env_vars.get("LIVEKIT_API_KEY"), env_vars.get("LIVEKIT_API_SECRET"))
    from_runtime = (runtime.get("api_key"), runtime.get("api_secret"))
    if len(entries) != 1 or tuple(entries[0]) != from_env or from_env != from_runtime:
        raise Broken(f"the files disagree: yaml {len(entries)} key(s), env key {from_env[0]}, runtime key {from_runtime[0]}")
    return from_env


def check_state(state, before_pair=None, allowed_sets=None):
    """Check what a killed/faulted run left: returns a short label of what a reader sees
    ("absent", or the index in allowed_sets, or "consistent").

    - the store parses (never torn); if before_pair is set, the store still holds it;
    - the fixed paths all resolve or none does; if all do, they agree with each other and
      with the store;
    - if allowed_sets is given, the three files are byte-for-byte one of those sets.
    """
    st = store(state)
    stored = (st.get("LIVEKIT_API_KEY"), st.get("LIVEKIT_API_SECRET"))
    if before_pair is not None and stored != tuple(before_pair):
        raise Broken(f"the stored pair changed: key {before_pair[0]} -> {stored[0]}")
    shown = read_fixed(state)
    present = [n for n in FIXED if shown[n] is not None]
    if not present:
        if allowed_sets and None not in allowed_sets:
            raise Broken("the fixed paths vanished")
        return "absent"
    if len(present) != len(FIXED):
        raise Broken(f"only {present} resolve")
    pair = pair_of(shown)
    if pair != stored:
        raise Broken(f"the files name key {pair[0]} but the store holds {stored[0]}")
    if allowed_sets:
        for i, s in enumerate(allowed_sets):
            if s is not None and all(shown[n] == s[n] for n in FIXED):
                return f"set{i}"
        raise Broken("the files are neither the old set nor the new one")
    return "consistent"


def copytree(src, dst):
    shutil.copytree(src, dst, symlinks=True)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def stand_in_script(version):
    return (
        "#!/bin/sh\n# stand-in for livekit-server (harness only)\n"
        f'if [ "$1" = "--version" ]; then echo "livekit-server version {version}"; fi\n'
    ).encode()


def asset_arch():
    return {"aarch64": "arm64", "armv7l": "armv7"}.get(os.uname().machine, "amd64")


def make_mirror(root, versions):
    """A file:// mirror: <root>/v<ver>/livekit_<ver>_linux_<arch>.tar.gz + checksums.txt,
    built with tar, gzip and sha256sum as a release would be."""
    for ver in versions:
        d = os.path.join(root, f"v{ver}")
        os.makedirs(d, exist_ok=True)
        work = os.path.join(root, f".build-{ver}")
        os.makedirs(work, exist_ok=True)
        with open(os.path.join(work, "livekit-server"), "wb") as f:
            f.write(stand_in_script(ver))
        os.chmod(os.path.join(work, "livekit-server"), 0o755)
        with open(os.path.join(work, "LICENSE"), "w") as f:
            f.write("Apache License 2.0 (harness copy)\n")
        name = f"livekit_{ver}_linux_{asset_arch()}.tar.gz"
        subprocess.run(
            f"tar -C '{work}' -cf - livekit-server LICENSE | gzip -n > '{d}/{name}' && "
            f"cd '{d}' && sha256sum '{name}' > checksums.txt",
            shell=True,
            check=True,
        )
        shutil.rmtree(work)
    return "file://" + root


def binary_version(state):
    """What bin/livekit-server is (its sha256), or None when missing."""
    path = os.path.join(state, "bin", "livekit-server")
    try:
        with open(path, "rb") as f:
            return sha256(f.read())
    except FileNotFoundError:
        return None


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def finish(passed, failed, covered):
    """Print what a harness exercised and its `N passed, M failed` line; return its exit code.

    Fails closed: a harness that exercised nothing has failed. `covered` maps what was
    exercised (e.g. "kills landed", "faults injected", "requests sent") to a count; every
    count must be above zero, and so must `passed + failed`."""
    empty = [what for what, n in covered.items() if n <= 0]
    print("covered: " + ", ".join(f"{what} {n}" for what, n in covered.items()))
    if passed + failed == 0:
        empty.append("checks run")
    for what in empty:
        print(f"  FAIL exercised nothing: 0 {what}")
    print(f"{passed} passed, {failed + len(empty)} failed")
    return 1 if failed or empty else 0
