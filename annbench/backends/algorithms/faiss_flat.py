"""faiss ``IndexFlat``: exact search (L2, or inner product on unit-norm copies for angular)."""

from ._faiss import FaissAdapter


class FaissFlat(FaissAdapter):
    """``IndexFlat``: exact BLAS scan."""

    exact = True
    filters = ("tags", "range")
    changes = ("insert", "delete", "replace")

    def __init__(self, metric: str, threads: int = 1) -> None:
        super().__init__(metric, threads)

    def factory(self, d: int) -> str:
        return "Flat"
