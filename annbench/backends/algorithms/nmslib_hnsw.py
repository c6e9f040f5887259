"""NMSLIB's HNSW (hierarchical navigable small world graph)."""

from __future__ import annotations

from typing import Any, Literal

from annbench.backends.adapter import at_least

from ._nmslib import NmslibAdapter


class NmslibHnsw(NmslibAdapter):
    """``hnsw`` method: a hierarchical navigable small-world graph.

    Parameters:
        M: links per node (memory, build time, recall ceiling)
        post: extra graph-smoothing passes (build time vs recall)
    """

    method = "hnsw"
    save_data = False

    def __init__(self, metric: str, M: int = 16, efConstruction: int = 200, post: Literal[0, 1, 2] = 0,
                 threads: int = 1) -> None:
        super().__init__(metric, threads)
        at_least(2, M=M)
        at_least(1, efConstruction=efConstruction)
        if post not in (0, 1, 2):
            raise ValueError(f"post={post!r}; valid: 0, 1, 2")
        self.M, self.efConstruction, self.post = M, efConstruction, post

    def _build_options(self) -> dict[str, Any]:
        return {"M": self.M, "efConstruction": self.efConstruction, "post": self.post}
