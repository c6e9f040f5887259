"""QPS of one setting measured alone and beside another sweep, before and after machine-wide core claims.

The setting is hnswlib M=16 ef=40 on random-xs-20-euclidean (``--runs 3``), the case of issue 29. The
other sweep is ``annbench run --algorithm annoy,hnswlib,faiss-ivf --runs 1 --force`` restarted in a
loop into a folder of its own, so it is measuring the whole time. Conditions, alternated ``--rounds``
times (the medians printed):

- ``alone``: no other sweep;
- ``shared (old)``: both sweeps pinned to the first core and the measured one with ``--share-cores``:
  their children measure on the same core, as every sweep did before claims;
- ``claims, one core``: both pinned to the first core, default claims: the measured sweep waits for
  the core, then measures alone on it;
- ``claims, two cores``: both may use every core, default claims: the measured sweep takes the
  free core (the other sweep's child runs on the other core, sharing caches and memory bandwidth).

Each QPS is the one stored by a real sweep (``python -m annbench run``), with a claims registry of the
benchmark's own. Usage: ``python benchmarks/shared_machine.py [--rounds 3] [--data-dir DIR]``. The
machine is shared: the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annbench.analyse.frames import results_frame
from annbench.core.claims import ENV_CLAIMS_DIR
from annbench.core.paths import PROJECT_ROOT
from annbench.datasets.registry import resolve
from annbench.execute.isolation import available_cores

DATASET = "random-xs-20-euclidean"
GRID = "algorithm: hnswlib\nmetrics: [euclidean]\ngroups:\n  bench:\n    build: {M: [16]}\n    query: {ef: [40]}\n"


def _env(claims: Path) -> dict[str, str]:
    return {**os.environ, ENV_CLAIMS_DIR: str(claims), "PYTHONPATH": str(PROJECT_ROOT)}


def _sweep_argv(data_dir: Path, results: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "annbench", "run", "--dataset", DATASET, "--data-dir", str(data_dir),
            "--results", str(results), "--no-plot", "-q", "--force", *extra]


class Other:
    """The other sweep, restarted until stopped."""

    def __init__(self, data_dir: Path, results: Path, claims: Path, cores: set[int]) -> None:
        self._argv = _sweep_argv(data_dir, results, "--algorithm", "annoy,hnswlib,faiss-ivf", "--runs", "1")
        self._env, self._cores = _env(claims), cores
        self._stop = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._proc = subprocess.Popen(self._argv, env=self._env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL,
                                          preexec_fn=lambda: os.sched_setaffinity(0, self._cores))
            self._proc.wait()

    def __enter__(self) -> Other:
        self._thread.start()
        time.sleep(8)  # its first children are measuring
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._proc is not None:
            self._proc.kill()
        self._thread.join()


def measured_qps(data_dir: Path, results: Path, claims: Path, configs: Path, cores: set[int], *extra: str) -> float:
    argv = _sweep_argv(data_dir, results, "--algorithm", "hnswlib", "--preset", "bench", "--runs", "3",
                       "--configs-dir", str(configs), *extra)
    subprocess.run(argv, env=_env(claims), check=True, stdout=subprocess.DEVNULL,
                   preexec_fn=lambda: os.sched_setaffinity(0, cores))
    frame = results_frame(results, DATASET)
    return float(frame["qps"].iloc[0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--data-dir", type=Path, default=None)
    args = p.parse_args()
    cores = available_cores()
    first, every = {cores[0]}, set(cores)
    with tempfile.TemporaryDirectory(prefix="annbench-shared-machine-") as tmp:
        root = Path(tmp)
        data_dir = args.data_dir or root / "data"
        resolve(DATASET, data_dir)
        (root / "configs").mkdir()
        (root / "configs" / "hnswlib.yml").write_text(GRID)
        conditions = {  # name: (the other sweep's cores or None, the measured sweep's cores, its options)
            "alone": (None, first, ()),
            "shared (old)": (first, first, ("--share-cores",)),
            "claims, one core": (first, first, ()),
            "claims, two cores": (every, every, ()),
        }
        qps: dict[str, list[float]] = {name: [] for name in conditions}
        for r in range(args.rounds):
            for name, (other_cores, own_cores, extra) in conditions.items():
                claims, results = root / f"claims-{name}-{r}", root / f"results-{name}-{r}"
                if other_cores is None:
                    value = measured_qps(data_dir, results, claims, root / "configs", own_cores, *extra)
                else:
                    with Other(data_dir, root / f"other-{name}-{r}", claims, other_cores):
                        value = measured_qps(data_dir, results, claims, root / "configs", own_cores, *extra)
                qps[name].append(value)
                print(f"round {r + 1} {name:<18} qps {value:10.0f}", flush=True)
        alone = statistics.median(qps["alone"])
        print(f"\nhnswlib M=16 ef=40 on {DATASET}, --runs 3, median of {args.rounds} rounds "
              f"(load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {len(cores)} cores):")
        for name, values in qps.items():
            m = statistics.median(values)
            print(f"  {name:<18} {m:10.0f} QPS  {m / alone:5.2f} x alone   ({', '.join(f'{v:.0f}' for v in values)})")


if __name__ == "__main__":
    main()
