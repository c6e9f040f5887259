"""Milvus Lite ``IVF_FLAT`` index."""

from annbench.backends.adapter import at_least

from ._milvus import MilvusAdapter


class MilvusIVFFlat(MilvusAdapter):
    """Milvus Lite ``IVF_FLAT``: k-means lists of full vectors, ``nprobe`` of them scanned per query.

    Parameters:
        nlist: k-means lists (finer: faster scans at a given nprobe, longer training)
        nprobe: lists scanned per query (recall vs speed)
    """

    index_type = "IVF_FLAT"

    def __init__(self, metric: str, nlist: int = 128, threads: int = 1) -> None:
        super().__init__(metric, threads)
        at_least(1, nlist=nlist)
        self.nlist = nlist

    def build_params(self) -> dict[str, int]:
        return {"nlist": self.nlist}

    def set_query_params(self, nprobe: int = 8) -> None:
        at_least(1, nprobe=nprobe)
        self.search_params({"nprobe": nprobe})
