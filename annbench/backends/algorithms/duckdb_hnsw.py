"""DuckDB with its VSS extension: an HNSW index on a ``FLOAT[d]`` column, queried in SQL."""

from __future__ import annotations

import functools
import logging
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import duckdb_extension_vss
import numpy as np
import pyarrow as pa

from annbench.backends.adapter import Adapter, at_least, handle_copy
from annbench.backends.workspace import Workspace
from annbench.quality.predicates import Attributes, Predicate

log = logging.getLogger("annbench.backends.duckdb")

#: The extension file the pip package ships: ``LOAD '<path>'`` works offline (``INSTALL vss`` downloads).
_SHIPPED = Path(duckdb_extension_vss.__file__).parent / "extensions" / f"v{duckdb.__version__}"
EXTENSION = next(_SHIPPED.glob("*.duckdb_extension"), None)
#: The distance function the HNSW index answers for each of its metrics.
DISTANCES = {"l2sq": "array_distance", "cosine": "array_cosine_distance", "ip": "array_negative_inner_product"}


if EXTENSION is None:
    raise ImportError(f"duckdb-extension-vss has no extension file for duckdb {duckdb.__version__}; install the "
                      f"versions pinned together: pip install -c constraints.txt 'annbench[duckdb]'")


class DuckDBHNSW(Adapter):
    """DuckDB + VSS ``USING HNSW``: SQL ``ORDER BY array_distance(embedding, ?) LIMIT k`` over a graph index.

    Filtered search: a table ``attrs (id, tags INTEGER[], value DOUBLE)`` joined on ``id``, with ``WHERE
    list_has_all(a.tags, ?) AND a.value >= ? AND a.value < ?``: DuckDB ranks the matching rows exactly (VSS
    1.5.5 has no pre-filtering and its index scan serves no join). Attribute columns in ``items`` itself
    would let the index scan run, only to filter its top k afterwards, and filling them by ``UPDATE`` put
    every row through the HNSW index again (608 s for 100,000 rows here).

    Parameters:
        M: links per node (memory, build time, recall ceiling)
        ef_construction: build beam (build time vs graph quality)
        ef_search: ``SET hnsw_ef_search``, the query beam (recall vs speed)
    """

    native_metrics = {"euclidean": "l2sq", "angular": "cosine", "ip": "ip"}
    libraries = ("duckdb", "duckdb-extension-vss")
    filters = ("tags", "range")
    changes = ("insert", "delete", "replace")
    fork_clients = False
    fork_clients_reason = ("a DuckDB database file is open in one process at a time; thread clients each get a "
                           "connection of their own (their index scans serialised: VSS 1.5.5 crashes on concurrent "
                           "ones)")

    def __init__(self, metric: str, M: int = 16, ef_construction: int = 128, threads: int = 1) -> None:
        super().__init__(metric, threads)
        at_least(2, M=M)
        at_least(1, ef_construction=ef_construction)
        self.M, self.ef_construction = M, ef_construction

    def _sql(self, sql: str, params: Any = None) -> None:
        log.debug("SQL: %s", sql)
        self.con.execute(sql, params)

    def fit(self, X: np.ndarray) -> None:
        self._create(X, np.arange(len(X)))

    def _create(self, X: np.ndarray, ids: np.ndarray) -> None:
        self.workspace = Workspace("duckdb")
        start = time.perf_counter()
        self.con = duckdb.connect(str(self.workspace.path / "items.duckdb"))
        self._sql(f"LOAD '{EXTENSION}'")
        self._sql("SET hnsw_enable_experimental_persistence = true")  # the index lives in the database file
        self._sql(f"SET threads = {self.threads}")
        # DuckDB's late materialization would turn the top-k into a rowid semi-join over a full scan
        self._sql("SET late_materialization_max_rows = 0")
        d = X.shape[1]
        self._sql(f"CREATE TABLE items (id INTEGER, embedding FLOAT[{d}])")
        self._insert(X, ids)
        self.load_s = time.perf_counter() - start
        start = time.perf_counter()
        self._sql(f"CREATE INDEX items_hnsw ON items USING HNSW (embedding) WITH (metric = '{self.metric_name}', "
                  f"M = {self.M}, ef_construction = {self.ef_construction})")
        self._sql("CHECKPOINT")
        self.index_s = time.perf_counter() - start
        distance = f"{DISTANCES[self.metric_name]}(embedding, ?::FLOAT[{d}])"
        self.sql = f"SELECT id FROM items ORDER BY {distance} LIMIT ?"
        self.filtered_sql = (f"SELECT i.id FROM items i JOIN attrs a ON a.id = i.id WHERE {{}} "
                             f"ORDER BY {distance.replace('(embedding', '(i.embedding')} LIMIT ?")
        self.settings: list[str] = []
        # VSS 1.5.5's index scan crashes the process (SIGSEGV) when two connections run it at once (4 threads,
        # a cursor each, reproduced here; a plain scan does not): every handle's queries take this one lock
        self.scan_lock = threading.Lock()

    def _insert(self, X: np.ndarray, ids: np.ndarray) -> None:
        rows = pa.table({"id": pa.array(np.asarray(ids, dtype=np.int32)),
                         "embedding": pa.FixedSizeListArray.from_arrays(pa.array(np.asarray(X, np.float32).ravel()),
                                                                        X.shape[1])})
        self.con.register("rows", rows)
        self._sql("INSERT INTO items (id, embedding) SELECT id, embedding FROM rows")
        self.con.unregister("rows")

    def build_stats(self) -> dict[str, float]:
        """``load_s`` (connect, CREATE TABLE, INSERT from Arrow), ``index_s`` (CREATE INDEX, CHECKPOINT), and
        on a filtered dataset ``attrs_s`` (the attribute table)."""
        stats = {"load_s": self.load_s, "index_s": self.index_s}
        return {**stats, "attrs_s": self.attrs_s} if hasattr(self, "attrs_s") else stats

    def set_query_params(self, ef_search: int = 64) -> None:
        at_least(1, ef_search=ef_search)
        setting = f"SET hnsw_ef_search = {ef_search}"
        self.settings.append(setting)
        self._sql(setting)
        log.debug("SQL (each query): %s", self.sql)

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        with self.scan_lock:
            rows = self.con.execute(self.sql, [q.tolist(), k]).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    # Filtered search (see the class docstring).
    def fit_attributes(self, attrs: Attributes) -> None:
        start = time.perf_counter()
        tags = attrs.tags
        lists = pa.ListArray.from_arrays(pa.array(tags.indptr.astype(np.int32)),
                                         pa.array(tags.indices.astype(np.int32)))
        values = pa.nulls(attrs.n, pa.float64()) if attrs.values is None else pa.array(attrs.values, pa.float64())
        self.con.register("attrs_rows", pa.table({"id": pa.array(np.arange(attrs.n, dtype=np.int32)), "tags": lists,
                                             "value": values}))
        self._sql("CREATE TABLE attrs AS SELECT * FROM attrs_rows")
        self.con.unregister("attrs_rows")
        self.attrs_s = time.perf_counter() - start

    def filtered_query(self, q: np.ndarray, k: int, predicate: Predicate) -> np.ndarray:
        conditions, params = [], []
        if predicate.tags:
            conditions.append("list_has_all(a.tags, ?::INTEGER[])")
            params.append(list(predicate.tags))
        if predicate.has_range:
            conditions.append("a.value >= ? AND a.value < ?")
            params += [predicate.low, predicate.high]
        condition = " AND ".join(conditions) or "true"
        params += [q.tolist(), k]
        sql = self.filtered_sql.format(condition)
        if sql not in self._logged:
            self._logged.add(sql)
            log.debug("SQL (each filtered query): %s", sql)
        with self.scan_lock:
            rows = self.con.execute(sql, params).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    @functools.cached_property
    def _logged(self) -> set[str]:
        return set()

    # Changes: INSERT from Arrow, DELETE (VSS removes the rows from the graph), replace = delete + insert.
    def insert(self, X: np.ndarray, ids: np.ndarray) -> None:
        if not hasattr(self, "con"):  # the first insert builds the table and its index
            self._create(X, ids)
        else:
            self._insert(X, ids)

    def delete(self, ids: np.ndarray) -> None:
        self._sql("DELETE FROM items WHERE id IN (SELECT unnest(?::INTEGER[]))", [ids.tolist()])

    # Concurrent clients: thread clients each get a connection of their own (a cursor: DuckDB's duplicate
    # connection to the same database), with the query settings applied to it; their queries share scan_lock.
    def client(self) -> DuckDBHNSW:
        handle = handle_copy(self)
        handle.con = self.con.cursor()
        for setting in [*self.settings, "SET late_materialization_max_rows = 0"]:
            handle._sql(setting)
        return handle

    def close_client(self) -> None:
        self.con.close()

    def index_size_bytes(self) -> int:
        return self.workspace.size_bytes()
