#!/usr/bin/env python3
"""Raw vs network-encoded features: what the ANN libraries and a k-NN classifier see.

For a labelled dataset (default Fashion-MNIST, built from ``../shared/data``) and its MLP
(and CNN, where PyTorch is installed) encodings at the given widths, prints the network's
test accuracy, the exact 10-NN accuracy (full test split), the encoding time (training +
feature extraction + ground truth), then per algorithm the QPS at recall >= 0.9 (fastest
run of the quick grid reaching it, single-query mode, on the first ``--queries`` test
points: the registry's ``-test<N>`` subset), its build time and its kNN accuracy, as
``compare.py`` tabulates them.

With ``--binary`` each encoding's binary codes (``encode.py --binary``: every feature thresholded at its
training median, packed, hamming) are measured too, with the ``--binary-algorithms``, and a last table
sets each binary encoding beside the float encoding of nearest exact 10-NN accuracy: "the binary codes
against the float encoding at equal k-NN accuracy", best QPS at recall >= 0.9 and 0.99 of each.
``--results DIR`` keeps the runs, for ``compare.py --dataset <source> --results DIR`` to show them.

    python benchmarks/encoded.py [--source fashion-mnist-784-euclidean] [--widths 32,128]
        [--models mlp,cnn] [--algorithms A,B] [--queries 1000] [--data-dir DIR]
        [--binary [--binary-algorithms A,B]] [--results DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from annbench.core.threads import pin_environment  # noqa: E402

pin_environment(1)


from annbench.analyse.compare import side_by_side  # noqa: E402
from annbench.analyse.frames import results_frame  # noqa: E402
from annbench.apps.binary import binarize  # noqa: E402
from annbench.apps.encode import encode  # noqa: E402
from annbench.apps.encoders.base import EncoderSettings  # noqa: E402
from annbench.backends.discovery import AdapterUnavailable, load_adapter  # noqa: E402
from annbench.core import paths  # noqa: E402
from annbench.core.claims import CoreClaims  # noqa: E402
from annbench.datasets.format import Dataset  # noqa: E402
from annbench.datasets.registry import load  # noqa: E402
from annbench.execute.executors import ExecutorKind, execute, make_executor  # noqa: E402
from annbench.execute.isolation import available_cores  # noqa: E402
from annbench.plan.grid import RunOptions, make_plan  # noqa: E402
from annbench.quality.metrics import knn_accuracy  # noqa: E402
from annbench.store.folder import ResultStore  # noqa: E402

#: Exact tree methods: in hundreds of dimensions they are a slow brute force; bruteforce is the exact reference.
SLOW = ("kdtree", "balltree")
K = 10


def available_algorithms(distance: str) -> list[str]:
    from annbench.plan.config import all_configs, load_config

    out = []
    for name, path in sorted(all_configs(paths.config_dirs()).items()):
        if name in SLOW or distance not in load_config(path).metrics:
            continue
        try:
            load_adapter(name, paths.algorithm_dirs())
        except AdapterUnavailable:
            continue
        out.append(name)
    return out


def equal_accuracy(at_90: object, at_99: object, encodings: list[Dataset]) -> str:
    """Each binary encoding beside the float encoding of nearest exact 10-NN accuracy: best QPS (any
    algorithm) at recall >= 0.9 and 0.99, index bytes of that run, exact accuracy of each."""
    import numpy as np

    def exact(ds: Dataset) -> float:
        return knn_accuracy(ds.neighbors, ds.train_labels, ds.test_labels, K)

    def best(table: object, name: str) -> tuple[float, str, float]:
        rows = table[table["dataset"].str.startswith(name) & table["qps_at_recall"].notna()]  # type: ignore[index]
        if rows.empty:
            return float("nan"), "-", float("nan")
        top = rows.loc[rows["qps_at_recall"].idxmax()]
        return float(top["qps_at_recall"]), str(top["algorithm"]), float(top["index_bytes"])

    floats = [ds for ds in encodings if ds.distance != "hamming"]
    lines = [f"{'binary codes':<40} {'acc':>6}  {'float encoding of nearest accuracy':<40} {'acc':>6}  "
             f"{'qps@0.9 bin / float':>26}  {'qps@0.99 bin / float':>26}  {'index bytes bin / float':>24}"]
    for b in (ds for ds in encodings if ds.distance == "hamming"):
        if not floats:
            break
        f = min(floats, key=lambda ds: abs(exact(ds) - exact(b)))
        (bq, ba, bb), (fq, fa, fb) = best(at_90, b.name), best(at_90, f.name)
        (bq2, ba2, _), (fq2, fa2, _) = best(at_99, b.name), best(at_99, f.name)
        lines.append(f"{b.name:<40} {exact(b):6.4f}  {f.name:<40} {exact(f):6.4f}  "
                     f"{bq:9.0f} {ba[:6]:>6} / {fq:6.0f} {fa[:6]:>6}  {bq2:9.0f} {ba2[:6]:>6} / {fq2:6.0f} "
                     f"{fa2[:6]:>6}  {bb:11.0f} / {fb:10.0f}" if np.isfinite(bq) or np.isfinite(fq) else
                     f"{b.name:<40} {exact(b):6.4f}  {f.name:<40} {exact(f):6.4f}  (no run reached recall 0.9)")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", default="fashion-mnist-784-euclidean")
    p.add_argument("--source-dir", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--data-dir", type=Path, default=None, help="default: $ANNBENCH_DATA_DIR or ./datasets")
    p.add_argument("--widths", default="32,128")
    p.add_argument("--models", default="mlp,cnn")
    p.add_argument("--mlp-epochs", type=int, default=10)
    p.add_argument("--cnn-epochs", type=int, default=3)
    p.add_argument("--algorithms", default=None, help="default: every installed one but kdtree/balltree")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="training threads")
    p.add_argument("--binary", action="store_true", help="also each encoding's binary codes (hamming)")
    p.add_argument("--binary-algorithms", default="faiss-binary-flat,faiss-binary-hnsw,usearch-binary",
                   help="algorithms of the binary codes (default faiss-binary-flat,faiss-binary-hnsw,usearch-binary)")
    p.add_argument("--results", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    p.add_argument("--share-cores", action="store_true", help="measure on cores other sweeps claimed (run.py's "
                   "--share-cores: the runs say cores_shared) rather than wait for free ones")
    args = p.parse_args()
    data_dir = args.data_dir or paths.default_data_dir()
    widths = [int(w) for w in args.widths.split(",")]
    models = [m for m in args.models.split(",") if m]
    if "cnn" in models:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("torch is not installed: CNN rows skipped (pip install -e '.[torch]')")
            models.remove("cnn")

    t0 = time.perf_counter()
    raw = load(args.source, data_dir, args.source_dir)
    print(f"source {raw.name}: train {raw.train.shape}, test {raw.test.shape} "
          f"(ready in {time.perf_counter() - t0:.1f} s)")
    datasets: list[Dataset] = [raw]
    facts = {raw.name: {"net_acc": float("nan"), "encode_s": 0.0}}
    for model in models:
        for width in widths:
            epochs = args.mlp_epochs if model == "mlp" else args.cnn_epochs
            settings = EncoderSettings(model, width, epochs=epochs, seed=0, threads=args.threads)
            start = time.perf_counter()
            o = encode(raw, settings, raw.distance, data_dir, progress=False)
            total = time.perf_counter() - start
            ds = load(o.name, data_dir)
            datasets.append(ds)
            facts[o.name] = {"net_acc": o.test_accuracy, "train_s": o.training_s, "features_s": o.encoding_s,
                             "encode_s": total if not o.reused else float("nan"), "epochs": epochs}
            if args.binary:
                start = time.perf_counter()
                b = binarize(ds, model, data_dir)
                datasets.append(load(b.name, data_dir))
                facts[b.name] = {**facts[o.name], "encode_s": time.perf_counter() - start, "train_s": 0.0,
                                 "features_s": 0.0}

    print(f"\n{'dataset':<42} {'dim':>5} {'epochs':>6} {'net_acc':>8} {'exact_10nn_acc':>14} {'train_s':>8} "
          f"{'features_s':>10} {'encode_s':>9}")
    for ds in datasets:
        f = facts[ds.name]
        acc = knn_accuracy(ds.neighbors, ds.train_labels, ds.test_labels, K)
        print(f"{ds.name:<42} {ds.dimension:>5} {f.get('epochs', '-'):>6} {f['net_acc']:>8.4f} {acc:>14.4f} "
              f"{f.get('train_s', 0.0):>8.1f} {f.get('features_s', 0.0):>10.2f} {f['encode_s']:>9.1f}")

    algorithms = args.algorithms.split(",") if args.algorithms else available_algorithms(raw.distance)
    binary_algorithms = args.binary_algorithms.split(",")
    binary_note = "; binary codes: " + ", ".join(binary_algorithms) if args.binary else ""
    print(f"\nalgorithms (quick grids, single-query mode, k={K}, {args.runs} timed passes, first {args.queries} "
          f"queries): {', '.join(algorithms)}{binary_note}")
    with tempfile.TemporaryDirectory() as tmp:
        results = args.results or Path(tmp)
        store = ResultStore(results)
        claims = CoreClaims(store.root, available_cores(), share=True) if args.share_cores else None
        names = []
        for ds in datasets:
            # the registry's query subset (first --queries test points, ground truth recomputed), as a file:
            # the runner's isolated workers open the dataset file themselves
            sub = load(ds.name, data_dir, max_test=args.queries) if args.queries < len(ds.test) else ds
            plan = make_plan(sub.name, sub.path, sub.distance, binary_algorithms if ds.distance == "hamming"
                             else algorithms, "quick", RunOptions(k=K, runs=args.runs), paths.config_dirs(),
                             paths.algorithm_dirs())
            start = time.perf_counter()
            execute(make_executor(ExecutorKind.LOCAL, store, claims=claims), plan, sub)
            print(f"  {sub.name}: {plan.n_runs} runs in {time.perf_counter() - start:.0f} s", flush=True)
            names.append(sub.name)
        frame = results_frame(results)
        table = side_by_side(frame, names, 0.9, data_dir)
        strict = side_by_side(frame, names, 0.99, data_dir)
    print()
    print(table.drop(columns=["build_params", "query_params", "net_accuracy", "index_bytes"]).to_string(
        index=False, float_format=lambda v: f"{v:.4g}"))
    if args.binary:
        print()
        print(equal_accuracy(table, strict, [ds for ds in datasets if ds.name != raw.name]))


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    main()
