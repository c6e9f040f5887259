"""faiss ``IndexHNSW*``: a hierarchical navigable small-world graph over full or scalar-quantized vectors."""

from __future__ import annotations

from typing import Any

import faiss

from annbench.backends.adapter import at_least

from ._faiss import FaissAdapter, Storage, check_storage


class FaissHNSW(FaissAdapter):
    """``IndexHNSWFlat`` / ``IndexHNSWSQ``: a hierarchical navigable small-world graph over the vectors.

    Parameters:
        M: graph degree (memory, build time, recall ceiling)
        storage: the vectors as stored: Flat (float32) or scalar-quantized (SQfp16, SQ8, SQ4: memory vs precision)
        efConstruction: build beam (build time vs graph quality)
        efSearch: query beam (recall vs speed)
    """

    filters = ("tags", "range")
    #: No delete: faiss's HNSW cannot remove a node from its graph (``remove_ids`` is not implemented for it).
    changes = ("insert",)

    def __init__(self, metric: str, M: int = 16, efConstruction: int = 200, storage: Storage = "Flat",
                 threads: int = 1) -> None:
        super().__init__(metric, threads)
        at_least(1, M=M, efConstruction=efConstruction)
        self.M, self.efConstruction, self.storage = M, efConstruction, check_storage(storage)

    def factory(self, d: int) -> str:
        return f"HNSW{self.M},{self.storage}"

    def configure(self, index: Any) -> None:
        index.hnsw.efConstruction = self.efConstruction

    def set_query_params(self, efSearch: int = 16) -> None:
        at_least(1, efSearch=efSearch)
        self.base_index().hnsw.efSearch = efSearch
        faiss.cvar.hnsw_stats.reset()

    def search_parameters(self, selector: Any) -> Any:
        return faiss.SearchParametersHNSW(sel=selector, efSearch=self.index.hnsw.efSearch)

    def stats(self) -> dict[str, float]:
        """Distance computations and graph hops per query since the setting was applied."""
        s = faiss.cvar.hnsw_stats
        return {"ndis_per_query": s.ndis / s.n1, "hops_per_query": s.nhops / s.n1} if s.n1 else {}
