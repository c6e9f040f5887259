"""faiss ``IndexBinaryHNSW``: an HNSW graph over packed bit rows under hamming."""

from __future__ import annotations

from typing import Any

import faiss

from annbench.backends.adapter import at_least

from ._faiss_binary import FaissBinaryAdapter


class FaissBinaryHNSW(FaissBinaryAdapter):
    """``IndexBinaryHNSW``: a hierarchical navigable small-world graph over packed bits.

    Parameters:
        M: graph degree (memory, build time, recall ceiling)
        efConstruction: build beam (build time vs graph quality)
        efSearch: query beam (recall vs speed)
    """

    def __init__(self, metric: str, M: int = 16, efConstruction: int = 200, threads: int = 1) -> None:
        super().__init__(metric, threads)
        at_least(1, M=M, efConstruction=efConstruction)
        self.M, self.efConstruction = M, efConstruction

    def make(self, d: int) -> Any:
        index = faiss.IndexBinaryHNSW(d, self.M)
        index.hnsw.efConstruction = self.efConstruction
        return index

    def set_query_params(self, efSearch: int = 16) -> None:
        at_least(1, efSearch=efSearch)
        self.index.hnsw.efSearch = efSearch
