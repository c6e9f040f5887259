"""NGT's ONNG: an ANNG whose outgoing and incoming edge counts are adjusted, then path-adjusted."""

from __future__ import annotations

from annbench.backends.adapter import at_least

from ._ngt import NgtGraph


class NgtOnng(NgtGraph):
    """``ngtpy``: an ANNG with degree and path adjustment (ONNG)."""

    def __init__(self, metric: str, edge_size_for_creation: int = 100, num_of_outgoings: int = 10,
                 num_of_incomings: int = 120, edge_size_for_search: int = 40, threads: int = 1) -> None:
        super().__init__(metric, threads)
        at_least(1, edge_size_for_creation=edge_size_for_creation, num_of_outgoings=num_of_outgoings,
                 num_of_incomings=num_of_incomings, edge_size_for_search=edge_size_for_search)
        self.edge_size_for_creation, self.edge_size_for_search = edge_size_for_creation, edge_size_for_search
        self.degrees = (num_of_outgoings, num_of_incomings)
