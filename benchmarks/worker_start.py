"""What a warm parent saves; prints its figures.

1. A child's start to its first line of adapter work (the adapter's ``__init__``), cold (a fresh
   ``python -m annbench.execute.worker``) vs forked from a warm parent, for ``bruteforce`` (numpy only) and
   ``pynndescent`` (numba, PyNNDescent), median over ``--repeats`` children each: the time from
   the call of ``run_task_isolated`` to the adapter's ``__init__`` (CLOCK_MONOTONIC, one clock for
   every process). Target: ≤ 30 ms warm.
2. ``--sweeps``: wall time of ``run.py --algorithm pynndescent`` (its quick grid) with
   ``--cold-workers`` and with warm parents, each in a fresh temporary results folder, and of
   the README's main job (``run.py``, every installed backend's quick grid) both ways.

Usage: ``python benchmarks/worker_start.py [--repeats 7] [--sweeps]``. The machine is shared: the
load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annbench.core import paths
from annbench.core.results import RunKey
from annbench.datasets.format import load_dataset
from annbench.datasets.registry import resolve
from annbench.execute.forkclient import WarmParents
from annbench.execute.isolation import run_task_isolated
from annbench.plan.grid import BuildSetting, RunOptions
from annbench.plan.task import Limits, Task

DATASET = "random-xs-20-euclidean"

#: A real adapter whose ``__init__`` notes the time and stops the child (stored as a build error; the
#: warm parent's warm-up stops there too, so it has imported the library but compiled nothing).
PROBE = '''
import os, time
from annbench_algorithms.{module} import {cls} as Base


class Probe(Base):
    def __init__(self, metric, threads=1):
        with open(os.environ["ANNBENCH_PROBE_FILE"], "a") as f:
            f.write(f"{{time.monotonic()}}\\n")
        raise RuntimeError("probe: stop here")
'''

BASES = {"bruteforce": ("bruteforce", "BruteForce"), "pynndescent": ("pynndescent", "Pynndescent")}


def first_work(algorithm: str, warm: bool, repeats: int, data_dir: Path) -> list[float]:
    """Seconds from ``run_task_isolated`` to the adapter's ``__init__``, per child."""
    _, path = resolve(DATASET, data_dir)
    dataset = load_dataset(path, name=DATASET)
    with tempfile.TemporaryDirectory() as tmp:
        algos = Path(tmp) / "algorithms"
        algos.mkdir()
        module, cls = BASES[algorithm]
        (algos / f"probe_{algorithm}.py").write_text(PROBE.format(module=module, cls=cls))
        probe_file = Path(tmp) / "times"
        os.environ["ANNBENCH_PROBE_FILE"] = str(probe_file)
        dirs = (algos.resolve(), paths.ALGORITHMS_DIR)
        setting = BuildSetting(f"probe-{algorithm}", {}, ({},))
        limits = Limits(timeout_s=600, cpus=(0,))
        out = []
        with WarmParents(lambda key, task: Path(tmp) / "warm-parent.log", enabled=warm) as parents:
            for i in range(repeats + 1):  # the first warm child also waits for the parent's start
                task = Task(uuid.uuid4().hex, DATASET, path.resolve(), dataset.checksum, RunOptions(runs=1), setting,
                            (RunKey(DATASET, 10, setting.algorithm, False, {}, {}, 1),), dirs, Path(tmp) / "results")
                launcher = parents.launcher(task, limits)
                probe_file.write_text("")
                start = time.monotonic()
                outcome = run_task_isolated(task, limits, Path(tmp) / "child.log", launcher=launcher)
                assert probe_file.read_text().strip(), (outcome.message, outcome.log_tail)  # __init__ was reached
                if i:
                    out.append(float(probe_file.read_text().split()[0]) - start)
        return out


def wall(argv: list[str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "run.py", *argv, "--results", tmp, "--no-plot", "-q"],
                              cwd=paths.PROJECT_ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]
        print(f"    {' '.join(argv) or '(defaults)'}: {seconds:.1f} s, exit {done.returncode}: {tail}")
        return seconds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=paths.default_data_dir())
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--sweeps", action="store_true", help="also time the PyNNDescent quick grid and the main job")
    args = p.parse_args()
    print(f"cores: {len(os.sched_getaffinity(0))}, load average before: {os.getloadavg()[0]:.2f}")
    print(f"\n1. child start to the adapter's __init__, median (min-max) over {args.repeats} children")
    for algorithm in BASES:
        cold = first_work(algorithm, False, args.repeats, args.data_dir)
        warm = first_work(algorithm, True, args.repeats, args.data_dir)
        print(f"  {algorithm:<12} cold {statistics.median(cold) * 1e3:7.1f} ms ({min(cold) * 1e3:.1f}-"
              f"{max(cold) * 1e3:.1f})   warm {statistics.median(warm) * 1e3:6.1f} ms ({min(warm) * 1e3:.1f}-"
              f"{max(warm) * 1e3:.1f})   cold/warm {statistics.median(cold) / statistics.median(warm):.1f}×")
    if args.sweeps:
        data = ["--data-dir", str(args.data_dir)]
        print("\n2. wall time of whole sweeps, fresh results folder each")
        for name, argv in (("pynndescent quick grid", ["--algorithm", "pynndescent", *data]),
                           ("README main job", data)):
            cold = wall([*argv, "--cold-workers"])
            warm = wall(argv)
            print(f"  {name}: cold {cold:.1f} s, warm {warm:.1f} s, saved {cold - warm:.1f} s "
                  f"({(cold - warm) / cold:.0%} of the cold wall time)")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
