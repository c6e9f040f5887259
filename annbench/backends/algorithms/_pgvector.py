"""Shared by the pgvector adapters: a table of ``vector`` rows in PostgreSQL, loaded with a binary
``COPY``, indexed with ``CREATE INDEX``, queried with ``ORDER BY embedding <op> %s LIMIT %s`` and a
bound parameter, as an application queries it (see :mod:`annbench.backends.postgres` for the server).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import struct
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg.types import TypeInfo

from annbench.backends.adapter import Adapter, handle_copy
from annbench.backends.postgres import Database, pg_binaries
from annbench.quality.predicates import Attributes, Predicate

pg_binaries()  # pgserver's PostgreSQL: without it the adapter is listed as unavailable, with the extra to install

log = logging.getLogger("annbench.backends.pgvector")

TABLE = "items"
#: pgvector's distance operator per operator class.
OPERATORS = {"vector_l2_ops": "<->", "vector_cosine_ops": "<=>", "vector_ip_ops": "<#>"}
#: Rows per chunk of the binary COPY stream.
COPY_ROWS = 8192


def _dumper(oid: int) -> type[Dumper]:
    class VectorDumper(Dumper):
        """A float32 array as pgvector's binary ``vector``: dimension, 0, big-endian floats."""

        format = Format.BINARY

        def dump(self, obj: np.ndarray) -> bytes:
            return struct.pack(">HH", len(obj), 0) + obj.astype(">f4").tobytes()

    VectorDumper.oid = oid
    return VectorDumper


def copy_stream(X: np.ndarray, ids: np.ndarray) -> bytes:
    """Rows ``(id, embedding)`` of PostgreSQL's binary COPY format (without header)."""
    d = X.shape[1]
    row = np.dtype([("fields", ">i2"), ("id_len", ">i4"), ("id", ">i4"), ("vec_len", ">i4"), ("dim", ">i2"),
                    ("unused", ">i2"), ("vec", ">f4", (d,))])
    rows = np.zeros(len(X), dtype=row)
    rows["fields"], rows["id_len"], rows["vec_len"], rows["dim"] = 2, 4, 4 + 4 * d, d
    rows["id"] = ids
    rows["vec"] = X
    return rows.tobytes()


def attribute_rows(attrs: Attributes) -> Iterator[str]:
    """The text COPY rows ``id, tags (int4[]), value`` of the points' attributes, in chunks."""
    tags = attrs.tags
    for start in range(0, attrs.n, COPY_ROWS):
        lines = []
        for i in range(start, min(start + COPY_ROWS, attrs.n)):
            row = ",".join(map(str, tags.indices[tags.indptr[i]:tags.indptr[i + 1]].tolist()))
            value = "\\N" if attrs.values is None else repr(float(attrs.values[i]))
            lines.append(f"{i}\t{{{row}}}\t{value}\n")
        yield "".join(lines)


def where(predicate: Predicate) -> tuple[str, list[Any]]:
    """The ``WHERE`` clause of a predicate over the ``attrs`` table ``a``, and its parameters."""
    conditions, params = [], []
    if predicate.tags:
        conditions.append("a.tags @> %s::int4[]")
        params.append(list(predicate.tags))
    if predicate.has_range:
        conditions.append("a.value >= %s AND a.value < %s")
        params += [predicate.low, predicate.high]
    return " AND ".join(conditions) or "true", params


