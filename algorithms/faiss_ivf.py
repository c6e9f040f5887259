"""faiss ``IndexIVFFlat``: k-means into ``nlist`` lists; a query scans the ``nprobe`` nearest lists."""

from ._faiss import FaissIVFAdapter, positive


class FaissIVF(FaissIVFAdapter):
    def __init__(self, metric: str, nlist: int = 1024, threads: int = 1) -> None:
        super().__init__(metric, threads)
        positive(nlist=nlist)
        self.nlist = nlist

    def factory(self, d: int) -> str:
        return f"IVF{self.nlist},Flat"
