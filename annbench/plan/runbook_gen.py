"""The shipped runbooks (``annbench/plan/runbooks/*.yaml``), generated: ``python -m annbench.plan.runbook_gen``.

One file per kind, one entry per registered dataset (keyed by its name, so ``--runbook simple`` picks the
dataset's own entry), in big-ann-benchmarks' format:

- ``simple``: insert every train row, search, delete the first half, search, insert it again, search
  (big-ann-benchmarks' ``simple_runbook.yaml`` on any size);
- ``sliding-window``: 20 equal batches inserted in order; once 5 are live, each insert is followed by
  the delete of the oldest batch; a search after every batch;
- ``expiration-time``: 20 batches, each given a lifetime when inserted (seeded): 2 batches with
  probability 15/19, 10 with 3/19, forever with 1/19 (big-ann-benchmarks' ``gen_expiration_time_runbook.py``
  ratios); expired batches are deleted before the search that follows each insert;
- ``clustered``: for the ``*-clustered`` datasets (train rows sorted by blob), 16 inserts of
  consecutive blobs, a search after each: the index never sees the next cluster before it arrives.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import Any

import numpy as np
import yaml

#: Where the shipped runbooks live (package data).
RUNBOOK_DIR = Path(__file__).resolve().parent / "runbooks"
KINDS = ("simple", "sliding-window", "expiration-time", "clustered")
BATCHES, WINDOW, CLUSTER_GROUPS, SEED = 20, 5, 16, 0
#: Lifetimes in batches of the expiration-time runbook and their odds (None: never deleted).
LIFETIMES = ((2, 15), (10, 3), (None, 1))

Entry = dict[Any, Any]


def _steps(ops: list[dict[str, Any]], max_pts: int) -> Entry:
    return {"max_pts": max_pts, **{i: op for i, op in enumerate(ops, 1)}}


def _op(operation: str, start: int | None = None, end: int | None = None) -> dict[str, Any]:
    return {"operation": operation} if start is None else {"operation": operation, "start": start, "end": end}


def simple(n: int) -> Entry:
    half = n // 2
    return _steps([_op("insert", 0, n), _op("search"), _op("delete", 0, half), _op("search"),
                   _op("insert", 0, half), _op("search")], n)


def _batches(n: int, count: int) -> list[tuple[int, int]]:
    bounds = np.linspace(0, n, count + 1).astype(int)
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))


def sliding_window(n: int) -> Entry:
    ops, batches = [], _batches(n, BATCHES)
    for i, (start, end) in enumerate(batches):
        ops.append(_op("insert", start, end))
        if i >= WINDOW:
            ops.append(_op("delete", *batches[i - WINDOW]))
        ops.append(_op("search"))
    return _steps(ops, max(e - s for s, e in batches) * (WINDOW + 1))


def expiration_time(n: int) -> Entry:
    rng = random.Random(SEED)
    ops, batches = [], _batches(n, BATCHES)
    expiring: dict[int, list[tuple[int, int]]] = {}
    for i, (start, end) in enumerate(batches):
        ops.append(_op("insert", start, end))
        life = rng.choices([lt for lt, _ in LIFETIMES], weights=[w for _, w in LIFETIMES])[0]
        if life is not None:
            expiring.setdefault(i + life, []).append((start, end))
        ops += [_op("delete", s, e) for s, e in expiring.pop(i, [])]
        ops.append(_op("search"))
    return _steps(ops, n)


def clustered(labels: np.ndarray) -> Entry:
    """Inserts of consecutive blobs of the rows sorted by blob (``labels`` sorted), a search after each."""
    blob_starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    groups = np.array_split(blob_starts, min(CLUSTER_GROUPS, len(blob_starts)))
    bounds = [int(g[0]) for g in groups] + [len(labels)]
    ops = []
    for start, end in zip(bounds[:-1], bounds[1:]):
        ops += [_op("insert", start, end), _op("search")]
    return _steps(ops, len(labels))


def generate() -> dict[str, dict[str, Entry]]:
    """Every shipped runbook: kind → dataset name → entry."""
    from annbench.datasets.builtin import RANDOM_SETS, blobs
    from annbench.datasets.registry import registry

    sizes = {name: spec.n_train for name, spec in registry().items()}
    out: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
    for name, n in sizes.items():
        out["simple"][name] = simple(n)
        out["sliding-window"][name] = sliding_window(n)
        out["expiration-time"][name] = expiration_time(n)
    for size, n, d, centers in RANDOM_SETS:
        name = f"random-{size}-{d}-euclidean-clustered"
        out["clustered"][name] = clustered(np.sort(blobs(n, d, centers)[2], kind="stable"))
        assert sizes[name] == n - n // 10
    return out


#: ``yaml.safe_dump``, in C where PyYAML has it: the same bytes, five to ten times sooner (~1 s for these files).
SAFE_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def write(folder: Path = RUNBOOK_DIR) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, entries in generate().items():
        path = folder / f"{kind}.yaml"
        header = f"# {kind} runbooks for annbench's datasets, generated by `python -m annbench.plan.runbook_gen`\n"
        text = yaml.dump(entries, Dumper=SAFE_DUMPER, sort_keys=False, default_flow_style=None)
        path.write_text(header + text, encoding="utf-8")
        written.append(path)
    return written


def shipped(name: str) -> Path | None:
    """The shipped runbook called ``name`` (``simple``, ``clustered`` ...), None if there is none."""
    path = RUNBOOK_DIR / f"{name}.yaml"
    return path if name in KINDS and path.is_file() else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m annbench.plan.runbook_gen", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=RUNBOOK_DIR, help=f"folder to write into (default {RUNBOOK_DIR})")
    args = p.parse_args(argv)
    for path in write(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
