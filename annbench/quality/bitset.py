"""Hamming distance over packed bits and Jaccard distance over sets: distances to listed ids and
exact top-k, in bounded memory, ties broken by the smaller id (as :mod:`annbench.quality.groundtruth`).

* ``hamming``: ``popcount(q XOR x)``, the number of differing bits (an integer, exact in float64);
* ``jaccard``: ``1 - |A ∩ B| / |A ∪ B|``; 1 when either set is empty (ann-benchmarks' rule). Equal
  fractions (1/2 and 2/4) are equal float64 numbers (IEEE division is correctly rounded), so ties
  are exact ties.

Exact hamming search is faiss ``IndexBinaryFlat``'s top-k when faiss imports (already by ``(distance,
id)``, see :func:`_faiss_hamming`), else a blocked numpy scan of 64-bit words (XOR, ``bitwise_count``) into
small-integer distances, whose k-th smallest is bounded by group minima before the few candidates are
sorted (:func:`_hamming_block`), blocks of queries in threads.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

from annbench.quality.points import SetRows

#: Values per block of a numpy scan (bounds its temporary arrays to ~32 MB).
_BLOCK_VALUES = 4_000_000
#: Distances per tile of a hamming block's XOR (its uint64 temporary: 2 MB, in cache).
_TILE_VALUES = 1 << 18
#: Interleaved groups of train columns whose minima bound a hamming block's k-th distance.
_GROUPS = 16


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


def jaccard_matrix(q: sp.csr_matrix, xt: sp.csc_matrix, size_x: np.ndarray) -> np.ndarray:
    """Jaccard distances (float64, b × n) of query sets ``q`` to the train sets whose transpose
    (float64 0/1) is ``xt`` and whose sizes are ``size_x``: intersections by one sparse product."""
    inter = (q @ xt).toarray()
    return _jaccard(inter, np.diff(q.indptr)[:, None], size_x[None, :])


def _hamming_tile_distances(q: np.ndarray, xt: np.ndarray, out: np.ndarray, tmp: np.ndarray,
                            count: np.ndarray) -> None:
    """Hamming distances of query words ``q`` (b × w) to the train words ``xt`` (w × c, a tile of the
    transposed train words) into ``out`` (b × c small ints), one word at a time: XOR into ``tmp`` (uint64),
    bit counts into ``count`` (uint8), both b × c buffers the caller reuses."""
    for w in range(len(xt)):
        np.bitwise_xor(q[:, w, None], xt[w, None, :], out=tmp)
        if w == 0:
            np.bitwise_count(tmp, out=out)
        else:
            np.add(out, np.bitwise_count(tmp, out=count), out=out)


def _hamming_block(q: np.ndarray, xt: np.ndarray, k: int, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` by ``(distance, id)`` of query words ``q`` (b × w) among the transposed train words
    ``xt`` (w × n).

    The distances of the block are small integers (b × n, uint8 up to 254 bits). Their k-th smallest per row
    is bounded from above without a sort: the train columns fall into ``groups`` interleaved groups, and the
    k-th smallest of the per-column-of-groups minima (``n / groups`` values a row) is reached by k distinct
    points, so every point at or below the true k-th distance, its whole tie group included, is at or below
    that bound. Those few candidates (the nonzeros of ``d <= bound``, in id order within each row) are then
    sorted by (row, distance), stably, and each row's first k kept: ties by the smaller id."""
    b, n = len(q), xt.shape[1]
    dtype = np.uint8 if xt.shape[0] * 64 < 255 else np.uint16
    width = -(-n // groups)
    d = np.empty((b, width * groups), dtype=dtype)
    d[:, n:] = np.iinfo(dtype).max  # padding: above every distance, never a candidate
    tile = min(n, max(256, _TILE_VALUES // b))
    tmp, count = np.empty((b, tile), dtype=np.uint64), np.empty((b, tile), dtype=np.uint8)
    for c in range(0, n, tile):
        w = min(tile, n - c)
        _hamming_tile_distances(q, xt[:, c:c + w], d[:, c:c + w], tmp[:, :w], count[:, :w])
    minima = d.reshape(b, groups, width).min(axis=1) if groups > 1 else d
    # the k-th smallest minimum of each row: a stable sort of small ints is numpy's radix sort, linear
    bound = np.sort(minima, axis=1, kind="stable")[:, k - 1:k]
    flat = np.flatnonzero(d <= bound)  # 1-D: an order of magnitude faster than a 2-D nonzero
    rows, cols = np.divmod(flat, d.shape[1])
    dist = d.reshape(-1)[flat]
    order = np.lexsort((dist, rows))  # stable: within a row and distance, ids stay increasing
    counts = np.bincount(rows, minlength=b)
    pick = order[(np.cumsum(counts) - counts)[:, None] + np.arange(k)]
    return cols[pick].astype(np.int64), dist[pick].astype(np.float64)


def transposed_words(train: np.ndarray) -> np.ndarray:
    """Packed train rows as :func:`hamming_search` scans them: their words transposed (words × rows)."""
    return np.ascontiguousarray(words(train).T)


def hamming_search(xt: np.ndarray, q: np.ndarray, k: int, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` by ``(distance, id)`` of query words ``q`` (:func:`words`) among the train rows whose
    :func:`transposed_words` are ``xt``: ``(ids int64, distances float64)``, nearest first. Blocks of queries
    (:func:`_hamming_block`, each bounded to ~``_BLOCK_VALUES`` small-int distances), ``threads`` at a time
    (numpy releases the GIL)."""
    n = xt.shape[1]
    groups = max(1, min(_GROUPS, n // (2 * k)))  # at least 2k columns of minima: the k-th is a good bound
    block = max(1, min(len(q), _BLOCK_VALUES // (n + groups)))
    ids = np.empty((len(q), k), dtype=np.int64)
    dist = np.empty((len(q), k), dtype=np.float64)

    def one(s: int) -> None:
        ids[s:s + block], dist[s:s + block] = _hamming_block(q[s:s + block], xt, k, groups)

    starts = range(0, len(q), block)
    if threads <= 1 or len(starts) == 1:
        for s in starts:
            one(s)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, starts))
    return ids, dist


def _faiss_hamming(train: np.ndarray, test: np.ndarray, k: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """faiss ``IndexBinaryFlat``'s own top-``k``, which is already by ``(distance, id)``: its heap search
    scans the train rows in id order and admits a row only when it is strictly nearer than the heap's
    worst, and its heap breaks equal distances by id (the larger id is the worse). So no over-fetch and
    no re-ranking; the tests compare it with a plain numpy reference on massively tied codes, so a faiss
    that ordered ties otherwise would fail them."""
    import faiss

    x, q = np.ascontiguousarray(train, dtype=np.uint8), np.ascontiguousarray(test, dtype=np.uint8)
    index = faiss.IndexBinaryFlat(x.shape[1] * 8)  # padding bits are 0 on both sides: same distances
    index.add(x)
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        dist, ids = index.search(q, k)
    finally:
        faiss.omp_set_num_threads(previous)
    return ids.astype(np.int64), dist.astype(np.float64)


def exact_hamming(train: np.ndarray, test: np.ndarray, k: int, threads: int = 1,
                  backend: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` by hamming distance of packed rows: ``(ids (nq, k) int64, distances float64)``,
    ties by the smaller id. ``backend``: ``faiss`` (``auto``: when it imports) or ``numpy``."""
    if backend != "numpy":
        try:
            return _faiss_hamming(train, test, k, threads)
        except ImportError:
            if backend == "faiss":
                raise
    return hamming_search(transposed_words(train), words(test), k, threads)


def transposed_sets(train: SetRows) -> tuple[sp.csc_matrix, np.ndarray]:
    """Train sets as :func:`jaccard_search` scans them: their transpose (float64 0/1) and their sizes."""
    x = sp.csr_matrix(train, dtype=np.float64)
    return x.T.tocsc(), np.diff(x.indptr)


def jaccard_search(xt: sp.csc_matrix, size_x: np.ndarray, test: SetRows,
                   k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` by ``(distance, id)`` of the query sets ``test`` among the train sets whose
    :func:`transposed_sets` are ``(xt, size_x)``: ``(ids int64, distances float64)``, nearest first. Blocks of
    queries against every train set (~``_BLOCK_VALUES`` distances each), intersections by one sparse product."""
    q = sp.csr_matrix(test, dtype=np.float64)
    ids = np.empty((q.shape[0], k), dtype=np.int64)
    dist = np.empty((q.shape[0], k), dtype=np.float64)
    block = max(1, _BLOCK_VALUES // max(1, xt.shape[1]))
    for s in range(0, q.shape[0], block):
        ids[s:s + block], dist[s:s + block] = top_k(jaccard_matrix(q[s:s + block], xt, size_x), k)
    return ids, dist


def exact_jaccard(train: SetRows, test: SetRows, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` by jaccard distance: ``(ids (nq, k) int64, distances float64)`` (:func:`jaccard_search`)."""
    return jaccard_search(*transposed_sets(train), test, k)
