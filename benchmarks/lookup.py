#!/usr/bin/env python3
"""Lookups: surnames through the character GRU, a saved annoy index, and how fast one lookup is.

1. Surnames (built from ``../shared/data``): per ``--dims`` width, the GRU encoding's training time,
   the network's test accuracy, the exact k-NN accuracy and the k-NN accuracy through the saved
   annoy index (``n_trees``, ``search_k``), k = 5 and 10, over the 4,015 test surnames; the same for
   the raw character n-gram count vectors (``surnames-ngram-<--ngram-dim>-angular``); and the
   majority-class rate, the accuracy of always answering the largest class.
2. Latency, on the surnames GRU encoding (first width) and on the GloVe subset
   (``glove.6B.50d.first2446.txt`` with 200 held out): in-process ``Lookup.nearest(key, 10)`` p50/p99
   over ``--queries`` keys with the saved annoy index vs exact search; then the wall time of one
   ``dataset.py lookup`` command (process start included; median of 3) both ways.

    python benchmarks/lookup.py [--dims 32,64] [--epochs 10] [--n-trees 50] [--search-k 2000]
        [--queries 500] [--data-dir DIR] [--source-dir DIR]

Target: in-process p50 <= 1 ms with the saved index.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from annbench.core.threads import pin_environment  # noqa: E402

pin_environment(1)

import numpy as np  # noqa: E402

from annbench.apps.encode import encode  # noqa: E402
from annbench.apps.encoders.base import EncoderSettings  # noqa: E402
from annbench.apps.lookup import Lookup, save_index  # noqa: E402
from annbench.datasets.format import load_dataset  # noqa: E402
from annbench.datasets.registry import load  # noqa: E402
from annbench.datasets.user import create  # noqa: E402
from annbench.quality.metrics import knn_accuracy  # noqa: E402

KS = (5, 10)


def annoy_knn(lookup: Lookup, ks: tuple[int, ...] = KS) -> dict[int, float]:
    """k-NN accuracy of the test vectors through ``lookup``'s index (ids of the max k, voted per k)."""
    ds = lookup.dataset
    ids = np.array([lookup.search(q, max(ks))[0] for q in ds.test])
    return {k: knn_accuracy(ids, ds.train_labels, ds.test_labels, k) for k in ks}


def latencies_ms(lookup: Lookup, keys: list[str], k: int = 10) -> np.ndarray:
    for key in keys[:20]:  # warm-up
        lookup.nearest(key, k)
    out = []
    for key in keys:
        t0 = time.perf_counter_ns()
        lookup.nearest(key, k)
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return np.array(out)


def command_s(data_dir: Path, name: str, key: str, *extra: str) -> float:
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, str(REPO / "dataset.py"), "--data-dir", str(data_dir), "lookup", name, key,
                        "-k", "10", *extra], check=True, capture_output=True, cwd=REPO)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dims", default="32,64")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--ngram-dim", type=int, default=256, choices=(64, 128, 256, 512))
    p.add_argument("--n-trees", type=int, default=50)
    p.add_argument("--search-k", type=int, default=2000)
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--source-dir", type=Path,
                   default=Path(os.environ.get("ANNBENCH_SOURCE_DIR") or REPO.parent / "shared" / "data"))
    args = p.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="annbench-lookup-"))
    build, query = {"n_trees": args.n_trees}, {"search_k": args.search_k}
    print(f"data folder {data_dir}; annoy n_trees={args.n_trees} search_k={args.search_k}; 1 thread", flush=True)

    source = load("surnames", data_dir, args.source_dir)
    counts = np.bincount(source.test_labels)
    print(f"surnames: {len(source.train)} train / {len(source.test)} test; majority-class rate on test "
          f"{counts.max() / len(source.test):.4f} (all rows: 9408/20074 = {9408 / 20074:.4f})\n")
    print(f"{'dataset':<38} {'train_s':>8} {'net_acc':>8} " + " ".join(
        f"{f'exact@{k}':>9} {f'annoy@{k}':>9}" for k in KS), flush=True)
    encoded = []
    for dim in (int(d) for d in args.dims.split(",")):
        o = encode(source, EncoderSettings("gru", dim, epochs=args.epochs, hidden=64), "euclidean", data_dir,
                   progress=False)
        encoded.append(o.name)
        save_index(load_dataset(o.path, name=o.name), "annoy", build, query)
        exact = load_dataset(o.path).attrs
        approx = annoy_knn(Lookup(o.name, data_dir))
        print(f"{o.name:<38} {o.training_s:>8.1f} {o.test_accuracy:>8.4f} " + " ".join(
            f"{exact[f'knn_accuracy_exact_k{k}']:>9.4f} {approx[k]:>9.4f}" for k in KS), flush=True)
    ngram = f"surnames-ngram-{args.ngram_dim}-angular"
    ds = load(ngram, data_dir, args.source_dir)
    save_index(ds, "annoy", build, query)
    approx = annoy_knn(Lookup(ngram, data_dir))
    print(f"{ngram + ' (raw)':<38} {'-':>8} {'-':>8} " + " ".join(
        f"{knn_accuracy(ds.neighbors, ds.train_labels, ds.test_labels, k):>9.4f} {approx[k]:>9.4f}" for k in KS))

    glove = create(args.source_dir / "glove-subset" / "glove.6B.50d.first2446.txt", "glove-small", "angular",
                   data_dir, test_size=200, force=True)
    save_index(load_dataset(glove.path, name=glove.name), "annoy", build, query)
    print(f"\n{'latency of Lookup.nearest(key, 10)':<38} {'index':<12} {'p50_ms':>8} {'p99_ms':>8}   "
          f"one dataset.py lookup command (s)")
    rng = np.random.default_rng(0)
    for name in (encoded[0], glove.name):
        saved, exact = Lookup(name, data_dir), Lookup(name, data_dir, exact=True)
        keys = list(dict.fromkeys(saved.dataset.keys))
        picks = [keys[i] for i in rng.choice(len(keys), min(args.queries, len(keys)), replace=False)]
        for label, lookup, extra in (("saved annoy", saved, ()), ("exact", exact, ("--exact",))):
            ms = latencies_ms(lookup, picks)
            print(f"{name:<38} {label:<12} {np.percentile(ms, 50):>8.3f} {np.percentile(ms, 99):>8.3f}   "
                  f"{command_s(data_dir, name, picks[0], *extra):.2f}", flush=True)


if __name__ == "__main__":
    main()
