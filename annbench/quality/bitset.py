"""Hamming distance over packed bits and Jaccard distance over sets: distances to listed ids and
exact top-k, in bounded memory, ties broken by the smaller id (as :mod:`annbench.quality.groundtruth`).

* ``hamming``: ``popcount(q XOR x)``, the number of differing bits (an integer, exact in float64);
* ``jaccard``: ``1 - |A ∩ B| / |A ∪ B|``; 1 when either set is empty (ann-benchmarks' rule). Equal
  fractions (1/2 and 2/4) are equal float64 numbers (IEEE division is correctly rounded), so ties
  are exact ties.

Exact hamming search takes its candidates from faiss ``IndexBinaryFlat`` when faiss imports (over-
fetched; the queries whose candidate lists end inside the tie group of their k-th distance are searched
again with 8 times as many candidates), else from a blocked numpy scan of 64-bit words.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from annbench.quality.points import SetRows

#: Values per block of a numpy scan (bounds its temporary arrays to ~32 MB).
_BLOCK_VALUES = 4_000_000


def words(a: np.ndarray) -> np.ndarray:
    """Packed rows as uint64 words (zero-padded to a multiple of 8 bytes): XOR and popcount per word."""
    a = np.ascontiguousarray(a, dtype=np.uint8)
    a = a[None, :] if a.ndim == 1 else a
    spare = -a.shape[1] % 8
    if spare:
        a = np.concatenate([a, np.zeros((len(a), spare), dtype=np.uint8)], axis=1)
    return a.view(np.uint64)


def hamming_to_ids(queries: np.ndarray, train: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Hamming distances (float64) from each packed query to the packed train rows it lists; ``-1``
    ids get ``+inf``."""
    q, x = words(queries), words(train)
    ids = np.asarray(ids)
    out = np.empty(ids.shape, dtype=np.float64)
    block = max(1, _BLOCK_VALUES // max(1, ids.shape[1] * x.shape[1]))
    for s in range(0, len(ids), block):
        rows = ids[s:s + block]
        valid = rows >= 0
        diff = x[np.where(valid, rows, 0)] ^ q[s:s + block, None, :]
        d = np.bitwise_count(diff).sum(axis=-1, dtype=np.int64)
        out[s:s + block] = np.where(valid, d, np.inf)
    return out


def _jaccard(inter: np.ndarray, size_q: np.ndarray, size_x: np.ndarray) -> np.ndarray:
    union = size_q + size_x - inter
    similarity = np.divide(inter, union, out=np.zeros(np.broadcast(inter, union).shape), where=union > 0)
    return 1.0 - similarity


def jaccard_to_ids(queries: SetRows, train: SetRows, ids: np.ndarray) -> np.ndarray:
    """Jaccard distances (float64) from each query set to the train sets it lists; ``-1`` ids get ``+inf``."""
    ids = np.asarray(ids)
    valid = ids >= 0
    flat = np.where(valid, ids, 0).ravel()
    rows = np.repeat(np.arange(ids.shape[0]), ids.shape[1])
    q, x = sp.csr_matrix(queries), sp.csr_matrix(train)
    inter = np.asarray(x[flat].multiply(q[rows]).sum(axis=1), dtype=np.float64).ravel()
    d = _jaccard(inter, np.diff(q.indptr)[rows], np.diff(x.indptr)[flat]).reshape(ids.shape)
    return np.where(valid, d, np.inf)


def top_k(d: np.ndarray, k: int, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` smallest of each row of ``d`` by ``(distance, id)``: ``(ids, distances)``, nearest
    first. ``ids`` names each column per row (default: the column index, the train id); columns are
    in increasing id order wherever ``ids`` is None."""
    b, n = d.shape
    if ids is not None:
        order = np.lexsort((ids, d), axis=-1)[:, :k]
        return np.take_along_axis(ids, order, axis=1), np.take_along_axis(d, order, axis=1)
    kth = np.partition(d, k - 1, axis=1)[:, k - 1:k] if k < n else d.max(axis=1, keepdims=True)
    less = d < kth
    tie = d == kth
    need = k - np.count_nonzero(less, axis=1)
    take = less | (tie & (np.cumsum(tie, axis=1) <= need[:, None]))  # the first ties by id
    cols = np.nonzero(take)[1].reshape(b, k)
    chosen = np.take_along_axis(d, cols, axis=1)
    order = np.lexsort((cols, chosen), axis=-1)
    return np.take_along_axis(cols, order, axis=1), np.take_along_axis(chosen, order, axis=1)


def hamming_matrix(q: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Hamming distances (int64, b × n) between query and train rows given as :func:`words`."""
    d = np.zeros((len(q), len(x)), dtype=np.int64)
    for w in range(x.shape[1]):  # one word at a time: no (b, n, words) temporary
        d += np.bitwise_count(q[:, None, w] ^ x[None, :, w])
    return d


def jaccard_matrix(q: sp.csr_matrix, xt: sp.csc_matrix, size_x: np.ndarray) -> np.ndarray:
    """Jaccard distances (float64, b × n) of query sets ``q`` to the train sets whose transpose
    (float64 0/1) is ``xt`` and whose sizes are ``size_x``: intersections by one sparse product."""
    inter = (q @ xt).toarray()
    return _jaccard(inter, np.diff(q.indptr)[:, None], size_x[None, :])


def _hamming_scan(train: np.ndarray, test: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    x, q = words(train), words(test)
    ids = np.empty((len(q), k), dtype=np.int64)
    dist = np.empty((len(q), k), dtype=np.float64)
    block = max(1, _BLOCK_VALUES // max(1, len(x) * x.shape[1]))
    for s in range(0, len(q), block):
        ids[s:s + block], dist[s:s + block] = top_k(hamming_matrix(q[s:s + block], x).astype(np.float64), k)
    return ids, dist


def _faiss_hamming(train: np.ndarray, test: np.ndarray, k: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    x, q = np.ascontiguousarray(train, dtype=np.uint8), np.ascontiguousarray(test, dtype=np.uint8)
    index = faiss.IndexBinaryFlat(x.shape[1] * 8)  # padding bits are 0 on both sides: same distances
    index.add(x)
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    ids = np.empty((len(q), k), dtype=np.int64)
    dist = np.empty((len(q), k), dtype=np.float64)
    rows, kc = np.arange(len(q)), 4 * k + 16  # a scan costs about the same for any kc << n
    try:
        while len(rows):
            kc = min(len(x), kc)
            cand_d, cand = index.search(q[rows], kc)
            ids[rows], dist[rows] = top_k(cand_d.astype(np.float64), k, cand.astype(np.int64))
            if kc == len(x):
                break
            # a candidate list whose last distance is the k-th may have cut that distance's tie group short:
            # those queries are searched again with 8 times as many candidates
            rows, kc = rows[cand_d[:, -1] <= dist[rows, -1]], kc * 8
    finally:
        faiss.omp_set_num_threads(previous)
    return ids, dist


def exact_hamming(train: np.ndarray, test: np.ndarray, k: int, threads: int = 1,
                  backend: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` by hamming distance of packed rows: ``(ids (nq, k) int64, distances float64)``."""
    if backend != "numpy":
        try:
            return _faiss_hamming(train, test, k, threads)
        except ImportError:
            if backend == "faiss":
                raise
    return _hamming_scan(train, test, k)


def exact_jaccard(train: SetRows, test: SetRows, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` by jaccard distance: ``(ids (nq, k) int64, distances float64)``. Blocks of
    queries against every train set, intersections by one sparse product per block."""
    x, q = sp.csr_matrix(train, dtype=np.float64), sp.csr_matrix(test, dtype=np.float64)
    size_x = np.diff(x.indptr)
    ids = np.empty((q.shape[0], k), dtype=np.int64)
    dist = np.empty((q.shape[0], k), dtype=np.float64)
    block = max(1, _BLOCK_VALUES // max(1, x.shape[0]))
    xt = x.T.tocsc()
    for s in range(0, q.shape[0], block):
        ids[s:s + block], dist[s:s + block] = top_k(jaccard_matrix(q[s:s + block], xt, size_x), k)
    return ids, dist
