"""Cost of verifying dataset files: what hashing adds to a load's read of every array, the 8-query
ground-truth audit of every load, and ``dataset.py verify --all``, on Fashion-MNIST and random-s-100.

    python benchmarks/dataset_integrity.py [--data-dir DIR] [--source-dir ../shared/data] [--repeats 15]

Datasets missing from ``--data-dir`` (default: a temporary folder) are built with the registry
(Fashion-MNIST from ``--source-dir``). Targets: verification <= 10 % of the time to read the file,
i.e. the extra wall time of the load's read with the checksum computed (``read_dataset_arrays``, as
``load_dataset`` reads and hashes: arrays stored as one raw block read in blocks with ``preadv``,
each hashed with XXH3 on a second thread while the next is read; others read by h5py, then hashed)
over h5py's read of the same arrays without it, as a share of that read — "warm" with the file in
the page cache (the fastest read, the strictest ratio), "cold" after dropping this one file's pages
with ``posix_fadvise``; and the audit <= 0.2 s on Fashion-MNIST (BLAS pinned to one thread, as
run.py's default ``--threads 1``). Also printed: XXH3 alone over the arrays already in memory, over
the same reads. The machine is shared, so verified and unverified reads alternate ``--repeats``
times and each ratio is printed two ways, both of figures measured in one run: of the fastest of
each, and the median over the repeats of each verified read over the unverified read just before it.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annbench.cli.common import Parser
from annbench.core.threads import limited_threads
from annbench.datasets.audit import audit_queries, first_mismatch
from annbench.datasets.digest import content_checksum, legacy_checksum
from annbench.datasets.format import load_dataset, read_dataset_arrays
from annbench.datasets.registry import resolve

DATASETS = ("fashion-mnist-784-euclidean", "random-s-100-euclidean")
HASH_TARGET = 0.10
AUDIT_TARGET_S = 0.2


def best(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """The fastest of ``repeats`` calls (seconds) and the last result."""
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def evict(path: Path) -> None:
    """Ask the kernel to drop this file's pages from its cache (this file only)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def alternating(path: Path, fns: dict[str, Callable[[], Any]], repeats: int, cold: bool) -> dict[str, list[float]]:
    """Every time (seconds) of ``repeats`` calls of each of ``fns``, called in turn, each after
    evicting ``path`` from the page cache when ``cold`` (NaN where that is not possible)."""
    if cold and not hasattr(os, "posix_fadvise"):
        return {k: [float("nan")] for k in fns}
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            if cold:
                evict(path)
            start = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - start)
    return times


