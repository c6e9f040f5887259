#!/usr/bin/env python3
"""Wall times of the test suite's two tiers: the fast tier (``python -m pytest -q -m "not slow"``, what a
developer runs before every commit; target at most 90 s on this machine) and the full suite (the README's
test command, ``python -m pytest -q``; target at most 8 min), each run from the checkout's root. For each:
its wall time, its result line, the load average before and after (the machine's other work moves the
figure) and the slowest tests.

    python benchmarks/test_suite.py [--tier fast|full|both] [--durations 15] [--save-durations]
                                    [-- extra pytest arguments]

``--save-durations`` also writes each module's seconds in the full run to ``tests/durations.json``, the
record ``tests/conftest.py`` orders modules by when it hands them to the xdist workers (longest first).

The tiers' markers (``slow``, ``needs_chromium``, ``needs_torch``, ``needs_shared_data``) are applied by
``tests/conftest.py`` from what each test uses. Measured on this machine (2 cores, shared: load averages in
the report), the whole suite before the tiers: 816 s before the in-process executor (issue 14 §5); 12 min 1 s
in one process (``-- -n 0``) and 7 min 23 s to 8 min 18 s on two pytest-xdist workers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The pytest arguments of each tier (after ``-q``).
TIERS = {"fast": ["-m", "not slow"], "full": []}
TARGET_S = {"fast": 90.0, "full": 480.0}
DURATIONS = ROOT / "tests" / "durations.json"


@dataclass(frozen=True)
class TierRun:
    tier: str
    command: list[str]
    wall_s: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    summary: str
    slowest: list[str]
    returncode: int
    output: str


def run_tier(tier: str, durations: int, extra: list[str]) -> TierRun:
    command = [sys.executable, "-m", "pytest", "-q", *TIERS[tier], f"--durations={durations}", *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    load_before = os.getloadavg()
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    lines = proc.stdout.splitlines()
    slowest = [line.strip() for line in lines if re.match(r"\s*[\d.]+s (call|setup|teardown) ", line)]
    summary = next((line for line in reversed(lines) if re.search(r"\b(passed|failed|error)", line)), "(no summary)")
    return TierRun(tier, command, wall, load_before, os.getloadavg(), summary.strip("= "), slowest,
                   proc.returncode, proc.stdout[-20000:] + proc.stderr[-5000:])


def module_seconds(junit: Path) -> dict[str, float]:
    """Each test module's seconds (setup, call and teardown of its tests) in a JUnit XML report."""
    seconds: Counter[str] = Counter()
    for case in ET.parse(junit).iter("testcase"):
        seconds[case.get("classname", "").split(".")[-1]] += float(case.get("time", 0))
    return {module: round(s, 1) for module, s in seconds.items()}


def report(run: TierRun) -> str:
    load = " ".join(f"{x:.2f}" for x in run.load_before), " ".join(f"{x:.2f}" for x in run.load_after)
    lines = [f"== {run.tier} tier: {' '.join(run.command[1:])}  (cwd {ROOT})",
             f"load average before: {load[0]}; after: {load[1]} ({os.cpu_count()} cores)"]
    if run.slowest:
        lines += [f"slowest {len(run.slowest)}:", *(f"  {line}" for line in run.slowest)]
    verdict = "within" if run.wall_s <= TARGET_S[run.tier] else "OVER"
    lines += [f"result: {run.summary}",
              f"wall time: {run.wall_s:.1f} s ({int(run.wall_s // 60)} min {run.wall_s % 60:.0f} s); "
              f"target <= {TARGET_S[run.tier]:.0f} s: {verdict}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tier", choices=("fast", "full", "both"), default="both", help="which to run (default both)")
    p.add_argument("--durations", type=int, default=15, help="slowest tests to list (pytest --durations)")
    p.add_argument("pytest_args", nargs="*", help="after --: extra pytest arguments for every tier")
    p.add_argument("--save-durations", action="store_true",
                   help=f"write each module's seconds in the full run to {DURATIONS.relative_to(ROOT)}")
    args = p.parse_args(argv)
    runs = []
    for tier in TIERS if args.tier == "both" else [args.tier]:
        junit = ROOT / ".pytest_cache" / f"test_suite-{tier}.xml"
        runs.append(run_tier(tier, args.durations, [*args.pytest_args, f"--junitxml={junit}"]))
        if tier == "full" and args.save_durations and runs[-1].returncode == 0:
            DURATIONS.write_text(json.dumps(module_seconds(junit), indent=1, sort_keys=True) + "\n", encoding="utf-8")
            print(f"module durations written to {DURATIONS}")
    for run in runs:
        print(report(run))
        if run.returncode != 0:
            print(run.output)
    if len(runs) == 2:
        print(f"fast tier {runs[0].wall_s:.1f} s, full suite {runs[1].wall_s:.1f} s "
              f"({runs[0].wall_s / runs[1].wall_s:.0%} of it)")
    return max(run.returncode for run in runs)


if __name__ == "__main__":
    sys.exit(main())
