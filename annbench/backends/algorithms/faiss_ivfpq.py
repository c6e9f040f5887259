"""faiss ``IndexIVFPQ`` (``M`` sub-quantizers of ``nbits`` bits) under ``IndexRefineFlat`` (re-ranking)."""

from annbench.backends.adapter import at_least

from ._faiss import FaissPQAdapter


class FaissIVFPQ(FaissPQAdapter):
    """``IndexIVFPQ`` in ``IndexRefineFlat``: IVF lists of product-quantized codes, exact re-ranking.

    Parameters:
        nbits: bits per sub-quantizer code (with M: code size and training time vs PQ accuracy)
    """

    def __init__(self, metric: str, nlist: int = 1024, M: int = 16, nbits: int = 8, threads: int = 1) -> None:
        super().__init__(metric, nlist, M, threads)
        at_least(1, nbits=nbits)
        self.nbits = nbits