def measure(path: Path, repeats: int) -> dict[str, float]:
    reads = {"plain": lambda: read_dataset_arrays(path, checksum=False),
             "verified": lambda: read_dataset_arrays(path, checksum=True)}
    m: dict[str, float] = {}
    for when in ("warm", "cold"):
        t = alternating(path, reads, repeats, cold=when == "cold")
        plain, verified = min(t["plain"]), min(t["verified"])
        paired = np.array(t["verified"]) / np.array(t["plain"]) - 1  # each verified read over the read before it
        m |= {f"{when}_plain_s": plain, f"{when}_verified_s": verified, f"{when}_ratio": (verified - plain) / plain,
              f"{when}_paired": float(np.median(paired))}
    arrays = read_dataset_arrays(path, checksum=False)[0]
    distance = load_dataset(path, audit=False).distance
    hash_s, _ = best(lambda: content_checksum(arrays, distance), repeats)
    sha_s, _ = best(lambda: legacy_checksum(arrays["train"], arrays["test"], distance), repeats)
    ds = load_dataset(path)
    with limited_threads(1):
        load_s, _ = best(lambda: load_dataset(path), repeats)
        audit_s, bad = best(lambda: first_mismatch(ds.train, ds.test, ds.neighbors, ds.distances, ds.distance,
                                                   audit_queries(len(ds.test))), repeats)
    assert bad is None, bad
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    all_s, bad = best(lambda: first_mismatch(ds.train, ds.test, ds.neighbors, ds.distances, ds.distance,
                                             backend="auto", threads=cores, stop_at_first=False), 1)
    assert bad is None, bad
    size = sum(a.nbytes for a in arrays.values() if a is not None)
    return m | {"MB": size / 2**20, "hash_s": hash_s, "raw_ratio": hash_s / m["warm_plain_s"],
                "raw_cold_ratio": hash_s / m["cold_plain_s"], "sha256_s": sha_s, "load_s": load_s,
                "audit_s": audit_s, "verify_all_s": all_s, "queries": len(ds.test), "cores": cores}


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    p = Parser(prog="benchmarks/dataset_integrity.py", description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=None, help="reuse (or build into) this data folder")
    p.add_argument("--source-dir", type=Path, default=root.parent / "shared" / "data",
                   help="upstream files for Fashion-MNIST (default ../shared/data beside the checkout)")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--dataset", action="append", help=f"default: {', '.join(DATASETS)}")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="annbench-integrity-") as tmp:
        data_dir = args.data_dir or Path(tmp)
        rows = []
        for name in args.dataset or DATASETS:
            start = time.perf_counter()
            _, path = resolve(name, data_dir, args.source_dir)
            print(f"{name}: file ready in {time.perf_counter() - start:.1f} s ({path})", flush=True)
            rows.append((name, measure(path, args.repeats)))
    print("\nverification, as a load pays it: read = the load's read of every array, verified = the same read "
          "with the checksum computed (fastest of each); verify = (verified - read) / read of those; paired = the "
          "median over the repeats of (each verified read / the read just before it) - 1")
    print(f"{'dataset':<28} {'MB':>6} {'read s':>7} {'verified s':>10} {'verify/read':>11} {'paired':>7} "
          f"{'cold read s':>11} {'cold verified s':>15} {'verify/cold':>11} {'paired':>7}")
    for name, m in rows:
        print(f"{name:<28} {m['MB']:>6.0f} {m['warm_plain_s']:>7.3f} {m['warm_verified_s']:>10.3f} "
              f"{m['warm_ratio']:>10.1%} {m['warm_paired']:>6.1%} {m['cold_plain_s']:>11.3f} "
              f"{m['cold_verified_s']:>15.3f} {m['cold_ratio']:>10.1%} {m['cold_paired']:>6.1%}")
    print("\nxxh3 = content_checksum alone, over the arrays already in memory; xxh3/read, xxh3/cold: over the reads "
          "above")
    print(f"{'dataset':<28} {'xxh3 s':>7} {'xxh3/read':>9} {'xxh3/cold':>9} {'sha256 s':>8} {'load s':>7} "
          f"{'audit s':>7} {'verify --all s':>14}")
    for name, m in rows:
        print(f"{name:<28} {m['hash_s']:>7.3f} {m['raw_ratio']:>8.1%} {m['raw_cold_ratio']:>8.1%} "
              f"{m['sha256_s']:>8.3f} {m['load_s']:>7.3f} {m['audit_s']:>7.3f} {m['verify_all_s']:>14.2f}")
    print(f"\ntargets: verify/read and verify/cold <= {HASH_TARGET:.0%} (both statistics); "
          f"audit (8 queries, 1 BLAS thread) <= "
          f"{AUDIT_TARGET_S} s on Fashion-MNIST; verify --all audits every query ({rows[0][1]['cores']} cores)")
    ok = all(m[f"{when}_{stat}"] <= HASH_TARGET for _, m in rows for when in ("warm", "cold")
             for stat in ("ratio", "paired") if not np.isnan(m[f"{when}_{stat}"])) and all(
        m["audit_s"] <= AUDIT_TARGET_S for n, m in rows if n.startswith("fashion"))
    print("within targets" if ok else "OUTSIDE a target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
