"""sqlite-vec: a ``vec0`` virtual table in SQLite, searched by an exact scan in SQL."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

import apsw
import numpy as np
import sqlite_vec

from annbench.backends.adapter import Adapter, handle_copy
from annbench.backends.workspace import Workspace
from annbench.quality.predicates import Attributes, Predicate

log = logging.getLogger("annbench.backends.sqlite_vec")

#: Rows per INSERT transaction.
BATCH_ROWS = 10_000


class SqliteVec(Adapter):
    """sqlite-vec ``vec0``: SQL ``WHERE embedding MATCH ? AND k = ?``, an exact scan of float32, int8 or bit columns.

    The column's type follows the data: packed bits (hamming) → ``bit[d]``, int8 vectors → ``int8[d]``,
    anything else → ``float[d]``. (The standard library's ``sqlite3`` here cannot load extensions; ``apsw``
    is the SQLite binding.) Filtered search: the attributes in ordinary tables (``item_tags (tag, id)``,
    ``item_values (id, value)`` indexed on value), the KNN query given ``AND rowid IN (SELECT id FROM
    item_tags WHERE tag = ? INTERSECT ...)``, which vec0 applies during its scan: exact.
    """

    native_metrics = {"euclidean": "l2", "angular": "cosine", "hamming": "hamming"}
    #: int8 rows and packed bits go into int8 / bit columns as they are (issue 24's point types).
    point_types = ("float32", "int8", "bit")
    libraries = ("sqlite-vec", "apsw")
    exact = True
    filters = ("tags", "range")
    changes = ("insert", "delete", "replace")

    def _sql(self, sql: str, params: Any = None) -> None:
        log.debug("SQL: %s", sql)
        self.con.execute(sql, params)

    def _many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """One statement over many rows, in one transaction."""
        log.debug("SQL: %s", sql)
        with self.con:
            self.con.executemany(sql, rows)

    def _connect(self) -> apsw.Connection:
        con = apsw.Connection(str(self.workspace.path / "items.sqlite"))
        con.enable_load_extension(True)
        con.load_extension(sqlite_vec.loadable_path())
        con.enable_load_extension(False)
        return con

    def fit(self, X: np.ndarray) -> None:
        self._create(X, np.arange(len(X)))

    def _create(self, X: np.ndarray, ids: np.ndarray) -> None:
        self.workspace = Workspace("sqlite-vec")
        start = time.perf_counter()
        self.con = self._connect()
        if self.metric == "hamming":
            column, self.wrap, self.dtype = f"bit[{8 * X.shape[1]}]", "vec_bit(?)", np.uint8
        elif X.dtype == np.int8:
            column, self.wrap, self.dtype = f"int8[{X.shape[1]}]", "vec_int8(?)", np.int8
        else:
            column, self.wrap, self.dtype = f"float[{X.shape[1]}]", "?", np.float32
        metric = "" if self.metric == "hamming" else f" distance_metric={self.metric_name}"
        self._sql(f"CREATE VIRTUAL TABLE items USING vec0(embedding {column}{metric})")
        self._insert(X, ids)
        self.load_s = time.perf_counter() - start
        self.sql = f"SELECT rowid FROM items WHERE embedding MATCH {self.wrap} AND k = ? ORDER BY distance"

    def _insert(self, X: np.ndarray, ids: np.ndarray) -> None:
        insert = f"INSERT INTO items(rowid, embedding) VALUES (?, {self.wrap})"
        rows = np.ascontiguousarray(X, dtype=self.dtype)
        ids = ids.tolist()  # Python ints: apsw binds no numpy integer
        for i in range(0, len(rows), BATCH_ROWS):  # one transaction per batch
            self._many(insert, ((ids[j], rows[j].tobytes()) for j in range(i, min(i + BATCH_ROWS, len(rows)))))

    def build_stats(self) -> dict[str, float]:
        """``load_s``: open, load the extension, CREATE VIRTUAL TABLE, INSERT (vec0 has no index to build); on a
        filtered dataset ``attrs_s`` (the attribute tables)."""
        return {"load_s": self.load_s, **({"attrs_s": self.attrs_s} if hasattr(self, "attrs_s") else {})}

    def set_query_params(self) -> None:
        log.debug("SQL (each query): %s", self.sql)

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        rows = self.con.execute(self.sql, (np.ascontiguousarray(q, dtype=self.dtype).tobytes(), k)).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    # Filtered search (see the class docstring).
    def fit_attributes(self, attrs: Attributes) -> None:
        start = time.perf_counter()
        self._sql("CREATE TABLE item_tags (tag INTEGER NOT NULL, id INTEGER NOT NULL, PRIMARY KEY (tag, id)) "
                  "WITHOUT ROWID")
        coo = attrs.tags.tocoo()
        self._many("INSERT INTO item_tags (tag, id) VALUES (?, ?)", zip(coo.col.tolist(), coo.row.tolist()))
        if attrs.values is not None:
            self._sql("CREATE TABLE item_values (id INTEGER PRIMARY KEY, value REAL NOT NULL)")
            self._many("INSERT INTO item_values (id, value) VALUES (?, ?)",
                       enumerate(np.asarray(attrs.values, dtype=np.float64).tolist()))
            self._sql("CREATE INDEX item_values_value ON item_values (value)")
        self._sql("ANALYZE")
        self.attrs_s = time.perf_counter() - start

    def filtered_query(self, q: np.ndarray, k: int, predicate: Predicate) -> np.ndarray:
        parts = ["SELECT id FROM item_tags WHERE tag = ?"] * len(predicate.tags)
        params: list[Any] = list(predicate.tags)
        if predicate.has_range:
            parts.append("SELECT id FROM item_values WHERE value >= ? AND value < ?")
            params += [predicate.low, predicate.high]
        sql = self.sql.replace(" ORDER BY", f" AND rowid IN ({' INTERSECT '.join(parts)}) ORDER BY") if parts \
            else self.sql
        if sql not in self._logged:
            self._logged.add(sql)
            log.debug("SQL (each filtered query): %s", sql)
        rows = self.con.execute(sql, (np.ascontiguousarray(q, dtype=self.dtype).tobytes(), k, *params)).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    @functools.cached_property
    def _logged(self) -> set[str]:
        return set()

    # Changes: INSERT and DELETE; replace is delete + insert (vec0's UPDATE loses vec_int8()'s and vec_bit()'s
    # type: it takes the blob for float32).
    def insert(self, X: np.ndarray, ids: np.ndarray) -> None:
        if not hasattr(self, "con"):  # the first insert makes the table
            self._create(X, ids)
        else:
            self._insert(X, ids)

    def delete(self, ids: np.ndarray) -> None:
        self._many("DELETE FROM items WHERE rowid = ?", ((i,) for i in ids.tolist()))

    # Concurrent clients: each its own connection to the database file (in a client process, after the fork).
    def client(self) -> SqliteVec:
        handle = handle_copy(self)
        handle.con = self._connect()
        return handle

    def close_client(self) -> None:
        self.con.close()

    def index_size_bytes(self) -> int:
        return self.workspace.size_bytes()
