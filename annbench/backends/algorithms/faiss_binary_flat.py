"""faiss ``IndexBinaryFlat``: exact hamming scan of packed bit rows."""

from __future__ import annotations

from typing import Any

import faiss

from ._faiss_binary import FaissBinaryAdapter


class FaissBinaryFlat(FaissBinaryAdapter):
    """``IndexBinaryFlat``: exact popcount scan of packed bits."""

    exact = True

    def __init__(self, metric: str, threads: int = 1) -> None:
        super().__init__(metric, threads)

    def make(self, d: int) -> Any:
        return faiss.IndexBinaryFlat(d)
