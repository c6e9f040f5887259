"""NGT's PANNG: an ANNG (graph built by incremental insertion) with path adjustment."""

from __future__ import annotations

from annbench.backends.adapter import at_least

from ._ngt import NgtGraph


class NgtPanng(NgtGraph):
    """``ngtpy``: an ANNG with path adjustment (PANNG)."""

    def __init__(self, metric: str, edge_size_for_creation: int = 10, edge_size_for_search: int = 40,
                 threads: int = 1) -> None:
        super().__init__(metric, threads)
        at_least(1, edge_size_for_creation=edge_size_for_creation, edge_size_for_search=edge_size_for_search)
        self.edge_size_for_creation, self.edge_size_for_search = edge_size_for_creation, edge_size_for_search
