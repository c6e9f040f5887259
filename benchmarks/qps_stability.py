#!/usr/bin/env python3
"""QPS stability: coefficient of variation of each setting's QPS across identical sweeps.

``--sweeps`` identical sweeps (default 5) of the ``quick`` grids of hnswlib, annoy and faiss-ivf on
``random-xs-20-euclidean`` (17 settings), each through the real plan → execute path (one child per build
setting) into its own temporary results folder. Every measurement mode given by ``--modes`` runs once per
sweep, the modes alternating, so all see the same machine load:

* ``calibrated`` (the default) — run.py's defaults: bounded warm-up (0.5 s), passes of at least 0.2 s,
  ``--processes 3`` measuring processes of ``--runs 1`` pass each;
* ``single`` — the behaviour before calibration: a full warm-up pass, then one repetition of the
  query set per timed pass (``--warmup full --min-pass-time 0``), one process of 3 passes;
* ``spread`` — the calibrated measurement with each build's P measuring processes spread over the sweep's
  time: P rounds, each a sweep of one process per build (process 1 of every build, then process 2 of every
  build, ...), a setting's QPS the mean of its P rounds'. Each round's child builds the index again with
  the same seeds (the three libraries' builds are seeded: the same index) and measures it alone, as a
  measuring process of a rebuilt index does; the timed passes and warm-ups are the calibrated mode's.
  It tests whether decorrelating a build's processes in time brings the CV across sweeps down to
  ``c / sqrt(P)`` (the machine's noise is correlated over tens of seconds, so P processes run back to back
  share much of it) before the harness schedules processes that way.

Per setting and mode it prints the QPS CV (sample standard deviation / mean over the sweeps), then
per mode the median and maximum CV and how many settings are within ``--target`` (3 %).

The plain loop's process-to-process CV ``c`` is measured in the same run (``machine_stability.py``'s fresh
interpreters loading one saved hnswlib index, no harness): ``--c-each`` (2) such processes before every
sweep and after the last, so they see the machine the sweeps see. The target: each setting's calibrated
CV across sweeps at most ``1.2 · c / sqrt(P)`` (the harness adds nothing to the machine's own noise and
averages it down). A CV from 5 sweeps is itself uncertain (4 degrees of freedom: a setting whose true CV
is exactly ``c / sqrt(P)`` exceeds the bound with probability 0.22), so each mode also prints its pooled CV
(root mean square over the settings) against the bound and how many settings chance alone puts over it.
The table (setting, CV across sweeps, c, P, bound, met) is printed last, with the
harness's own process-to-process CV (the median ``process_cv`` of the sweeps' runs: above ``c`` would mean
the harness adds noise inside a sweep) and, per setting, the correlation across sweeps of its QPS with the
plain loop's QPS measured around that sweep (a speed probe: near 1 = the machine's state explains the
sweep-to-sweep variation).

Bounded: with the defaults about 4 minutes on the project's 2-core machine (5 sweeps of about 25 s,
12 plain processes of 3 s plus their start); the wall time is printed.

    python benchmarks/qps_stability.py [--sweeps 5] [--runs 1] [--processes 3] [--modes calibrated[,single,spread]]
                                       [--algorithm hnswlib,annoy,faiss-ivf] [--min-pass-time 0.2]
                                       [--c-each 2] [--c-seconds 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annbench.core.threads import pin_environment

pin_environment(1)  # before numpy and the libraries load their thread pools

import numpy as np  # noqa: E402
from scipy.stats import chi2  # noqa: E402

from annbench.analyse.frames import results_frame  # noqa: E402
from annbench.core import paths  # noqa: E402
from annbench.datasets.registry import load  # noqa: E402
from annbench.execute.executors import ExecutorKind, execute, make_executor  # noqa: E402
from annbench.plan.grid import WARMUP_FULL, RunOptions, make_plan  # noqa: E402
from annbench.store.folder import ResultStore  # noqa: E402

DEFAULTS = RunOptions()


def mode_options(mode: str, runs: int, min_pass_time: float, warmup: float, processes: int) -> RunOptions:
    if mode in ("calibrated", "spread"):  # spread: P sweeps of one process each (see the module's text)
        return RunOptions(k=10, runs=runs, force=True, warmup=warmup, min_pass_time=min_pass_time, early_stop=False,
                          processes=processes if mode == "calibrated" else 1)
    if mode == "single":
        return RunOptions(k=10, runs=3, force=True, warmup=WARMUP_FULL, min_pass_time=0.0, early_stop=False,
                          processes=1)
    raise SystemExit(f"unknown mode {mode!r}; valid: calibrated, single, spread")


def sweep_qps(dataset, algorithms: list[str], options: RunOptions) -> dict[str, tuple[float, int, float]]:
    """One sweep into a fresh results folder: setting label → (qps, repeats, process CV or NaN)."""
    plan = make_plan(dataset.name, dataset.path, dataset.distance, algorithms, "quick", options,
                     paths.config_dirs(), paths.algorithm_dirs())
    if plan.unavailable:
        raise SystemExit(f"unavailable: {plan.unavailable}")
    with tempfile.TemporaryDirectory(prefix="annbench-qps-stability-") as tmp:
        execute(make_executor(ExecutorKind.LOCAL, ResultStore(tmp)), plan, dataset)
        frame = results_frame(tmp, dataset.name)
    failed = frame[frame["status"] != "ok"]
    if len(failed):
        raise SystemExit(f"{len(failed)} runs failed: {failed['error'].tolist()}")
    cvs = frame["process_cv"] if "process_cv" in frame else [float("nan")] * len(frame)
    return {f"{r.algorithm} {r.build_params} {r.query_params}": (float(r.qps), int(r.repeats), float(cv))
            for r, cv in zip(frame.itertuples(), cvs)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="random-xs-20-euclidean")
    p.add_argument("--data-dir", type=Path, default=None, help="dataset folder (default as run.py)")
    p.add_argument("--algorithm", default="hnswlib,annoy,faiss-ivf")
    p.add_argument("--sweeps", type=int, default=5)
    p.add_argument("--runs", type=int, default=DEFAULTS.runs, help="calibrated mode's passes per process")
    p.add_argument("--modes", default="calibrated", help="comma-separated: calibrated, single, spread")
    p.add_argument("--min-pass-time", type=float, default=DEFAULTS.min_pass_time, help="calibrated mode's")
    p.add_argument("--warmup", type=float, default=DEFAULTS.warmup, help="calibrated mode's warm-up bound (s)")
    p.add_argument("--target", type=float, default=0.03)
    p.add_argument("--processes", type=int, default=DEFAULTS.processes, help="measuring processes of the calibrated "
                                                                             "and spread modes")
    p.add_argument("--c-each", type=int, default=2, help="plain-loop processes before each sweep and after the last")
    p.add_argument("--c-seconds", type=float, default=3.0, help="seconds each of them measures")
    args = p.parse_args()
    from machine_stability import build_index, fresh_process
    logging.basicConfig(level=logging.WARNING, format="%(levelname).1s %(message)s")
    started = time.perf_counter()
    dataset = load(args.dataset, args.data_dir or paths.default_data_dir())
    algorithms = args.algorithm.split(",")
    modes = args.modes.split(",")
    options = {m: mode_options(m, args.runs, args.min_pass_time, args.warmup, args.processes) for m in modes}
    qps: dict[str, dict[str, list[float]]] = {m: {} for m in modes}
    repeats: dict[str, dict[str, list[int]]] = {m: {} for m in modes}
    harness_cv: dict[str, list[float]] = {m: [] for m in modes}
    load_start = os.getloadavg()
    plain: list[list[float]] = []  # the plain loop's processes before sweep s (and after the last)
    with tempfile.TemporaryDirectory(prefix="annbench-qps-stability-index-") as tmp:
        index_path = os.path.join(tmp, "index.bin")
        build_index()[0].save_index(index_path)

        def probe() -> None:
            plain.append([fresh_process(index_path, args.c_seconds, 0.2, 0) for _ in range(args.c_each)])

        for s in range(args.sweeps):
            probe()
            for m in (modes if s % 2 == 0 else modes[::-1]):  # alternate which mode goes first
                rounds = [sweep_qps(dataset, algorithms, options[m])
                          for _ in range(args.processes if m == "spread" else 1)]
                for label, (q, r, cv) in rounds[0].items():
                    if m == "spread":  # the P rounds are the build's P processes
                        per = np.asarray([one[label][0] for one in rounds])
                        q, cv = float(per.mean()), float(per.std(ddof=1) / per.mean())
                    qps[m].setdefault(label, []).append(q)
                    repeats[m].setdefault(label, []).append(r)
                    if cv == cv:
                        harness_cv[m].append(cv)
                print(f"sweep {s + 1}/{args.sweeps} {m} done", file=sys.stderr, flush=True)
        probe()
    print(f"{dataset.name}, {', '.join(algorithms)} quick grids, {args.sweeps} sweeps per mode; calibrated: "
          f"--processes {args.processes} --runs {args.runs}; load average {load_start[0]:.2f} at the start, "
          f"{os.getloadavg()[0]:.2f} at the end on {os.cpu_count()} cores; {time.perf_counter() - started:.0f} s")
    labels = sorted(qps[modes[0]])
    width = max(len(label) for label in labels)
    head = "".join(f"  {m + ' QPS':>16} {'CV':>6} {'reps':>5}  [per sweep]" for m in modes)
    print(f"{'setting':<{width}}{head}")
    cvs: dict[str, list[float]] = {m: [] for m in modes}
    for label in labels:
        cells = []
        for m in modes:
            values = np.asarray(qps[m][label])
            cv = float(np.std(values, ddof=1) / np.mean(values)) if len(values) > 1 else float("nan")
            cvs[m].append(cv)
            cells.append(f"  {np.mean(values):>16.0f} {cv * 100:>5.1f}% {int(np.median(repeats[m][label])):>5d}"
                         f"  [{' '.join(f'{v:.0f}' for v in values)}]")
        print(f"{label:<{width}}{''.join(cells)}")
    for m in modes:
        c = np.asarray(cvs[m])
        print(f"{m:<10} median CV {np.median(c) * 100:5.2f} %   max CV {np.max(c) * 100:5.2f} %   "
              f"within {args.target * 100:g} %: {int(np.sum(c <= args.target))} of {len(c)}")
    targeted = [m for m in modes if m != "single"]
    if not targeted:
        return
    everything = np.concatenate(plain)
    c = float(np.std(everything, ddof=1) / np.mean(everything))
    # the probe around sweep s: the plain processes just before it and just after it
    around = np.asarray([np.mean(plain[s] + plain[s + 1]) for s in range(args.sweeps)])
    bound = 1.2 * c / np.sqrt(args.processes)
    print(f"plain loop's process-to-process CV c = {c * 100:.1f} % over {everything.size} processes "
          f"(QPS {' '.join(f'{v:.0f}' for v in everything)}); P = {args.processes}; target CV <= 1.2 c / sqrt(P) = "
          f"{bound * 100:.2f} %")
    for m in targeted:
        print(f"{m}: the harness's own process-to-process CV, median over the sweeps' runs: "
              f"{np.median(harness_cv[m]) * 100:.1f} %")
        print(f"{'setting':<{width}}  {'CV':>6}  {'c':>6}  {'P':>2}  {'bound':>6}  met  r(probe)")
        met = 0
        for label, value in zip(labels, cvs[m]):
            ok = value <= bound
            met += ok
            r = float(np.corrcoef(qps[m][label], around)[0, 1]) if args.sweeps > 2 else float("nan")
            print(f"{label:<{width}}  {value * 100:5.1f}%  {c * 100:5.1f}%  {args.processes:>2}  {bound * 100:5.2f}%  "
                  f"{'yes' if ok else 'NO ':<3}  {r:+.2f}")
        print(f"{m}: target met by {met} of {len(labels)} settings")
        # a CV from n sweeps is itself noisy: (n - 1) s^2 / sigma^2 is chi-square with n - 1 degrees of freedom
        df = args.sweeps - 1
        chance = float(chi2.sf(df * 1.2 ** 2, df))
        rms = float(np.sqrt(np.mean(np.square(cvs[m]))))
        print(f"{m}: pooled CV (root mean square over the settings, {len(labels) * df} degrees of freedom) "
              f"{rms * 100:.2f} % against the bound {bound * 100:.2f} %; a setting whose true CV is exactly "
              f"c / sqrt(P) exceeds the bound by chance with probability {chance:.2f} at {args.sweeps} sweeps: "
              f"{chance * len(labels):.1f} of {len(labels)} settings expected over it")
    print(f"load average {os.getloadavg()[0]:.2f} at the end, {time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
