"""faiss ``IndexIVFPQFastScan``: IVF-PQ with 4-bit codes scanned by SIMD lookups, then ``IndexRefineFlat``."""

from ._faiss import FaissPQAdapter


class FaissIVFPQFastScan(FaissPQAdapter):
    """``IndexIVFPQFastScan`` in ``IndexRefineFlat``: as faiss-ivfpq with 4-bit codes scanned by SIMD lookups."""

    nbits = 4
    suffix = "fs"
