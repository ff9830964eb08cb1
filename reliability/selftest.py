#!/usr/bin/env python3
"""Self-test of the harnesses' own parsing and fail-closed rules, on recorded tool output.

A harness that misreads its tool sees nothing and passes (strace pads its pid column: with
4-digit pids a line is `5405  fsync(3) = 0`, two spaces). These checks pin the parsers to real
shapes of output and prove that a harness that exercised nothing fails.
Usage: reliability/selftest.py   (prints `N passed, M failed`; exit 1 on failure)
"""

import contextlib
import io
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lkp  # noqa: E402
from strace_faults import parse_trace_line  # noqa: E402

TRACE = [
    # (line as strace -f -o FILE writes it, expected (pid, name) or None)
    ("5405  fsync(3)                        = 0\n", ("5405", "fsync")),
    ("123 write(1, \"x\", 1)                  = 1\n", ("123", "write")),
    ("41234 renameat(AT_FDCWD, \"a\", AT_FDCWD, \"b\") = 0\n", ("41234", "renameat")),
    ("7     rename(\"a\", \"b\") = -1 EXDEV (Invalid cross-device link) (INJECTED)\n", ("7", "rename")),
    ("[pid  5406] write(4, \"\\1\\0\\0\\0\\0\\0\\0\\0\", 8) = 8\n", ("5406", "write")),
    ("symlink(\"generations/0000000002\", \"current.tmp\") = 0\n", ("", "symlink")),
    ("5405  <... write resumed>)             = 4096\n", None),
    ("5405  +++ exited with 0 +++\n", None),
    ("5406  --- SIGCHLD {si_signo=SIGCHLD} ---\n", None),
    ("\n", None),
]


def finish_code(passed, failed, covered):
    with contextlib.redirect_stdout(io.StringIO()):
        return lkp.finish(passed, failed, covered)


FINISH = [
    # (passed, failed, covered, expected exit code)
    (10, 0, {"faults injected": 3}, 0),
    (10, 0, {"faults injected": 0}, 1),  # parsed no calls: nothing injected
    (0, 0, {"kills landed": 5}, 1),  # no check ran
    (9, 1, {"requests sent": 10}, 1),
    (5, 0, {"kills landed": 5, "faults injected": 0}, 1),
]


def main():
    passed = failed = 0
    for line, want in TRACE:
        got = parse_trace_line(line)
        if got == want:
            passed += 1
        else:
            failed += 1
            print(f"  FAIL parse_trace_line({line!r}) = {got}, want {want}")
    for p, f, covered, want in FINISH:
        got = finish_code(p, f, covered)
        if got == want:
            passed += 1
        else:
            failed += 1
            print(f"  FAIL finish({p}, {f}, {covered}) exit {got}, want {want}")
    print(f"harness self-test: {len(TRACE)} trace lines, {len(FINISH)} fail-closed cases")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
