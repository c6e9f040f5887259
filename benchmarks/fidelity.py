#!/usr/bin/env python3
"""Fidelity: the QPS the harness reports vs the library's own tight loop (target ratio >= 0.95).

For faiss-hnsw (faiss ``IndexHNSWFlat``) and hnswlib, on the same queries in the same process with
the same parameters (single-query mode, k = 10, one thread):

* harness: the adapter loaded by algorithm name, built with the build setting, each ``--ef`` applied
  with ``set_query_params`` and timed by the harness's own single-query loop
  (``annbench.execute.measure.single_query_passes``, which ``execute`` uses: a clock read around every
  query, the answers kept);
* tight loop: an index built directly with the library and the same parameters, then a bare
  ``for q in queries: search(q)`` loop (faiss's 1×d query rows shaped before timing).

The machine may be shared, so whole passes would compare different moments of load: the queries
are cut into chunks of ``--chunk``, and for each chunk the harness loop and the tight loop alternate
(each with its own warm-up) for ``--rounds`` rounds; each side's time is the sum over chunks of its
fastest pass of that chunk. Ratio = harness QPS / tight-loop QPS. The answers of the two are
compared too (same ids = same index and parameters). Euclidean datasets only.

    python benchmarks/fidelity.py [--dataset random-s-100-euclidean] [--M 16]
                                  [--ef-construction 100] [--ef 10 40 160] [--queries 2000]
                                  [--chunk 10] [--rounds 15]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annbench.core.threads import pin_environment

pin_environment(1)  # before numpy and the libraries load their thread pools

import numpy as np  # noqa: E402

from annbench.backends.discovery import adapter_file, load_adapter  # noqa: E402
from annbench.core import paths  # noqa: E402
from annbench.core.threads import limited_threads  # noqa: E402
from annbench.datasets.registry import load  # noqa: E402
from annbench.execute.measure import single_query_passes  # noqa: E402
from annbench.plan.grid import WARMUP_FULL  # noqa: E402

K = 10


def faiss_searcher(train: np.ndarray, M: int, ef_construction: int) -> Callable[[int], Callable]:
    import faiss

    faiss.omp_set_num_threads(1)
    index = faiss.index_factory(train.shape[1], f"HNSW{M},Flat", faiss.METRIC_L2)
    index.hnsw.efConstruction = ef_construction
    index.add(train)

    def with_ef(ef: int) -> Callable:
        index.hnsw.efSearch = ef
        search = index.search
        return lambda q: search(q, K)[1][0]
    return with_ef


def hnswlib_searcher(train: np.ndarray, M: int, ef_construction: int) -> Callable[[int], Callable]:
    import hnswlib

    index = hnswlib.Index(space="l2", dim=train.shape[1])
    index.init_index(max_elements=len(train), M=M, ef_construction=ef_construction)
    index.set_num_threads(1)
    index.add_items(train)

    def with_ef(ef: int) -> Callable:
        index.set_ef(ef)
        knn = index.knn_query
        return lambda q: knn(q, K)[0][0]
    return with_ef


#: algorithm → (direct searcher factory, harness build params, harness query param name, 2-D queries?)
LIBRARIES = {
    "faiss-hnsw": (faiss_searcher, lambda M, efc: {"M": M, "efConstruction": efc}, "efSearch", True),
    "hnswlib": (hnswlib_searcher, lambda M, efc: {"M": M, "ef_construction": efc}, "ef", False),
}


def tight_pass(search: Callable, rows: list[np.ndarray]) -> tuple[int, np.ndarray]:
    """One warm-up and one timed pass of a bare loop: the pass time (ns) and its answers."""
    clock = time.perf_counter_ns
    for q in rows:
        search(q)
    start = clock()
    answers = [search(q) for q in rows]
    return clock() - start, np.asarray(answers)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="random-s-100-euclidean")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--M", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=100)
    p.add_argument("--ef", type=int, nargs="+", default=[10, 40, 160])
    p.add_argument("--rounds", type=int, default=15, help="alternations of harness and tight-loop passes")
    p.add_argument("--chunk", type=int, default=10, help="queries per alternated pass")
    p.add_argument("--queries", type=int, default=2000, help="first N test queries (default 2000)")
    p.add_argument("--algorithm", nargs="+", default=list(LIBRARIES), choices=list(LIBRARIES))
    args = p.parse_args()
    dataset = load(args.dataset, args.data_dir or paths.default_data_dir())
    if dataset.distance != "euclidean":
        raise SystemExit(f"fidelity.py compares euclidean searches; {dataset.name} is {dataset.distance}")
    train = np.ascontiguousarray(dataset.train)
    queries = dataset.test[:args.queries]
    n = len(queries)
    print(f"dataset {dataset.name} ({len(train)} x {train.shape[1]}, {n} queries); k={K}, single-query, 1 thread, "
          f"M={args.M}, ef_construction={args.ef_construction}; chunks of {args.chunk}, "
          f"fastest of {args.rounds} alternated passes each")
    print(f"{'algorithm':<11} {'ef':>4} {'harness QPS':>12} {'tight QPS':>10} {'ratio':>6} same ids")
    for algorithm in args.algorithm:
        make, build, qname, two_d = LIBRARIES[algorithm]
        if adapter_file(algorithm, paths.algorithm_dirs()) is None:
            print(f"{algorithm:<11} no adapter algorithms/{algorithm.replace('-', '_')}.py here yet: not measured")
            continue
        rows = [q[None, :] if two_d else q for q in np.ascontiguousarray(queries)]
        with_ef = make(train, args.M, args.ef_construction)
        with limited_threads(1):  # as execute() runs every build setting
            adapter = load_adapter(algorithm, paths.algorithm_dirs())("euclidean", threads=1,
                                                                      **build(args.M, args.ef_construction))
            adapter.fit(dataset.train)
            for ef in args.ef:
                adapter.set_query_params(**{qname: ef})
                search = with_ef(ef)
                harness_ns = tight_ns = 0
                same = True
                for start in range(0, n, args.chunk):
                    chunk = slice(start, start + args.chunk)
                    h, t = [], []
                    for _ in range(args.rounds):
                        m = single_query_passes(adapter, queries[chunk], K, runs=1, warmup_s=WARMUP_FULL,
                                                min_pass_s=0.0)  # one repetition per chunk, as the tight loop
                        h.append(int(m.pass_times_ns[0]))
                        elapsed, ids = tight_pass(search, rows[chunk])
                        t.append(elapsed)
                    harness_ns, tight_ns = harness_ns + min(h), tight_ns + min(t)
                    same &= np.array_equal(m.neighbors, ids.astype(np.int64))
                qps, tight_qps = n * 1e9 / harness_ns, n * 1e9 / tight_ns
                print(f"{algorithm:<11} {ef:>4} {qps:>12.0f} {tight_qps:>10.0f} {qps / tight_qps:>6.3f} "
                      f"{'yes' if same else 'no'}", flush=True)


if __name__ == "__main__":
    main()
