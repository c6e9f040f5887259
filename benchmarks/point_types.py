"""Point types beyond float32 (issue 24): exact ground truth per distance, memory of a uint8 dataset,
recall/QPS fronts of float32 vs uint8 Fashion-MNIST.

1. Exact top-100 ground truth (``annbench.quality.groundtruth.exact_knn``) per distance against a plain
   numpy reference on the same arrays, and for hamming against faiss ``IndexBinaryFlat`` alone
   (target: annbench / faiss <= 1.2; annbench uses faiss's own top-k where faiss imports, so the numpy scan
   it falls back to is timed against faiss too): euclidean over Fashion-MNIST uint8 and float32, hamming over
   random-s-128-hamming, jaccard over random-s-jaccard. Alternated, best of ``--repeats``; the time per
   distance (ns per query-train pair) compares the distances' paths (target: hamming, jaccard and uint8
   no slower per distance than float32 euclidean).
2. Memory: the train and test arrays of the loaded uint8 Fashion-MNIST vs its float32 twin
   (``Dataset.memory_bytes``; target ratio ~0.25), and each load's resident-memory growth.
3. Fronts: ``run.py`` on the first ``--max-train`` / ``--max-test`` rows of both, quick grids of
   faiss-hnsw and hnswlib (uint8 converted to float32 by the harness) and usearch (float32 rows in f32
   storage; uint8 rows given as int8, ``x - 128``, into i8 storage: native, exact for euclidean):
   per algorithm and dataset the best QPS at recall >= 0.9 and 0.99.

    python benchmarks/point_types.py [--source-dir ../shared/data] [--queries 1000] [--max-train 20000]
        [--parts ground-truth,memory,fronts] [--distances euclidean,hamming,jaccard] [--threads N] [--share-cores]

The hamming ground-truth figure alone (about a minute on a quiet 2-core machine):
``python benchmarks/point_types.py --parts ground-truth --distances hamming --repeats 5``.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def best_of(repeats: int, *fns: object) -> list[float]:
    """Each callable's best wall time over ``repeats`` rounds, alternating them within each round."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t)
    return best


def numpy_euclidean(train: np.ndarray, test: np.ndarray, k: int) -> np.ndarray:
    x, q = train.astype(np.float64), test.astype(np.float64)
    x_sq = (x * x).sum(1)
    out = []
    for s in range(0, len(q), 256):
        d = x_sq[None, :] - 2 * q[s:s + 256] @ x.T
        out.append(np.argsort(d, axis=1, kind="stable")[:, :k])
    return np.concatenate(out)


def numpy_hamming(train: np.ndarray, test: np.ndarray, k: int) -> np.ndarray:
    x = np.unpackbits(train, axis=1).astype(np.float32)
    q = np.unpackbits(test, axis=1).astype(np.float32)
    d = x.sum(1)[None, :] + q.sum(1)[:, None] - 2 * q @ x.T  # differing bits of 0/1 rows
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def numpy_jaccard(train: object, test: object, k: int) -> np.ndarray:  # CSR matrices
    x, q = train.toarray().astype(np.float32), test.toarray().astype(np.float32)
    inter = q @ x.T
    union = q.sum(1)[:, None] + x.sum(1)[None, :] - inter
    d = 1 - np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def faiss_binary(train: np.ndarray, test: np.ndarray, k: int, threads: int) -> None:
    import faiss

    index = faiss.IndexBinaryFlat(train.shape[1] * 8)
    index.add(train)
    faiss.omp_set_num_threads(threads)
    index.search(test, k)


