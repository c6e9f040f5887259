"""Exact k-nearest neighbours, in bounded memory.

Candidates come from a blocked brute-force search (faiss ``IndexFlat*`` when faiss is importable and
more than one thread may search, otherwise numpy BLAS + ``argpartition``), over-fetched by a margin;
their distances are then recomputed exactly (from differences, summed in float64) and re-ranked by
``(distance, id)``, so stored distances are exact and ties are broken by the smaller id.
"""

from __future__ import annotations

import logging

import numpy as np

from annbench.core.threads import available_cores
from annbench.quality.distances import check_metric, distances_to_ids, normalized

log = logging.getLogger(__name__)

#: Queries searched per block; bounds the (block × n) score matrix of the numpy path.
QUERY_BLOCK = 2048


def _margin(k: int) -> int:
    return k + max(4, k // 16)


def _numpy_candidates(train: np.ndarray, test: np.ndarray, metric: str, kc: int,
                      mask: np.ndarray | None = None) -> np.ndarray:
    x = np.asarray(train, dtype=np.float32)  # angular: scaled by 1/|x| below, never copied normalised
    q_all = normalized(test) if metric == "angular" else np.asarray(test, dtype=np.float32)
    x_sq = np.einsum("ij,ij->i", x, x) if metric != "ip" else None
    inv_norm = None
    if metric == "angular":
        norms = np.sqrt(x_sq)
        inv_norm, x_sq = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0), None
    out = np.empty((len(q_all), kc), dtype=np.int64)
    block = max(1, min(QUERY_BLOCK, 256_000_000 // (4 * max(1, len(x)))))
    for s in range(0, len(q_all), block):
        scores = q_all[s:s + block] @ x.T  # larger is nearer for ip / angular
        if x_sq is not None:
            scores = 2.0 * scores - x_sq  # = |q|^2 - |q - x|^2, larger is nearer
        if inv_norm is not None:
            scores *= inv_norm  # cosine similarity (rows of norm 0 score 0, as a zero unit vector)
        if mask is not None:
            scores[:, ~mask] = -np.inf  # a filtered search: only the masked-in rows can be candidates
        part = (np.argpartition(-scores, kc - 1, axis=1)[:, :kc] if kc < len(x)
                else np.tile(np.arange(len(x)), (len(scores), 1)))
        out[s:s + block] = part
    return out


def _faiss_candidates(train: np.ndarray, test: np.ndarray, metric: str, kc: int, threads: int) -> np.ndarray:
    import faiss

    x = normalized(train) if metric == "angular" else np.ascontiguousarray(train, dtype=np.float32)
    q = normalized(test) if metric == "angular" else np.ascontiguousarray(test, dtype=np.float32)
    index = faiss.IndexFlatL2(x.shape[1]) if metric == "euclidean" else faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        out = np.empty((len(q), kc), dtype=np.int64)
        for s in range(0, len(q), QUERY_BLOCK * 4):
            _, out[s:s + QUERY_BLOCK * 4] = index.search(q[s:s + QUERY_BLOCK * 4], kc)
    finally:
        faiss.omp_set_num_threads(previous)
    return out


def exact_knn(train: np.ndarray, test: np.ndarray, metric: str, k: int = 100,
              threads: int | None = None, backend: str = "auto",
              mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` neighbours of each test row among the train rows.

    Returns ``(ids int32 (nq, k), distances float32 (nq, k))``, nearest first.
    ``threads`` defaults to the cores this process may run on. ``backend`` is ``"faiss"``, ``"numpy"`` or
    ``"auto"``: faiss when importable and ``threads`` > 1; numpy BLAS on one thread, where faiss's
    ``IndexFlatL2`` took twice the CPU time (``benchmarks/ground_truth.py --threads 1 --numpy``). With ``mask``
    (a boolean per train row, at least ``k`` of them True) only those rows are searched: a masked
    blocked scan on the numpy path, whatever ``backend`` says.
    """
    ids, dist = exact_neighbours(train, test, metric, k, threads, backend, mask)
    return ids.astype(np.int32), dist.astype(np.float32)


def exact_neighbours(train: np.ndarray, test: np.ndarray, metric: str, k: int = 100,
                     threads: int | None = None, backend: str = "auto",
                     mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`exact_knn` at full precision: ``(ids int64 (nq, k), distances float64 (nq, k))``, so that
    lists computed over parts of ``train`` merge in the order one list over the whole would have."""
    check_metric(metric)
    if k > len(train):
        raise ValueError(f"k={k} exceeds the {len(train)} train points")
    if metric in ("hamming", "jaccard"):  # integer / rational distances: exact ties, see bitset
        from annbench.quality import bitset

        threads = threads or len(available_cores())
        ids, dist = (bitset.exact_hamming(train, test, k, threads, backend) if metric == "hamming"
                     else bitset.exact_jaccard(train, test, k))
        return ids.astype(np.int64), dist.astype(np.float64)
    kc = min(len(train), _margin(k))
    threads = threads or len(available_cores())
    if backend == "auto":
        backend = "numpy"
        if threads > 1:
            try:
                import faiss  # noqa: F401
                backend = "faiss"
            except ImportError:
                pass
    if mask is not None:
        candidates = _numpy_candidates(train, test, metric, kc, mask)
        candidates[~mask[candidates]] = -1  # fewer than kc rows masked in: the rest are no candidates
    elif backend == "faiss":
        candidates = _faiss_candidates(train, test, metric, kc, threads)
    else:
        candidates = _numpy_candidates(train, test, metric, kc)
    dist = distances_to_ids(test, train, candidates, metric, threads=threads)
    dist[candidates < 0] = np.inf
    order = np.lexsort((candidates, dist), axis=-1)[:, :k]  # by distance, then id
    return np.take_along_axis(candidates, order, axis=1), np.take_along_axis(dist, order, axis=1)
