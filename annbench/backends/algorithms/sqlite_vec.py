"""sqlite-vec: a ``vec0`` virtual table in SQLite, searched by an exact scan in SQL."""

from __future__ import annotations

import logging
import time

import apsw
import numpy as np
import sqlite_vec

from annbench.backends.adapter import Adapter
from annbench.backends.workspace import Workspace

log = logging.getLogger("annbench.backends.sqlite_vec")

#: Rows per INSERT transaction.
BATCH_ROWS = 10_000


class SqliteVec(Adapter):
    """sqlite-vec ``vec0``: SQL ``WHERE embedding MATCH ? AND k = ?``, an exact scan of float32, int8 or bit columns.

    The column's type follows the data: packed bits (hamming) → ``bit[d]``, int8 vectors → ``int8[d]``,
    anything else → ``float[d]``. (The standard library's ``sqlite3`` here cannot load extensions; ``apsw``
    is the SQLite binding.)
    """

    native_metrics = {"euclidean": "l2", "angular": "cosine", "hamming": "hamming"}
    #: int8 rows and packed bits go into int8 / bit columns as they are (issue 24's point types).
    point_types = ("float32", "int8", "bit")
    libraries = ("sqlite-vec", "apsw")
    exact = True

    def _sql(self, sql: str) -> None:
        log.debug("SQL: %s", sql)
        self.con.execute(sql)

    def fit(self, X: np.ndarray) -> None:
        self.workspace = Workspace("sqlite-vec")
        start = time.perf_counter()
        self.con = apsw.Connection(str(self.workspace.path / "items.sqlite"))
        self.con.enable_load_extension(True)
        self.con.load_extension(sqlite_vec.loadable_path())
        self.con.enable_load_extension(False)
        if self.metric == "hamming":
            column, self.wrap, self.dtype = f"bit[{8 * X.shape[1]}]", "vec_bit(?)", np.uint8
        elif X.dtype == np.int8:
            column, self.wrap, self.dtype = f"int8[{X.shape[1]}]", "vec_int8(?)", np.int8
        else:
            column, self.wrap, self.dtype = f"float[{X.shape[1]}]", "?", np.float32
        metric = "" if self.metric == "hamming" else f" distance_metric={self.metric_name}"
        self._sql(f"CREATE VIRTUAL TABLE items USING vec0(embedding {column}{metric})")
        insert = f"INSERT INTO items(rowid, embedding) VALUES (?, {self.wrap})"
        log.debug("SQL: %s", insert)
        rows = np.ascontiguousarray(X, dtype=self.dtype)
        for i in range(0, len(rows), BATCH_ROWS):
            with self.con:  # one transaction per batch
                self.con.executemany(insert, ((j, rows[j].tobytes()) for j in range(i, min(i + BATCH_ROWS, len(rows)))))
        self.load_s = time.perf_counter() - start
        self.sql = f"SELECT rowid FROM items WHERE embedding MATCH {self.wrap} AND k = ? ORDER BY distance"

    def build_stats(self) -> dict[str, float]:
        """``load_s``: open, load the extension, CREATE VIRTUAL TABLE, INSERT (vec0 has no index to build)."""
        return {"load_s": self.load_s}

    def set_query_params(self) -> None:
        log.debug("SQL (each query): %s", self.sql)

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        rows = self.con.execute(self.sql, (np.ascontiguousarray(q, dtype=self.dtype).tobytes(), k)).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def index_size_bytes(self) -> int:
        return self.workspace.size_bytes()
