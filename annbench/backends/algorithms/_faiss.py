"""Shared by the faiss adapters: one index built from a faiss factory string, searched with faiss's own API.

Angular search uses unit-norm copies of the train rows and inner product. Queries are passed as
given: for one query, the ranking by inner product does not depend on the query's norm.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

from annbench.backends.adapter import Adapter, at_least
from annbench.quality.predicates import AttributeIndex, Attributes, Predicate

#: Seed of faiss's k-means (coarse quantizer); faiss's PQ codebooks use their own fixed default.
SEED = 1234
#: How an index stores its vectors (the factory's last component): full floats, or faiss's scalar
#: quantizers (fp16; 8 and 4 bits a coordinate, trained per dimension): float data, quantized index.
Storage = Literal["Flat", "SQfp16", "SQ8", "SQ4"]
STORAGE = typing.get_args(Storage)


def check_storage(storage: str) -> str:
    if storage not in STORAGE:
        raise ValueError(f"storage={storage!r}; valid: {', '.join(map(repr, STORAGE))}")
    return storage


class FaissAdapter(Adapter):
    """Base of the faiss adapters: subclasses give the factory string and set their parameters."""

    #: Names of faiss's metric constants (``faiss.METRIC_L2``, ...); angular: inner product on unit-norm rows.
    native_metrics = {"euclidean": "METRIC_L2", "angular": "METRIC_INNER_PRODUCT", "ip": "METRIC_INNER_PRODUCT"}
    normalize_for = ("angular",)
    libraries = ("faiss-cpu",)
    #: GNU OpenMP: a process forked after a parallel region ran hangs (README: Warm parents)
    fork_clients_threads = 1
    fork_clients_reason = ("GNU OpenMP does not survive a fork once its threads ran; the binding releases the GIL, "
                           "so thread clients query in parallel")

    def factory(self, d: int) -> str:
        """The ``faiss.index_factory`` description of the index for ``d``-dimensional data."""
        raise NotImplementedError

    def configure(self, index: Any) -> None:
        """Set build-time fields of the index before training and adding (hook)."""

    def fit(self, X: np.ndarray) -> None:
        self.index = self._trained(X)
        self.index.add(X)
        self._searching(self.index)

    def _searching(self, index: Any) -> None:
        """Search ``index`` from now on: through faiss's Python wrapper (``search``: shape checks, a contiguous
        float32 copy where needed, the answers' arrays) and, for one query, its C++ ``search`` (``search_c``)."""
        self._search, self._search_c, self._row = index.search, index.search_c, (index.d,)

    def _trained(self, X: np.ndarray) -> Any:
        """The factory's index, configured and trained on ``X`` (empty)."""
        faiss.omp_set_num_threads(self.threads)
        d = X.shape[1]
        index = faiss.index_factory(d, self.factory(d), getattr(faiss, self.metric_name))
        ivf = faiss.try_extract_index_ivf(index)
        if ivf is not None:
            ivf.cp.seed = SEED
        self.configure(index)
        index.train(X)
        return index

    # Changes (subclasses declare which in ``changes``): the factory's index trained on the first insert's
    # rows; IVF indexes keep the ids in their lists, others get an ``IndexIDMap`` (whose ``remove_ids``
    # assumes the index under it renumbers what is left, as Flat does and IVF does not).
    def insert(self, X: np.ndarray, ids: np.ndarray) -> None:
        if not hasattr(self, "index"):
            index = self._trained(X)
            self.index = index if faiss.try_extract_index_ivf(index) is not None else faiss.IndexIDMap(index)
            self._searching(self.index)
        self.index.add_with_ids(X, np.ascontiguousarray(ids, dtype=np.int64))

    def delete(self, ids: np.ndarray) -> None:
        self.index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))

    def base_index(self) -> Any:
        """The index under an ``IndexIDMap`` (itself otherwise)."""
        return faiss.downcast_index(self.index.index) if isinstance(self.index, faiss.IndexIDMap) else self.index

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        # A C-contiguous float32 row (as the harness gives it) goes straight to the C++ search by its pointer:
        # the wrapper's checks, copy and reshaping hold the GIL for about 2 us a query, time in which no other
        # concurrent thread client can enter a search (README: Concurrent clients). Any other row: the wrapper.
        if q.shape == self._row and q.dtype == np.float32 and q.flags.c_contiguous:
            ids, distances = np.empty(k, dtype=np.int64), np.empty(k, dtype=np.float32)
            self._search_c(1, faiss.swig_ptr(q), k, faiss.swig_ptr(distances), faiss.swig_ptr(ids), None)
            return ids
        return self._search(q[None, :], k)[1][0]

    def batch_query(self, Q: np.ndarray, k: int) -> np.ndarray:
        return self._search(Q, k)[1]

    # Filtered search (subclasses that declare ``filters``): the matching ids come from an inverted
    # index of the tags built in fit_attributes; per query they become an ``IDSelectorBitmap`` (one bit
    # per point) passed in the index's ``SearchParameters``, so faiss skips every other point itself.
    def fit_attributes(self, attrs: Attributes) -> None:
        self._attrs = AttributeIndex(attrs)

    def search_parameters(self, selector: Any) -> Any:
        """The index's ``SearchParameters`` with ``selector`` and the current query setting (hook)."""
        return faiss.SearchParameters(sel=selector)

    def filtered_query(self, q: np.ndarray, k: int, predicate: Predicate) -> np.ndarray:
        rows = self._attrs.rows(predicate)
        if not len(rows):
            return rows
        mask = np.zeros(self._attrs.n, dtype=bool)
        mask[rows] = True
        bitmap = np.packbits(mask, bitorder="little")  # faiss reads bit (id & 7) of byte id >> 3
        selector = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
        return self.index.search(q[None, :], min(k, len(rows)), params=self.search_parameters(selector))[1][0]

    def index_size_bytes(self) -> int:
        return int(faiss.serialize_index(self.index).nbytes)

    # Saved index (dataset.py index): faiss's own file (write_index / read_index), read into memory.
    def save(self, folder: Path) -> None:
        faiss.write_index(self.index, str(Path(folder) / "index.faiss"))

    def load(self, folder: Path, dimension: int) -> None:
        faiss.omp_set_num_threads(self.threads)
        self.index = faiss.read_index(str(Path(folder) / "index.faiss"))
        self._searching(self.index)


