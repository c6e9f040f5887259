"""pgvector's IVFFlat index on a PostgreSQL server (a private one per build, or ``--pg-dsn``)."""

from annbench.backends.adapter import at_least

from ._pgvector import PgVector


class PgVectorIVFFlat(PgVector):
    """pgvector ``USING ivfflat`` on PostgreSQL: k-means lists of full vectors, probed per query in SQL.

    Parameters:
        lists: k-means lists (more, smaller lists: faster scans at a given probes, longer build)
        probes: ``ivfflat.probes``, lists scanned per query (recall vs speed)
    """

    #: pgvector >= 0.8 on a filtered dataset: IVFFlat offers only relaxed order (the first k rows that pass,
    #: a later list's closer rows may be left out), as pgvector's README says for IVFFlat
    iterative_scan = "ivfflat.iterative_scan = relaxed_order"

    def __init__(self, metric: str, lists: int = 100, threads: int = 1) -> None:
        super().__init__(metric, threads)
        at_least(1, lists=lists)
        self.lists = lists

    def index_method(self) -> str:
        return f"ivfflat (embedding {self.metric_name}) WITH (lists = {self.lists})"

    def set_query_params(self, probes: int = 1) -> None:
        at_least(1, probes=probes)
        self.set_setting("ivfflat.probes", probes)
