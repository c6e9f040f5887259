#!/usr/bin/env python3
"""The README's main job (``annbench run`` with no options, in an empty folder): its wall time and where it went.

Runs the job as a new user's first run does after the install (the built-in dataset generated, every
default algorithm's warm parent started), with ``-v`` so each task's start is timestamped as it is
logged, in a fresh temporary folder (no ``$ANNBENCH_*`` variables). Then splits the wall time:

- start: from the command's start to the first task (interpreter, imports, dataset and ground truth);
- per algorithm, from its first task's start to the next algorithm's: the timed passes (sum of the
  stored pass times), the warm-ups, the builds (``build_s`` of each build setting) and the rest
  (warm parent start, child forks, evaluation, storing, index sizes);
- end: from the last task's end to the command's exit (summary, plot).

Target: at most 60 s on the project's 2-core machine (install excluded). The load average is printed
beside the figures: on a shared machine they are noisy.

    python benchmarks/main_job.py [--keep DIR] [-- RUN OPTIONS]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_S = 60.0
#: The -v log line of a task's start (see annbench.execute.local.LocalExecutor._run).
STARTING = re.compile(r"^D (\S+) (\{.*\}): starting on cores")


def run_main_job(folder: Path, extra: list[str]) -> tuple[float, float, list[tuple[float, str]], str, int]:
    """Run ``annbench run -v`` (with ``extra`` options) in ``folder``; its start (epoch seconds), wall time,
    (seconds since start, algorithm) of every task start, the stdout and the exit code."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANNBENCH_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cmd = [sys.executable, "-m", "annbench", "run", "-v", *extra]
    starts: list[tuple[float, str]] = []
    epoch, start = time.time(), time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    for line in proc.stderr:  # type: ignore[union-attr]
        for part in line.split("\r"):  # the progress bar shares stderr
            if m := STARTING.match(part.strip()):
                starts.append((time.perf_counter() - start, m.group(1)))
    code = proc.wait()
    wall = time.perf_counter() - start
    reader.join()
    return epoch, wall, starts, "".join(out), code


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keep", type=Path, help="run in this (new) folder and keep it, instead of a temporary one")
    p.add_argument("run_options", nargs="*", help="options added to annbench run, after --, to compare (e.g. "
                                                  "-- --processes 1 --runs 3: one process of 3 passes)")
    args = p.parse_args()
    from annbench.analyse.frames import results_frame
    from annbench.store.folder import read_arrays

    load_before = os.getloadavg()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="annbench-main-job-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        epoch, wall, starts, out, code = run_main_job(folder, args.run_options)
        load_after = os.getloadavg()
        if code != 0:
            sys.exit(f"annbench run exited {code}:\n{out[-2000:]}")
        frame = results_frame(folder / "results")
        frame["passes_s"] = [float(read_arrays(path)["pass_times_ns"].sum()) * 1e-9 if status == "ok" else 0.0
                             for path, status in zip(frame["path"], frame["status"])]
        last_run = max(datetime.fromisoformat(t).timestamp() for t in frame["timestamp"]) - epoch
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    first = {}
    for t, algorithm in starts:
        first.setdefault(algorithm, t)
    order = sorted(first, key=first.get)
    print(f"annbench run {' '.join(args.run_options)}".rstrip() + f" (the README's main job, -v for timestamps): "
          f"{wall:.1f} s wall, {len(frame)} runs of "
          f"{len(order)} algorithms; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
          f"(1-minute), {os.cpu_count()} cores")
    print(f"{'part':<16} {'wall s':>7} {'passes':>7} {'warm-up':>7} {'build':>7} {'rest':>7}")
    print(f"{'start':<16} {first[order[0]] if order else wall:7.1f}   (imports, dataset, ground truth)")
    totals = [0.0, 0.0, 0.0]
    end_of_tasks = first[order[0]] if order else wall
    for i, algorithm in enumerate(order):
        runs = frame[frame["algorithm"] == algorithm]
        span_end = first[order[i + 1]] if i + 1 < len(order) else None
        passes, warm = float(runs["passes_s"].sum()), float(runs["warmup_s"].fillna(0).sum())
        build = float(runs.groupby("build_params")["build_s"].first().fillna(0).sum())
        totals = [totals[0] + passes, totals[1] + warm, totals[2] + build]
        if span_end is None:  # the last algorithm: up to its last stored run (the summary and plot follow)
            span_end = end_of_tasks = min(wall, last_run + 1.0)  # timestamps are whole seconds
        span = span_end - first[algorithm]
        print(f"{algorithm:<16} {span:7.1f} {passes:7.1f} {warm:7.1f} {build:7.1f} {span - passes - warm - build:7.1f}")
    print(f"{'end':<16} {wall - end_of_tasks:7.1f}   (summary, plot)")
    print(f"{'total':<16} {wall:7.1f} {totals[0]:7.1f} {totals[1]:7.1f} {totals[2]:7.1f}")
    verdict = "met" if wall <= TARGET_S else "NOT met"
    print(f"target <= {TARGET_S:g} s: {verdict} (load average {load_after[0]:.2f}: on a busy machine the figure is "
          f"inflated)")


if __name__ == "__main__":
    main()
