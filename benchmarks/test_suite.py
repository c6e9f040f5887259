#!/usr/bin/env python3
"""Wall time of the test suite: runs the README's test command (``python -m pytest -q``) from the
checkout's root, or the pytest arguments given after ``--``, and prints its wall time, its result line,
the load average before and after (the machine's other work moves the figure), and the slowest tests.

    python benchmarks/test_suite.py [--durations 15] [-- tests/test_run.py -k resume]

Measured on this machine (2 cores, shared: load averages in the report), the whole suite: 816 s
before the in-process executor (issue 14 §5); 12 min 1 s in one process (``-- -n 0``) and 7 min 23 s to
8 min 18 s on two pytest-xdist workers (the default since, see the README's "The two commands").
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--durations", type=int, default=15, help="slowest tests to list (pytest --durations)")
    p.add_argument("pytest_args", nargs="*", help="after --: what to run (default: the whole suite)")
    args = p.parse_args(argv)
    command = [sys.executable, "-m", "pytest", "-q", f"--durations={args.durations}", *args.pytest_args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    load_before = os.getloadavg()
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    load_after = os.getloadavg()
    lines = proc.stdout.splitlines()
    slowest = [line for line in lines if re.match(r"\s*[\d.]+s (call|setup|teardown) ", line)]
    summary = next((line for line in reversed(lines) if re.search(r"\b(passed|failed|error)", line)), "(no summary)")
    print(f"command: {' '.join(command[1:])}  (cwd {ROOT})")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load_before)}; "
          f"after: {' '.join(f'{x:.2f}' for x in load_after)} ({os.cpu_count()} cores)")
    if slowest:
        print(f"slowest {len(slowest)}:")
        print("\n".join(f"  {line.strip()}" for line in slowest))
    print(f"result: {summary.strip('= ')}")
    print(f"wall time: {wall:.1f} s ({int(wall // 60)} min {wall % 60:.0f} s)")
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout[-20000:])
        sys.stderr.write(proc.stderr[-5000:])
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
