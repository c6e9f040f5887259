"""Shared by the faiss binary adapters: packed bit rows in an ``IndexBinary*`` under hamming."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faiss
import numpy as np

from annbench.backends.adapter import Adapter


class FaissBinaryAdapter(Adapter):
    """Base of the faiss binary adapters: subclasses make the index for ``d`` bits (a multiple of 8:
    packed rows' padding bits are 0 on both sides, so distances are unchanged)."""

    native_metrics = {"hamming": "hamming"}
    point_types = ("bit",)
    libraries = ("faiss-cpu",)

    def make(self, d: int) -> Any:
        raise NotImplementedError

    def fit(self, X: np.ndarray) -> None:
        faiss.omp_set_num_threads(self.threads)
        self.index = self.make(X.shape[1] * 8)
        if not self.index.is_trained:
            self.index.train(X)
        self.index.add(X)

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        return self.index.search(q[None, :], k)[1][0]

    def batch_query(self, Q: np.ndarray, k: int) -> np.ndarray:
        return self.index.search(Q, k)[1]

    def index_size_bytes(self) -> int:
        return int(faiss.serialize_index_binary(self.index).nbytes)

    def save(self, folder: Path) -> None:
        faiss.write_index_binary(self.index, str(Path(folder) / "index.faissbin"))

    def load(self, folder: Path, dimension: int) -> None:
        faiss.omp_set_num_threads(self.threads)
        self.index = faiss.read_index_binary(str(Path(folder) / "index.faissbin"))
