"""LanceDB ``IVF_FLAT``: k-means lists of full vectors."""

from lancedb.index import IvfFlat

from annbench.backends.adapter import at_least

from ._lancedb import LanceDBAdapter


class LanceDBIVFFlat(LanceDBAdapter):
    """LanceDB ``IVF_FLAT``: k-means partitions of full vectors, ``nprobes`` scanned per query.

    Parameters:
        num_partitions: k-means partitions (finer: faster scans at a given nprobes, longer training)
        nprobes: partitions scanned per query (recall vs speed)
    """

    def __init__(self, metric: str, num_partitions: int = 64, threads: int = 1) -> None:
        super().__init__(metric, threads)
        at_least(1, num_partitions=num_partitions)
        self.num_partitions = num_partitions

    def index_config(self) -> IvfFlat:
        return IvfFlat(distance_type=self.metric_name, num_partitions=self.num_partitions)

    def set_query_params(self, nprobes: int = 20) -> None:
        at_least(1, nprobes=nprobes)
        self.nprobes = nprobes
        self.log_query(f".nprobes({nprobes})")

    def search(self, q, k):
        return super().search(q, k).nprobes(self.nprobes)
