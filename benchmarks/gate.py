#!/usr/bin/env python3
"""Regression gate: how often it flags unchanged code, and how often an injected slowdown.

The gate's target (README, "Regression gate"): with the default session, an injected +10 % slowdown
flagged in at least 8 of 10 sessions, unchanged code in at most 1 of 10.

1. One baseline session is measured (default: kdtree on random-xs-20-euclidean, reference bruteforce measured
   beside it in each process, the gate's default session: ``Suite``'s rounds, processes and passes).
2. Unchanged: ``--repeats`` fresh sessions of the same code, each compared with the baseline; a session
   counts as flagged when its verdict is ``regression``, judged as ``gate.py`` judges (a timing-only
   regression stands only if ``--confirm`` further sessions find it too; the first session's verdict is
   printed as well).
3. Slowdowns (``--slowdowns``, default 0.1): for each, ``--repeats`` sessions with the algorithm wrapped by
   :mod:`annbench.backends.inject` (its CPU work × (1 + slowdown)), each compared with the same baseline.
   The cases take turns (unchanged, each slowdown, unchanged, ...), so a slow stretch of the machine falls on
   all of them alike.

Where the noise is: for the baseline session, the CV across its processes of the raw QPS, of the
reference's, of the normalised value (the median of each pass's QPS over the reference's pass just before it:
what the gate uses) and of the QPS over the session's mean reference (what a reference measured elsewhere
could at best do), and the CV of the round values (the replicates of the verdicts' interval). ``--keep DIR`` saves
every session as a baseline file for a closer look.

Every session of the run is measured the same way, so the run's length is about ``(1 + repeats · (1 +
number of slowdowns) + confirmations) × session``: the script prints the baseline session's seconds and
that bound (at most one confirmation per session) before the trials start, and the total at the end.

    python benchmarks/gate.py [--algorithm kdtree] [--repeats 10] [--slowdowns 0.1] \
        [--rounds R --processes P --runs N --confirm C] [--keep DIR]

Run it alone on the machine: every session waits for cores other sweeps have claimed (``run.py`` claims), and
a CPU-bound neighbour moves the process noise it measures.
"""

from __future__ import annotations

import argparse
import contextlib
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

import numpy as np  # noqa: E402  (after the pinning)

from annbench.backends.inject import write_wrapper  # noqa: E402
from annbench.core import paths  # noqa: E402
from annbench.datasets.registry import load  # noqa: E402
from annbench.gate import verdicts as gate  # noqa: E402
from annbench.gate.baseline import write_baseline  # noqa: E402
from annbench.gate.run import Suite, confirm_regressions, measure_suite  # noqa: E402

DEFAULT = Suite("", None)
#: The target: flagged at most this many unchanged sessions, at least this many at +10 %, of 10.
FALSE_ALARMS_MAX, DETECTED_MIN, TARGET_SLOWDOWN = 1, 8, 0.1


def _loads() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def _span(c: gate.Comparison) -> str:
    if c.ratio is None:
        return "no throughput figure"
    return (f"normalised QPS {100 * (c.ratio - 1):+6.1f}% [{100 * (c.ratio_low - 1):+6.1f}, "
            f"{100 * (c.ratio_high - 1):+6.1f}]")


def _cv(values: np.ndarray) -> str:
    return f"{100 * np.std(values, ddof=1) / np.mean(values):.1f}%" if len(values) > 1 else "n/a"


