"""faiss ``IndexIVFPQFastScan``: IVF-PQ with 4-bit codes scanned by SIMD lookups, then ``IndexRefineFlat``."""

from ._faiss import FaissPQAdapter


class FaissIVFPQFastScan(FaissPQAdapter):
    nbits = 4
    suffix = "fs"