class PgVector(Adapter):
    """Base of the pgvector adapters: subclasses give the index's ``USING`` clause and query settings.

    Filtered search: the attributes live in a table of their own, ``attrs (id, tags int4[], value)`` with a
    GIN index on the tags and a B-tree on the value (loaded after the vectors: an ``UPDATE`` of ``items``
    would insert every row into the vector index again), joined on ``id``; PostgreSQL's planner picks the
    plan. On a server with pgvector >= 0.8 the session turns on iterative index scans (:attr:`iterative_scan`):
    the index scan goes on past ``ef_search`` rows / the probed lists until k rows pass the filter (or its
    ``max_scan_tuples``). pgvector 0.6.2 (pgserver's) has none: an index scan returns at most ``ef_search``
    rows (HNSW) or those of the probed lists (IVFFlat) before the filter. On either, a query answered with
    fewer than k rows is asked again filter-first (a ``MATERIALIZED`` CTE of the matching rows, which no
    vector index can serve, ranked exactly), as an application has to; :meth:`stats` says how often.
    """

    #: The session setting that turns on pgvector 0.8's iterative index scans for this index type.
    iterative_scan: str = ""

    native_metrics = {"euclidean": "vector_l2_ops", "angular": "vector_cosine_ops", "ip": "vector_ip_ops"}
    libraries = ("pgserver", "psycopg")
    filters = ("tags", "range")
    changes = ("insert", "delete", "replace")

    def index_method(self) -> str:
        """``USING ...`` of ``CREATE INDEX`` (method, operator class, ``WITH`` options)."""
        raise NotImplementedError

    def fit(self, X: np.ndarray) -> None:
        self._create(X, np.arange(len(X)))

    def _create(self, X: np.ndarray, ids: np.ndarray) -> None:
        """The table of ``X`` under ``ids`` and its index, on a new server (or ``--pg-dsn`` schema)."""
        self.db = Database(self.threads)
        self._handle = False
        self._use(self.db.conn)
        start = time.perf_counter()
        self.db.execute(f"CREATE TABLE {TABLE} (id int4 PRIMARY KEY, embedding vector({X.shape[1]}))")
        self._copy(TABLE, X, ids)
        self.db.execute(f"ANALYZE {TABLE}")
        self.load_s = time.perf_counter() - start
        start = time.perf_counter()
        self.db.execute(f"CREATE INDEX ON {TABLE} USING {self.index_method()}")
        self.index_s = time.perf_counter() - start
        operator = OPERATORS[self.metric_name]
        self.sql = f"SELECT id FROM {TABLE} ORDER BY embedding {operator} %s LIMIT %s"
        self.filtered_sql = (f"SELECT i.id FROM {TABLE} i JOIN attrs a ON a.id = i.id WHERE {{}} "
                             f"ORDER BY i.embedding {operator} %s LIMIT %s")
        self.exact_sql = (f"WITH m AS MATERIALIZED (SELECT i.id, i.embedding FROM {TABLE} i JOIN attrs a ON a.id = "
                          f"i.id WHERE {{}}) SELECT id FROM m ORDER BY embedding {operator} %s LIMIT %s")
        self.settings: dict[str, int | str] = {}
        self._filtered = self._reasked = self._filtered_ns = self._reask_ns = 0  # stats(): filtered queries

    def _use(self, conn: Any) -> None:
        """Send vectors over ``conn`` in pgvector's binary format, through a cursor of this adapter's own."""
        conn.adapters.register_dumper(np.ndarray, _dumper(TypeInfo.fetch(conn, "vector").oid))
        self.conn = conn
        self.cursor = conn.cursor()

    def _copy(self, table: str, X: np.ndarray, ids: np.ndarray) -> None:
        sql = f"COPY {table} (id, embedding) FROM STDIN (FORMAT BINARY)"
        log.debug("SQL: %s", sql)
        with self.conn.cursor().copy(sql) as copy:
            copy.write(b"PGCOPY\n\xff\r\n\0" + struct.pack(">ii", 0, 0))
            for i in range(0, len(X), COPY_ROWS):
                copy.write(copy_stream(X[i:i + COPY_ROWS], ids[i:i + COPY_ROWS]))
            copy.write(struct.pack(">h", -1))

    def build_stats(self) -> dict[str, float]:
        """``start_s`` (server start or schema), ``load_s`` (CREATE TABLE, COPY, ANALYZE), ``index_s``, and on
        a filtered dataset ``attrs_s`` (the attribute table, its indexes)."""
        stats = {"start_s": self.db.start_s, "load_s": self.load_s, "index_s": self.index_s}
        return {**stats, "attrs_s": self.attrs_s} if hasattr(self, "attrs_s") else stats

    def set_setting(self, name: str, value: int) -> None:
        """A query setting, as a ``SET`` of the session; logs the query the next passes send."""
        self.settings[name] = int(value)
        self.db.execute(f"SET {name} = {int(value)}")
        log.debug("SQL (each query): %s", self.sql)
        self._filtered = self._reasked = self._filtered_ns = self._reask_ns = 0

    def stats(self) -> dict[str, float]:
        """On a filtered dataset, since the query setting was applied: ``reasked_share``, the share of filtered
        queries whose index scan gave fewer than k rows, so they were asked again filter-first;
        ``reask_ms``, the mean time of such a second query; ``reask_time_share``, the share of all filtered
        query time spent on them (the re-ask's cost)."""
        if not self._filtered:
            return {}
        return {"reasked_share": self._reasked / self._filtered,
                "reask_ms": self._reask_ns / self._reasked * 1e-6 if self._reasked else 0.0,
                "reask_time_share": self._reask_ns / self._filtered_ns if self._filtered_ns else 0.0}

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        rows = self.cursor.execute(self.sql, (q, k), prepare=True, binary=True).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    # Filtered search (see the class docstring).
    def fit_attributes(self, attrs: Attributes) -> None:
        start = time.perf_counter()
        self.db.execute("CREATE TABLE attrs (id int4 PRIMARY KEY, tags int4[] NOT NULL, value float8)")
        sql = "COPY attrs (id, tags, value) FROM STDIN"
        log.debug("SQL: %s", sql)
        with self.conn.cursor().copy(sql) as copy:
            for chunk in attribute_rows(attrs):
                copy.write(chunk)
        self.db.execute("CREATE INDEX ON attrs USING gin (tags)")
        if attrs.values is not None:
            self.db.execute("CREATE INDEX ON attrs (value)")
        self.db.execute("ANALYZE attrs")
        if self.db.vector_version >= (0, 8):  # an index scan goes on until k rows pass the filter
            name, mode = self.iterative_scan.split(" = ")
            self.settings[name] = mode
            self.db.execute(f"SET {name} = {mode}")
        self.attrs_s = time.perf_counter() - start

    def filtered_query(self, q: np.ndarray, k: int, predicate: Predicate) -> np.ndarray:
        condition, params = where(predicate)
        sql, exact = self.filtered_sql.format(condition), self.exact_sql.format(condition)
        if sql not in self._logged:
            self._logged.add(sql)
            log.debug("SQL (each filtered query): %s", sql)
            log.debug("SQL (fewer than k rows): %s", exact)
        start = time.perf_counter_ns()
        rows = self.cursor.execute(sql, (*params, q, k), prepare=True, binary=True).fetchall()
        if len(rows) < k:  # the index scan ran out before k rows passed the filter: filter first, rank exactly
            asked = time.perf_counter_ns()
            rows = self.cursor.execute(exact, (*params, q, k), prepare=True, binary=True).fetchall()
            self._reasked += 1
            self._reask_ns += time.perf_counter_ns() - asked
        self._filtered += 1
        self._filtered_ns += time.perf_counter_ns() - start
        return np.array([r[0] for r in rows], dtype=np.int64)

    @functools.cached_property
    def _logged(self) -> set[str]:
        return set()

    # Changes: COPY (insert), DELETE, and an upsert through a staging table (replace).
    def insert(self, X: np.ndarray, ids: np.ndarray) -> None:
        if not hasattr(self, "db"):  # the first insert builds the table and its index
            self._create(X, ids)
        else:
            self._copy(TABLE, X, ids)

    def delete(self, ids: np.ndarray) -> None:
        self.db.execute(f"DELETE FROM {TABLE} WHERE id = ANY(%s::int4[])", (ids.tolist(),))

    def replace(self, X: np.ndarray, ids: np.ndarray) -> None:
        self.db.execute(f"CREATE TEMP TABLE staging (LIKE {TABLE})")
        try:
            self._copy("staging", X, ids)
            self.db.execute(f"INSERT INTO {TABLE} SELECT * FROM staging ON CONFLICT (id) DO UPDATE SET embedding = "
                            f"EXCLUDED.embedding")
        finally:
            self.db.execute("DROP TABLE staging")

    # Concurrent clients: each its own connection (in a client process, opened after the fork).
    def client(self) -> PgVector:
        handle = handle_copy(self)
        handle._handle = True
        handle._use(self.db.connect())
        for name, value in self.settings.items():
            log.debug("SQL: SET %s = %s", name, value)
            handle.cursor.execute(f"SET {name} = {value}")
        return handle

    def close_client(self) -> None:
        self.conn.close()

    def index_size_bytes(self) -> int:
        return self.db.size_bytes(TABLE)

    def __del__(self) -> None:
        if getattr(self, "_handle", False):
            with contextlib.suppress(Exception):
                self.conn.close()
        elif hasattr(self, "db"):
            self.db.close()
