"""LanceDB ``IVF_HNSW_SQ``: an HNSW graph of scalar-quantized vectors in each k-means partition."""

from lancedb.index import HnswSq

from annbench.backends.adapter import at_least

from ._lancedb import LanceDBAdapter


class LanceDBIVFHNSWSQ(LanceDBAdapter):
    """LanceDB ``IVF_HNSW_SQ``: per k-means partition an HNSW graph over 8-bit scalar-quantized vectors.

    Parameters:
        num_partitions: k-means partitions, each with its own graph
        m: links per node (memory, build time, recall ceiling)
        ef_construction: build beam (build time vs graph quality)
        nprobes: partitions searched per query (recall vs speed)
        ef: query beam in each partition's graph (recall vs speed)
    """

    def __init__(self, metric: str, num_partitions: int = 1, m: int = 20, ef_construction: int = 300,
                 threads: int = 1) -> None:
        super().__init__(metric, threads)
        at_least(1, num_partitions=num_partitions, ef_construction=ef_construction)
        at_least(2, m=m)
        self.num_partitions, self.m, self.ef_construction = num_partitions, m, ef_construction

    def index_config(self) -> HnswSq:
        return HnswSq(distance_type=self.metric_name, num_partitions=self.num_partitions, m=self.m,
                      ef_construction=self.ef_construction)

    def set_query_params(self, nprobes: int = 1, ef: int = 40) -> None:
        at_least(1, nprobes=nprobes, ef=ef)
        self.nprobes, self.ef = nprobes, ef
        self.log_query(f".nprobes({nprobes}).ef({ef})")

    def search(self, q, k):
        return super().search(q, k).nprobes(self.nprobes).ef(self.ef)
