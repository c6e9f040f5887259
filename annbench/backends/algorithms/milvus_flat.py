"""Milvus Lite ``FLAT`` index: every row compared with the query."""

from ._milvus import MilvusAdapter


class MilvusFlat(MilvusAdapter):
    """Milvus Lite ``FLAT``: ``client.search(...)`` comparing the query with every row (exact)."""

    index_type = "FLAT"
    exact = True

    def build_params(self) -> dict[str, int]:
        return {}

    def set_query_params(self) -> None:
        self.search_params({})
