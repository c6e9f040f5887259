"""faiss ``IndexIVFFlat``: k-means into ``nlist`` lists; a query scans the ``nprobe`` nearest lists."""

from annbench.backends.adapter import at_least

from ._faiss import FaissIVFAdapter


class FaissIVF(FaissIVFAdapter):
    """``IndexIVFFlat``: k-means lists of full vectors; a query scans the nprobe nearest lists."""

    filters = ("tags", "range")
    #: Trained on the first insert's rows (at least nlist of them).
    changes = ("insert", "delete", "replace")

    def __init__(self, metric: str, nlist: int = 1024, threads: int = 1) -> None:
        super().__init__(metric, threads)
        at_least(1, nlist=nlist)
        self.nlist = nlist

    def factory(self, d: int) -> str:
        return f"IVF{self.nlist},Flat"
