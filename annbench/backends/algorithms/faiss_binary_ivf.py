"""faiss ``IndexBinaryIVF``: k-means lists of packed bit rows (binary k-means), scanned under hamming."""

from __future__ import annotations

from typing import Any

import faiss

from annbench.backends.adapter import at_least

from ._faiss import SEED
from ._faiss_binary import FaissBinaryAdapter


class FaissBinaryIVF(FaissBinaryAdapter):
    """``IndexBinaryIVF``: inverted lists over a binary k-means quantizer (``IndexBinaryFlat``).

    Parameters:
        nlist: k-means lists (more, smaller lists: faster scans at a given nprobe, lower recall)
        nprobe: lists scanned per query (recall vs speed)
    """

    def __init__(self, metric: str, nlist: int = 256, threads: int = 1) -> None:
        super().__init__(metric, threads)
        at_least(1, nlist=nlist)
        self.nlist = nlist

    def make(self, d: int) -> Any:
        self._quantizer = faiss.IndexBinaryFlat(d)  # kept referenced: the IVF index does not own it
        index = faiss.IndexBinaryIVF(self._quantizer, d, self.nlist)
        index.cp.seed = SEED
        return index

    def set_query_params(self, nprobe: int = 1) -> None:
        at_least(1, nprobe=nprobe)
        self.index.nprobe = nprobe
