"""faiss ``IndexIVF*``: k-means into ``nlist`` lists; a query scans the ``nprobe`` nearest lists."""

from annbench.backends.adapter import at_least

from ._faiss import FaissIVFAdapter, Storage, check_storage


class FaissIVF(FaissIVFAdapter):
    """``IndexIVFFlat`` / ``IndexIVFScalarQuantizer``: k-means lists of full or scalar-quantized vectors; a
    query scans the nprobe nearest lists.

    Parameters:
        storage: the vectors as stored: Flat (float32) or scalar-quantized (SQfp16, SQ8, SQ4: memory vs precision)
    """

    filters = ("tags", "range")
    #: Trained on the first insert's rows (at least nlist of them).
    changes = ("insert", "delete", "replace")

    def __init__(self, metric: str, nlist: int = 1024, storage: Storage = "Flat", threads: int = 1) -> None:
        super().__init__(metric, threads)
        at_least(1, nlist=nlist)
        self.nlist, self.storage = nlist, check_storage(storage)

    def factory(self, d: int) -> str:
        return f"IVF{self.nlist},{self.storage}"
