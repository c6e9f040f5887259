"""DuckDB with its VSS extension: an HNSW index on a ``FLOAT[d]`` column, queried in SQL."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import duckdb
import duckdb_extension_vss
import numpy as np
import pyarrow as pa

from annbench.backends.adapter import Adapter, at_least
from annbench.backends.workspace import Workspace

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

    Parameters:
        M: links per node (memory, build time, recall ceiling)
        ef_construction: build beam (build time vs graph quality)
        ef_search: ``SET hnsw_ef_search``, the query beam (recall vs speed)
    """

    native_metrics = {"euclidean": "l2sq", "angular": "cosine", "ip": "ip"}
    libraries = ("duckdb", "duckdb-extension-vss")

    def __init__(self, metric: str, M: int = 16, ef_construction: int = 128, threads: int = 1) -> None:
        super().__init__(metric, threads)
        at_least(2, M=M)
        at_least(1, ef_construction=ef_construction)
        self.M, self.ef_construction = M, ef_construction

    def _sql(self, sql: str) -> None:
        log.debug("SQL: %s", sql)
        self.con.execute(sql)

    def fit(self, X: np.ndarray) -> None:
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
        rows = pa.table({"id": pa.array(np.arange(len(X), dtype=np.int32)),
                         "embedding": pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), d)})
        self.con.register("rows", rows)
        self._sql("INSERT INTO items SELECT id, embedding FROM rows")
        self.con.unregister("rows")
        self.load_s = time.perf_counter() - start
        start = time.perf_counter()
        self._sql(f"CREATE INDEX items_hnsw ON items USING HNSW (embedding) WITH (metric = '{self.metric_name}', "
                  f"M = {self.M}, ef_construction = {self.ef_construction})")
        self._sql("CHECKPOINT")
        self.index_s = time.perf_counter() - start
        self.sql = f"SELECT id FROM items ORDER BY {DISTANCES[self.metric_name]}(embedding, ?::FLOAT[{d}]) LIMIT ?"

    def build_stats(self) -> dict[str, float]:
        """``load_s`` (connect, CREATE TABLE, INSERT from Arrow) and ``index_s`` (CREATE INDEX, CHECKPOINT)."""
        return {"load_s": self.load_s, "index_s": self.index_s}

    def set_query_params(self, ef_search: int = 64) -> None:
        at_least(1, ef_search=ef_search)
        self._sql(f"SET hnsw_ef_search = {ef_search}")
        log.debug("SQL (each query): %s", self.sql)

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        rows = self.con.execute(self.sql, [q.tolist(), k]).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def index_size_bytes(self) -> int:
        return self.workspace.size_bytes()
