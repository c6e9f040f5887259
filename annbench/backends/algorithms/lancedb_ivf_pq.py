"""LanceDB ``IVF_PQ``: k-means lists of product-quantized vectors, optionally re-ranked."""

from lancedb.index import IvfPq

from annbench.backends.adapter import at_least

from ._lancedb import LanceDBAdapter


class LanceDBIVFPQ(LanceDBAdapter):
    """LanceDB ``IVF_PQ``: k-means partitions of PQ codes, ``refine_factor`` re-ranked on full vectors.

    Parameters:
        num_partitions: k-means partitions (finer: faster scans at a given nprobes, longer training)
        num_sub_vectors: PQ sub-vectors per code, a divisor of the dimension (code size vs accuracy)
        nprobes: partitions scanned per query (recall vs speed)
        refine_factor: 0 = PQ distances only, else k·refine_factor candidates re-ranked exactly
    """

    def __init__(self, metric: str, num_partitions: int = 64, num_sub_vectors: int = 4, threads: int = 1) -> None:
        super().__init__(metric, threads)
        at_least(1, num_partitions=num_partitions, num_sub_vectors=num_sub_vectors)
        self.num_partitions, self.num_sub_vectors = num_partitions, num_sub_vectors

    def index_config(self) -> IvfPq:
        return IvfPq(distance_type=self.metric_name, num_partitions=self.num_partitions,
                     num_sub_vectors=self.num_sub_vectors)

    def set_query_params(self, nprobes: int = 20, refine_factor: int = 0) -> None:
        at_least(1, nprobes=nprobes)
        at_least(0, refine_factor=refine_factor)
        self.nprobes, self.refine_factor = nprobes, refine_factor
        self.log_query(f".nprobes({nprobes})" + (f".refine_factor({refine_factor})" if refine_factor else ""))

    def search(self, q, k):
        s = super().search(q, k).nprobes(self.nprobes)
        return s.refine_factor(self.refine_factor) if self.refine_factor else s
