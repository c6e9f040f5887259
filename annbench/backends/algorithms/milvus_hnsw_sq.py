"""Milvus Lite ``HNSW_SQ`` index."""

from .milvus_hnsw import MilvusHNSW


class MilvusHNSWSQ(MilvusHNSW):
    """Milvus Lite ``HNSW_SQ``: as ``HNSW`` (``ef`` per query), the graph over 8-bit scalar-quantized vectors.

    Parameters:
        M: links per node (memory, build time, recall ceiling)
        efConstruction: build beam (build time vs graph quality)
        ef: query beam, at least k (recall vs speed)
    """

    index_type = "HNSW_SQ"
