"""Milvus Lite ``IVF_SQ8`` index."""

from .milvus_ivf_flat import MilvusIVFFlat


class MilvusIVFSQ8(MilvusIVFFlat):
    """Milvus Lite ``IVF_SQ8``: k-means lists of 8-bit scalar-quantized vectors, ``nprobe`` scanned per query.

    Parameters:
        nlist: k-means lists (finer: faster scans at a given nprobe, longer training)
        nprobe: lists scanned per query (recall vs speed)
    """

    index_type = "IVF_SQ8"