def ground_truth(data_dir: Path, source_dir: Path, queries: int, repeats: int, distances: list[str],
                 threads: int) -> None:
    from annbench.datasets.registry import load
    from annbench.quality.groundtruth import exact_knn

    print(f"1. exact top-100 ground truth, first {queries} queries, best of {repeats} (alternated), {threads} "
          f"threads")
    print(f"{'dataset':<36} {'annbench s':>10} {'ns/dist':>8} {'numpy s':>9} {'faiss s':>8} {'annb/faiss':>10}  "
          f"same ids")
    cases = [("fashion-mnist-784-uint8-euclidean", numpy_euclidean, None),
             ("fashion-mnist-784-euclidean", numpy_euclidean, None),
             ("random-s-128-hamming", numpy_hamming, faiss_binary),
             ("random-s-jaccard", numpy_jaccard, None)]
    for name, reference, faiss_fn in cases:
        if name.rsplit("-", 1)[1] not in distances:
            continue
        ds = load(name, data_dir, source_dir)
        test = ds.test[:queries]
        fns = [lambda: exact_knn(ds.train, test, ds.distance, 100, threads=threads),
               lambda: reference(ds.train, test, 100)]
        if faiss_fn is not None:
            fns.append(lambda: faiss_fn(ds.train, test, 100, threads))
            # the numpy scan ground truth falls back to where faiss does not import
            fns.append(lambda: exact_knn(ds.train, test, ds.distance, 100, threads=threads, backend="numpy"))
        times = best_of(repeats, *fns)
        ours = exact_knn(ds.train, test, ds.distance, 100, threads=threads)[1]
        ref_ids = reference(ds.train, test, 100)
        from annbench.quality.distances import distances_to_ids

        same = np.allclose(distances_to_ids(test, ds.train, ref_ids, ds.distance), ours, rtol=1e-5, atol=1e-5)
        ratio = f"{times[0] / times[2]:10.2f}" if faiss_fn else f"{'':>10}"
        fs = f"{times[2]:8.3f}" if faiss_fn else f"{'':>8}"
        per = times[0] / (len(ds.train) * len(test)) * 1e9
        print(f"{name:<36} {times[0]:10.3f} {per:8.3f} {times[1]:9.3f} {fs} {ratio}  "
              f"{'same distances' if same else 'DIFFER'}", flush=True)
        if faiss_fn is not None:
            fallback = exact_knn(ds.train, test, ds.distance, 100, threads=threads, backend="numpy")[1]
            print(f"{'  numpy scan (without faiss)':<36} {times[3]:10.3f} "
                  f"{times[3] / (len(ds.train) * len(test)) * 1e9:8.3f} {'':>9} {'':>8} {times[3] / times[2]:10.2f}  "
                  f"{'same distances' if np.array_equal(fallback, ours) else 'DIFFER'}", flush=True)


def _load_rss(data_dir: Path, name: str) -> int:
    """Resident-memory growth (bytes) of a fresh interpreter loading ``name`` (imports done first)."""
    code = ("import sys; from annbench.datasets.format import load_dataset; import annbench.quality.bitset\n"
            "def rss(): return int(next(x for x in open('/proc/self/status') if x.startswith('VmRSS')).split()[1])\n"
            "before = rss(); ds = load_dataset(sys.argv[1], audit=False); print(rss() - before)")
    out = subprocess.run([sys.executable, "-c", code, str(data_dir / f"{name}.hdf5")], capture_output=True, text=True,
                         check=True, env={**os.environ})
    return int(out.stdout.strip()) * 1024


def memory(data_dir: Path, source_dir: Path) -> None:
    from annbench.datasets.registry import load

    u8 = load("fashion-mnist-784-uint8-euclidean", data_dir, source_dir)
    f32 = load("fashion-mnist-784-euclidean", data_dir, source_dir)
    print("\n2. memory of the loaded train and test arrays (Dataset.memory_bytes) and each load's peak RSS growth")
    growth = {n: _load_rss(data_dir, n) for n in (u8.name, f32.name)}
    for ds in (u8, f32):
        print(f"{ds.name:<36} {ds.point_type:<8} arrays {ds.memory_bytes / 2**20:8.1f} MiB   load RSS growth "
              f"{growth[ds.name] / 2**20:8.1f} MiB")
    print(f"ratio uint8 / float32: arrays {u8.memory_bytes / f32.memory_bytes:.3f}, "
          f"RSS growth {growth[u8.name] / growth[f32.name]:.3f}")


