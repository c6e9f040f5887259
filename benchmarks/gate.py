#!/usr/bin/env python3
"""Regression gate: false alarms and the smallest slowdown it detects every time.

1. One baseline session is measured (default: kdtree on random-xs-20-euclidean, reference
   bruteforce, the gate's default rounds and passes).
2. False alarms: ``--repeats`` fresh sessions of the unchanged code, each compared with the
   baseline; a session counts as a false alarm when any setting's verdict is ``regression``
   (target: 0 of 10). Each is judged as ``gate.py`` judges: a timing-only regression stands only
   if ``--confirm`` further sessions find it too; the first session's verdict is printed as well.
3. Detection: for each slowdown (``--slowdowns``, ascending), ``--repeats`` sessions with the
   algorithm wrapped by :mod:`annbench.backends.inject` (its CPU work × (1 + slowdown)); a level is
   detected when the verdict is ``regression``. A level stops at its first miss (it cannot be
   10 of 10 any more); the first level detected in every session is the figure.

    python benchmarks/gate.py [--algorithm kdtree] [--repeats 10] [--slowdowns 0.05,0.1,0.2,0.5]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annbench.core.threads import pin_environment

pin_environment(1)

from annbench.backends.inject import write_wrapper  # noqa: E402
from annbench.core import paths  # noqa: E402
from annbench.datasets.registry import load  # noqa: E402
from annbench.gate import verdicts as gate  # noqa: E402
from annbench.gate.run import Suite, confirm_regressions, measure_suite  # noqa: E402


def _loads() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="random-xs-20-euclidean")
    p.add_argument("--data-dir", type=Path, default=paths.default_data_dir())
    p.add_argument("--algorithm", default="kdtree")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--rounds", type=int, default=Suite("", None).rounds)
    p.add_argument("--runs", type=int, default=Suite("", None).runs)
    p.add_argument("--slowdowns", default="0.05,0.1,0.2,0.5")
    p.add_argument("--confirm", type=int, default=1, help="further sessions a timing-only regression needs")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname).1s %(message)s")
    dataset = load(args.dataset, args.data_dir)
    suite = Suite(args.dataset, (args.algorithm,), rounds=args.rounds, runs=args.runs)
    configs, algos = paths.config_dirs(), paths.algorithm_dirs()
    print(f"machine: {os.cpu_count()} cores, load average at start {_loads()}")
    print(f"suite: {args.algorithm} on {args.dataset}, reference {suite.reference}, {suite.rounds} rounds x "
          f"{suite.runs} passes; tolerance -10 % normalised QPS, 95 % interval")
    start = time.perf_counter()
    baseline = measure_suite(suite, dataset, configs, algos)
    session_s = time.perf_counter() - start
    print(f"baseline session: {session_s:.1f} s")

    tol = gate.Tolerances()

    def trial(dirs: list[Path]) -> tuple[gate.Comparison, gate.Comparison]:
        """The first session's verdict, and the verdict after confirmation (as gate.py gives it)."""
        def measure(algorithms: tuple[str, ...]) -> gate.Session:
            return measure_suite(dataclasses.replace(suite, algorithms=algorithms), dataset, configs, dirs)

        first = gate.compare(baseline, measure(suite.algorithms), tol)
        (final,) = confirm_regressions(baseline, first, tol, args.confirm, measure)
        return first[0], final

    alarms, first_alarms, ratios = 0, 0, []
    for i in range(args.repeats):
        first, c = trial(algos)
        alarms += c.verdict == gate.REGRESSION
        first_alarms += first.verdict == gate.REGRESSION
        ratios.append(first.ratio)
        print(f"  self {i + 1:2d}: {first.verdict:<10} normalised QPS {100 * (first.ratio - 1):+6.1f}% "
              f"[{100 * (first.ratio_low - 1):+6.1f}, {100 * (first.ratio_high - 1):+6.1f}]"
              f"{'' if c.verdict == first.verdict else f' -> {c.verdict} after confirmation'}  load {_loads()}",
              flush=True)
    print(f"false alarms: {alarms} of {args.repeats} (target 0) with --confirm {args.confirm}, {first_alarms} of "
          f"{args.repeats} by the first session alone; its normalised QPS change ranged "
          f"{100 * (min(ratios) - 1):+.1f}% .. {100 * (max(ratios) - 1):+.1f}%")

    smallest = None
    for slowdown in sorted(float(s) for s in args.slowdowns.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            write_wrapper(tmp, args.algorithm, algos, factor=1.0 + slowdown)
            hits = tried = 0
            for _ in range(args.repeats):
                first, c = trial([Path(tmp), *algos])
                tried += 1
                hits += c.verdict == gate.REGRESSION
                print(f"  +{100 * slowdown:g}% slower: {c.verdict:<10} first session {first.verdict}, normalised QPS "
                      f"{100 * (first.ratio - 1):+6.1f}% [{100 * (first.ratio_low - 1):+6.1f}, "
                      f"{100 * (first.ratio_high - 1):+6.1f}]{'' if c is first else '; ' + c.reasons[-1]}  "
                      f"load {_loads()}", flush=True)
                if c.verdict != gate.REGRESSION:
                    break
        print(f"slowdown {100 * slowdown:g}% (CPU work x{1 + slowdown:g}): detected {hits} of {tried}"
              f"{' (stopped at the first miss)' if tried < args.repeats else ''}")
        if hits == args.repeats:
            smallest = slowdown
            break
    found = "none of those tried" if smallest is None else f"{100 * smallest:g}%"
    print(f"smallest slowdown detected in {args.repeats} of {args.repeats} sessions: {found}")
    print(f"load average at end {_loads()}; total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
