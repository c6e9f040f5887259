"""pgvector's HNSW index on a PostgreSQL server (a private one per build, or ``--pg-dsn``)."""

from annbench.backends.adapter import at_least

from ._pgvector import PgVector


class PgVectorHNSW(PgVector):
    """pgvector ``USING hnsw`` on PostgreSQL: SQL ``ORDER BY embedding <-> %s LIMIT k`` over a graph index.

    Parameters:
        m: links per node (memory, build time, recall ceiling; pgvector allows 2..100)
        ef_construction: build beam, at least 2·m (build time vs graph quality)
        ef_search: ``hnsw.ef_search``, the query beam (recall vs speed; at most 1000, and k at most it)
    """

    #: pgvector >= 0.8 on a filtered dataset: results in exact distance order (HNSW's own option)
    iterative_scan = "hnsw.iterative_scan = strict_order"

    def __init__(self, metric: str, m: int = 16, ef_construction: int = 64, threads: int = 1) -> None:
        super().__init__(metric, threads)
        at_least(2, m=m)
        at_least(2 * m, ef_construction=ef_construction)
        self.m, self.ef_construction = m, ef_construction

    def index_method(self) -> str:
        return f"hnsw (embedding {self.metric_name}) WITH (m = {self.m}, ef_construction = {self.ef_construction})"

    def set_query_params(self, ef_search: int = 40) -> None:
        at_least(1, ef_search=ef_search)
        self.set_setting("hnsw.ef_search", ef_search)
