#!/usr/bin/env python3
"""Offline advisory check: every package of Cargo.lock against a RustSec advisory-db snapshot.

The same check `cargo audit --db "$ADVISORY_DB" --no-fetch` makes, for machines where
cargo-audit is not installed: for each `crates/<name>/RUSTSEC-*.md` whose package is in
Cargo.lock, a locked version is affected unless it matches a `versions.patched` or
`versions.unaffected` requirement. Withdrawn advisories are skipped. Informational advisories
(unmaintained, unsound, notice) are listed as warnings. An advisory listed in `deny.toml`'s
`[advisories] ignore` (with its reason) is reported as accepted, not as a failure.

Usage: reliability/advisories.py [--db DIR] [--lock Cargo.lock] [--deny deny.toml]
The database is a clone of https://github.com/rustsec/advisory-db: --db, else $ADVISORY_DB,
else ~/.cargo/advisory-db (where cargo-audit keeps its copy).
Prints each finding and `N passed, M failed` (packages) at the end; exit 1 on an unaccepted
vulnerability.
"""

import argparse
import glob
import os
import re
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_version(text):
    """(major, minor, patch, is_release, pre) — pre-releases sort before their release."""
    text = text.strip().split("+", 1)[0]
    core, _, pre = text.partition("-")
    parts = [int(p) for p in core.split(".")]
    while len(parts) < 3:
        parts.append(0)
    return (parts[0], parts[1], parts[2], 0 if pre else 1, pre)


def matches(version, requirement):
    """Does `version` satisfy a Cargo-style requirement such as ">= 1.2.3, < 2"?"""
    v = parse_version(version)
    for comp in requirement.split(","):
        comp = comp.strip()
        m = re.match(r"^(>=|<=|>|<|=|\^|~)?\s*([0-9][0-9A-Za-z.+-]*)$", comp)
        if not m:
            raise ValueError(f"cannot parse requirement {comp!r}")
        op, ver = m.group(1) or "^", m.group(2)
        given = len(ver.split("-")[0].split("."))
        r = parse_version(ver)
        if op == ">=" and not v >= r:
            return False
        if op == ">" and not v > r:
            return False
        if op == "<=" and not v <= r:
            return False
        if op == "<" and not v < r:
            return False
        if op == "=" and v[:3] != r[:3]:
            return False
        if op in ("^", "~"):
            if v < r:
                return False
            if op == "~":
                upper = (r[0] + 1, 0, 0) if given == 1 else (r[0], r[1] + 1, 0)
            elif r[0] > 0 or given == 1:
                upper = (r[0] + 1, 0, 0)
            elif r[1] > 0 or given == 2:
                upper = (0, r[1] + 1, 0)
            else:
                upper = (0, 0, r[2] + 1)
            if v[:3] >= upper:
                return False
    return True


def front_matter(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"```toml\n(.*?)\n```", text, re.S)
    return tomllib.loads(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--db",
        default=os.environ.get("ADVISORY_DB")
        or os.path.join(os.path.expanduser("~"), ".cargo", "advisory-db"),
    )
    ap.add_argument("--lock", default=os.path.join(ROOT, "Cargo.lock"))
    ap.add_argument("--deny", default=os.path.join(ROOT, "deny.toml"))
    a = ap.parse_args()
    with open(a.lock, "rb") as f:
        packages = tomllib.load(f)["package"]
    ignored = {}
    if os.path.exists(a.deny):
        with open(a.deny, "rb") as f:
            for entry in tomllib.load(f).get("advisories", {}).get("ignore", []):
                if isinstance(entry, dict):
                    ignored[entry["id"]] = entry.get("reason", "")
                else:
                    ignored[entry] = ""
    failed_pkgs, warned, accepted, checked, evaluated = set(), 0, 0, 0, 0
    for pkg in packages:
        if "source" not in pkg:
            continue  # the workspace's own crates
        checked += 1
        name, version = pkg["name"], pkg["version"]
        for path in sorted(glob.glob(os.path.join(a.db, "crates", name, "*.md"))):
            adv = front_matter(path)
            if not adv or adv["advisory"].get("withdrawn"):
                continue
            evaluated += 1
            versions = adv.get("versions", {})
            safe = versions.get("patched", []) + versions.get("unaffected", [])
            if any(matches(version, req) for req in safe):
                continue
            info = adv["advisory"]
            ident = info["id"]
            title = open(path, encoding="utf-8").read().split("```", 2)[2].strip().splitlines()[0].lstrip("# ")
            if ident in ignored:
                accepted += 1
                print(f"accepted {ident} {name} {version}: {title} -- reason: {ignored[ident]}")
            elif info.get("informational"):
                warned += 1
                print(f"warning {ident} {name} {version} ({info['informational']}): {title}")
            else:
                failed_pkgs.add(name)
                print(f"VULNERABLE {ident} {name} {version}: {title}; patched: {versions.get('patched', [])}")
    print(f"{checked} locked packages checked against {os.path.normpath(a.db)} "
          f"({evaluated} advisories name a locked package): "
          f"{len(failed_pkgs)} vulnerable, {accepted} accepted, {warned} informational warnings")
    print(f"{checked - len(failed_pkgs)} passed, {len(failed_pkgs)} failed")
    return 1 if failed_pkgs else 0


if __name__ == "__main__":
    sys.exit(main())