class FaissIVFAdapter(FaissAdapter):
    """IVF indexes: ``nprobe`` per query setting; counters from ``faiss.cvar.indexIVF_stats``.

    Parameters:
        nlist: k-means lists (more, smaller lists: faster scans at a given nprobe, lower recall, longer k-means)
        nprobe: lists scanned per query (recall vs speed)
    """

    def set_query_params(self, nprobe: int = 1) -> None:
        at_least(1, nprobe=nprobe)
        faiss.extract_index_ivf(self.index).nprobe = nprobe
        faiss.cvar.indexIVF_stats.reset()

    def search_parameters(self, selector: Any) -> Any:
        return faiss.SearchParametersIVF(sel=selector, nprobe=faiss.extract_index_ivf(self.index).nprobe)

    def stats(self) -> dict[str, float]:
        """Codes scanned in the inverted lists per query, averaged over every pass since the setting
        was applied (the search is deterministic, so this is also the last pass's mean)."""
        s = faiss.cvar.indexIVF_stats
        return {"ndis_per_query": s.ndis / s.nq} if s.nq else {}


class FaissPQAdapter(FaissIVFAdapter):
    """IVF with product quantization, exact re-ranking of ``k * k_factor`` candidates (``IndexRefineFlat``).

    ``M`` sub-quantizers need not divide the dimension: the vectors are zero-padded
    (faiss ``Pad``), which changes no distance. The index keeps the full vectors for the
    re-ranking, so its size includes them.

    Parameters:
        M: sub-quantizers per code (code size and training time vs PQ accuracy)
        k_factor: 0 = PQ distances only, else k·k_factor candidates re-ranked with exact distances (recall vs time)
    """

    nbits = 8
    suffix = "np"  # no polysemous training (slow, and only useful for Hamming filtering, unused here)

    def __init__(self, metric: str, nlist: int = 1024, M: int = 16, threads: int = 1) -> None:
        super().__init__(metric, threads)
        at_least(1, nlist=nlist, M=M)
        self.nlist, self.M = nlist, M

    def factory(self, d: int) -> str:
        if self.M > d:
            raise ValueError(f"M={self.M} exceeds the dimension {d}; valid: 1..{d}")
        padded = -(-d // self.M) * self.M
        pad = f"Pad{padded}," if padded != d else ""
        return f"{pad}IVF{self.nlist},PQ{self.M}x{self.nbits}{self.suffix},RFlat"

    def set_query_params(self, nprobe: int = 1, k_factor: int = 0) -> None:
        """``k_factor = 0``: PQ distances only; ``>= 1``: re-rank ``k * k_factor`` candidates exactly."""
        super().set_query_params(nprobe)
        if k_factor < 0:
            raise ValueError(f"k_factor={k_factor}; valid: 0 (no re-ranking) or an int >= 1")
        self.index.k_factor = max(k_factor, 1)
        self._searching(self.index if k_factor else self.index.base_index)
