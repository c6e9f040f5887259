"""Milvus Lite ``HNSW`` index."""

from annbench.backends.adapter import at_least

from ._milvus import MilvusAdapter


class MilvusHNSW(MilvusAdapter):
    """Milvus Lite ``HNSW``: ``client.search(..., search_params={'params': {'ef': ..}})`` on a graph index.

    Parameters:
        M: links per node (memory, build time, recall ceiling)
        efConstruction: build beam (build time vs graph quality)
        ef: query beam, at least k (recall vs speed)
    """

    index_type = "HNSW"

    def __init__(self, metric: str, M: int = 16, efConstruction: int = 200, threads: int = 1) -> None:
        super().__init__(metric, threads)
        at_least(2, M=M)
        at_least(1, efConstruction=efConstruction)
        self.M, self.efConstruction = M, efConstruction

    def build_params(self) -> dict[str, int]:
        return {"M": self.M, "efConstruction": self.efConstruction}

    def set_query_params(self, ef: int = 10) -> None:
        at_least(1, ef=ef)
        self.search_params({"ef": ef})