def fronts(data_dir: Path, source_dir: Path, max_train: int, max_test: int, share_cores: bool = False) -> None:
    from annbench.analyse.frames import results_frame
    from annbench.cli.run import main as run_main

    print(f"\n3. recall/QPS, quick grids, first {max_train} train / {max_test} test rows, best QPS at recall >= r")
    print(f"{'dataset':<36} {'algorithm':<12} {'given as':>15} {'qps@0.9':>9} {'qps@0.99':>9} {'index MiB':>9}")
    with tempfile.TemporaryDirectory(prefix="annbench-point-types-") as results:
        for base in ("fashion-mnist-784-euclidean", "fashion-mnist-784-uint8-euclidean"):
            # usearch's storage follows the rows: f32 for float32 rows, i8 for the uint8 rows it is given as
            # int8 (a float32 row in i8 storage would be scaled into [-1, 1] by usearch: not this comparison)
            configs = Path(results) / f"configs-{base}"
            configs.mkdir()
            grid = (Path(__file__).resolve().parents[1] / "annbench" / "backends" / "configs" / "usearch.yml")
            text = grid.read_text().replace("build: {connectivity: [8, 16], expansion_add: [128]}",
                                            "build: {connectivity: [8, 16], expansion_add: [128], dtype: "
                                            f"[{'i8' if 'uint8' in base else 'f32'}]}}")
            assert "dtype" in text, "usearch's quick grid changed: update this benchmark"
            (configs / "usearch.yml").write_text(text)
            code = run_main(["--dataset", base, "--data-dir", str(data_dir), "--source-dir", str(source_dir),
                             "--results", results, "--algorithm", "faiss-hnsw,hnswlib,usearch", "--runs", "2",
                             "--preset", "quick", "--configs-dir", str(configs), "--no-plot",
                             "--max-train", str(max_train), "--max-test", str(max_test),
                             *(["--share-cores"] if share_cores else [])])
            assert code == 0, f"run.py failed on {base}"
            name = f"{base}-train{max_train}-test{max_test}"
            frame = results_frame(results, name)
            ok = frame[frame["status"] == "ok"]
            for algorithm, runs in ok.groupby("algorithm"):
                given = "as stored"
                if "converted_from" in runs and runs["converted_from"].notna().any():
                    to = runs["converted_to"].dropna() if "converted_to" in runs else runs["converted_from"][:0]
                    given = f"{runs['converted_from'].dropna().iloc[0]}->{to.iloc[0] if len(to) else 'float32'}"
                cells = [runs[runs["recall"] >= r]["qps"].max() for r in (0.9, 0.99)]
                size = runs["index_bytes"].max() / 2**20
                print(f"{base:<36} {algorithm:<12} {given:>15} " + " ".join(f"{c:9.0f}" for c in cells) +
                      f" {size:9.1f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source-dir", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    p.add_argument("--data-dir", type=Path, default=None, help="default: a temporary folder")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="ground truth threads, faiss's too (default: every "
                   "core this process may use)")
    p.add_argument("--max-train", type=int, default=20_000)
    p.add_argument("--max-test", type=int, default=500)
    p.add_argument("--parts", default="ground-truth,memory,fronts", help="which parts (default all three)")
    p.add_argument("--distances", default="euclidean,hamming,jaccard", help="ground-truth cases (default all)")
    p.add_argument("--share-cores", action="store_true", help="fronts: measure on cores other sweeps claimed "
                   "(run.py --share-cores) rather than wait for free ones")
    args = p.parse_args()
    parts = args.parts.split(",")
    start = time.perf_counter()
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; cores: {len(os.sched_getaffinity(0))}; "
          f"max RSS so far {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB")
    with tempfile.TemporaryDirectory(prefix="annbench-data-") as tmp:
        data_dir = args.data_dir or Path(tmp)
        if "ground-truth" in parts:
            ground_truth(data_dir, args.source_dir, args.queries, args.repeats, args.distances.split(","),
                         args.threads or len(os.sched_getaffinity(0)))
        if "memory" in parts:
            memory(data_dir, args.source_dir)
        if "fronts" in parts:
            fronts(data_dir, args.source_dir, args.max_train, args.max_test, args.share_cores)
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
          f"{time.perf_counter() - start:.0f} s in all")


if __name__ == "__main__":
    main()