def _noise(s: gate.SettingRecord) -> str:
    """CVs across the session's processes: raw QPS, the reference's, the gate's normalised value (the median of
    each pass over the reference's pass just before it) and QPS over the session's mean reference (a
    reference measured elsewhere, at best); and of the round values (the verdicts' replicates)."""
    qps = np.concatenate([r.process_qps for r in s.rounds])
    reference = np.concatenate([r.reference_qps for r in s.rounds])
    normalised = np.concatenate([r.normalised() for r in s.rounds])
    return (f"CV across {len(qps)} processes: QPS {_cv(qps)}, reference {_cv(reference)}, normalised pass by pass "
            f"(the gate's) {_cv(normalised)}, QPS / the session's mean reference {_cv(qps / reference.mean())}; "
            f"CV of the {len(s.rounds)} round values {_cv(s.round_values())}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="random-xs-20-euclidean")
    p.add_argument("--data-dir", type=Path, default=paths.default_data_dir())
    p.add_argument("--algorithm", default="kdtree")
    p.add_argument("--repeats", type=int, default=10, help="sessions per case (unchanged, each slowdown)")
    p.add_argument("--rounds", type=int, default=DEFAULT.rounds)
    p.add_argument("--processes", type=int, default=DEFAULT.processes)
    p.add_argument("--runs", type=int, default=DEFAULT.runs)
    p.add_argument("--slowdowns", default=str(TARGET_SLOWDOWN), help="comma-separated injected slowdowns")
    p.add_argument("--qps-tolerance", type=float, default=gate.Tolerances.qps)
    p.add_argument("--confirm", type=int, default=1, help="further sessions a timing-only regression needs")
    p.add_argument("--keep", type=Path, help="save every session here as a baseline file (JSON)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname).1s %(message)s")
    dataset = load(args.dataset, args.data_dir)
    suite = Suite(args.dataset, (args.algorithm,), rounds=args.rounds, runs=args.runs, processes=args.processes)
    tol = gate.Tolerances(qps=args.qps_tolerance)
    slowdowns = sorted(float(s) for s in args.slowdowns.split(","))
    configs, algos = paths.config_dirs(), paths.algorithm_dirs()
    print(f"machine: {os.cpu_count()} cores, load average at start {_loads()}")
    print(f"suite: {args.algorithm} on {args.dataset}, reference {suite.reference}, {suite.rounds} rounds x "
          f"{suite.processes} processes x {suite.runs} passes; regression: normalised QPS below "
          f"-{100 * tol.qps:g}% with its {100 * tol.confidence:g}% interval below 0, --confirm {args.confirm}")
    start = time.perf_counter()
    baseline = measure_suite(suite, dataset, configs, algos)
    session_s = time.perf_counter() - start
    saved = iter(range(10**6))

    def keep(session: gate.Session, label: str) -> None:
        if args.keep is not None:
            write_baseline(session, args.keep / f"{next(saved):03d}-{label}.json")

    keep(baseline, "baseline")
    for s in baseline.settings:
        if s.ok:
            print(f"baseline {s.algorithm} {s.key[1]} {s.key[2]}: {_noise(s)}")
    trials = args.repeats * (1 + len(slowdowns))
    print(f"baseline session: {session_s:.1f} s; the {trials} trials take about {trials * session_s / 60:.0f} min, "
          f"at most {trials * (1 + args.confirm) * session_s / 60:.0f} min with every confirmation", flush=True)

    def trial(dirs: list[Path], label: str) -> tuple[gate.Comparison, gate.Comparison]:
        """The first session's verdict, and the verdict after confirmation (as gate.py gives it)."""
        def measure(algorithms: tuple[str, ...]) -> gate.Session:
            session = measure_suite(dataclasses.replace(suite, algorithms=algorithms), dataset, configs, dirs)
            keep(session, label)
            return session

        first = gate.compare(baseline, measure(suite.algorithms), tol)
        (final,) = confirm_regressions(baseline, first, tol, args.confirm, measure)
        return first[0], final

    @dataclasses.dataclass
    class Case:
        label: str
        dirs: list[Path]
        slowdown: float = 0.0
        flagged: int = 0
        first_flagged: int = 0
        ratios: list[float] = dataclasses.field(default_factory=list)

    with contextlib.ExitStack() as stack:
        cases = [Case("unchanged", algos)]
        for slowdown in slowdowns:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            write_wrapper(tmp, args.algorithm, algos, factor=1.0 + slowdown)
            cases.append(Case(f"+{100 * slowdown:g}%", [tmp, *algos], slowdown))
        # the cases take turns, so a slow stretch of the machine falls on all of them alike
        for i in range(args.repeats):
            for c in cases:
                first, final = trial(c.dirs, c.label.strip("+%").replace(".", "_"))
                c.flagged += final.verdict == gate.REGRESSION
                c.first_flagged += first.verdict == gate.REGRESSION
                c.ratios.append(first.ratio if first.ratio is not None else float("nan"))
                after = "" if final.verdict == first.verdict else f" -> {final.verdict} after confirmation"
                print(f"  {c.label:>9} {i + 1:2d}: {first.verdict:<10} {_span(first)}{after}  load {_loads()}",
                      flush=True)
    for c in cases:
        if not c.slowdown:
            head = f"unchanged: flagged {c.flagged} of {args.repeats} (target at most {FALSE_ALARMS_MAX} of 10)"
        else:
            target = f" (target at least {DETECTED_MIN} of 10)" if c.slowdown == TARGET_SLOWDOWN else ""
            head = (f"slowdown {c.label} (CPU work x{1 + c.slowdown:g}): flagged {c.flagged} of "
                    f"{args.repeats}{target}")
        print(f"{head} with --confirm {args.confirm}, {c.first_flagged} by the first session alone; its normalised "
              f"QPS change ranged {100 * (np.nanmin(c.ratios) - 1):+.1f}% .. {100 * (np.nanmax(c.ratios) - 1):+.1f}%",
              flush=True)
    print(f"load average at end {_loads()}; total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
