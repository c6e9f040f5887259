"""Cost of verifying dataset files: reading vs hashing every array, the 8-query ground-truth audit
of every load, and ``dataset.py verify --all``, on Fashion-MNIST and random-s-100.

    python benchmarks/dataset_integrity.py [--data-dir DIR] [--source-dir ../shared/data] [--repeats 5]

Datasets missing from ``--data-dir`` (default: a temporary folder) are built with the registry
(Fashion-MNIST from ``--source-dir``). Targets: hashing <= 10 % of the time to read the file
(h5py, every array into memory; "read" with the file in the page cache, the fastest read and the
strictest ratio; "cold read" after dropping this one file's pages with ``posix_fadvise``), the audit <= 0.2 s on Fashion-MNIST (BLAS pinned to one thread, as run.py's default
``--threads 1``). The machine is shared, so every figure is the minimum of ``--repeats`` and the
ratio is of two figures measured in one run.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annbench.cli.common import Parser  # noqa: E402
from annbench.core.threads import limited_threads  # noqa: E402
from annbench.datasets.audit import audit_queries, first_mismatch  # noqa: E402
from annbench.datasets.format import (  # noqa: E402
    CHECKSUM_FIELDS,
    content_checksum,
    legacy_checksum,
    load_dataset,
)
from annbench.datasets.registry import resolve  # noqa: E402

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


def read_arrays(path: Path) -> dict[str, Any]:
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in CHECKSUM_FIELDS if k in f}


def evicted_read(path: Path) -> dict[str, Any]:
    """Read after asking the kernel to drop this file's pages from its cache (this file only)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return read_arrays(path)


def measure(path: Path, repeats: int) -> dict[str, float]:
    cold_s, _ = best(lambda: evicted_read(path), min(repeats, 3)) if hasattr(os, "posix_fadvise") else (float("nan"), 0)
    read_s, arrays = best(lambda: read_arrays(path), repeats)
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
    size = sum(a.nbytes for a in arrays.values())
    return {"MB": size / 2**20, "read_s": read_s, "hash_s": hash_s, "ratio": hash_s / read_s, "sha256_s": sha_s,
            "cold_s": cold_s, "cold_ratio": hash_s / cold_s,
            "load_s": load_s, "audit_s": audit_s, "verify_all_s": all_s, "queries": len(ds.test), "cores": cores}


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    p = Parser(prog="benchmarks/dataset_integrity.py", description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=None, help="reuse (or build into) this data folder")
    p.add_argument("--source-dir", type=Path, default=root.parent / "shared" / "data",
                   help="upstream files for Fashion-MNIST (default ../shared/data beside the checkout)")
    p.add_argument("--repeats", type=int, default=5)
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
    print(f"\n{'dataset':<28} {'MB':>6} {'read s':>7} {'xxh3 s':>7} {'hash/read':>9} {'cold read s':>11} "
          f"{'hash/cold':>9} {'sha256 s':>8} {'load s':>7} {'audit s':>7} {'verify --all s':>14}")
    for name, m in rows:
        print(f"{name:<28} {m['MB']:>6.0f} {m['read_s']:>7.3f} {m['hash_s']:>7.3f} {m['ratio']:>8.1%} "
              f"{m['cold_s']:>11.3f} {m['cold_ratio']:>8.1%} {m['sha256_s']:>8.3f} {m['load_s']:>7.3f} "
              f"{m['audit_s']:>7.3f} {m['verify_all_s']:>14.2f}")
    print(f"\ntargets: hash/read <= {HASH_TARGET:.0%}; audit (8 queries, 1 BLAS thread) <= {AUDIT_TARGET_S} s on "
          f"Fashion-MNIST; verify --all audits every query ({rows[0][1]['cores']} cores)")
    ok = all(m["ratio"] <= HASH_TARGET for _, m in rows) and all(
        m["audit_s"] <= AUDIT_TARGET_S for n, m in rows if n.startswith("fashion"))
    print("within targets" if ok else "OUTSIDE a target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
