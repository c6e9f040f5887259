"""Shared by the pgvector adapters: a table of ``vector`` rows in PostgreSQL, loaded with a binary
``COPY``, indexed with ``CREATE INDEX``, queried with ``ORDER BY embedding <op> %s LIMIT %s`` and a
bound parameter, as an application queries it (see :mod:`annbench.backends.postgres` for the server).
"""

from __future__ import annotations

import logging
import struct
import time

import numpy as np
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg.types import TypeInfo

from annbench.backends.adapter import Adapter
from annbench.backends.postgres import Database, pg_binaries

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


def copy_stream(X: np.ndarray, start: int) -> bytes:
    """Rows ``(id, embedding)`` of PostgreSQL's binary COPY format (without header), ids from ``start``."""
    d = X.shape[1]
    row = np.dtype([("fields", ">i2"), ("id_len", ">i4"), ("id", ">i4"), ("vec_len", ">i4"), ("dim", ">i2"),
                    ("unused", ">i2"), ("vec", ">f4", (d,))])
    rows = np.zeros(len(X), dtype=row)
    rows["fields"], rows["id_len"], rows["vec_len"], rows["dim"] = 2, 4, 4 + 4 * d, d
    rows["id"] = np.arange(start, start + len(X))
    rows["vec"] = X
    return rows.tobytes()


class PgVector(Adapter):
    """Base of the pgvector adapters: subclasses give the index's ``USING`` clause and query settings."""

    native_metrics = {"euclidean": "vector_l2_ops", "angular": "vector_cosine_ops", "ip": "vector_ip_ops"}
    libraries = ("pgserver", "psycopg")
    #: a forked client would talk over the parent's connection (its socket) until ``client()`` opens its own
    fork_clients = False
    fork_clients_reason = "a forked client would share the adapter's database connection"

    def index_method(self) -> str:
        """``USING ...`` of ``CREATE INDEX`` (method, operator class, ``WITH`` options)."""
        raise NotImplementedError

    def fit(self, X: np.ndarray) -> None:
        self.db = Database(self.threads)
        conn = self.db.conn
        info = TypeInfo.fetch(conn, "vector")
        conn.adapters.register_dumper(np.ndarray, _dumper(info.oid))
        start = time.perf_counter()
        self.db.execute(f"CREATE TABLE {TABLE} (id int4 PRIMARY KEY, embedding vector({X.shape[1]}))")
        sql = f"COPY {TABLE} (id, embedding) FROM STDIN (FORMAT BINARY)"
        log.debug("SQL: %s", sql)
        with conn.cursor().copy(sql) as copy:
            copy.write(b"PGCOPY\n\xff\r\n\0" + struct.pack(">ii", 0, 0))
            for i in range(0, len(X), COPY_ROWS):
                copy.write(copy_stream(X[i:i + COPY_ROWS], i))
            copy.write(struct.pack(">h", -1))
        self.db.execute(f"ANALYZE {TABLE}")
        self.load_s = time.perf_counter() - start
        start = time.perf_counter()
        self.db.execute(f"CREATE INDEX ON {TABLE} USING {self.index_method()}")
        self.index_s = time.perf_counter() - start
        self.sql = f"SELECT id FROM {TABLE} ORDER BY embedding {OPERATORS[self.metric_name]} %s LIMIT %s"
        self.cursor = conn.cursor()

    def build_stats(self) -> dict[str, float]:
        """``start_s`` (server start or schema), ``load_s`` (CREATE TABLE, COPY, ANALYZE), ``index_s``."""
        return {"start_s": self.db.start_s, "load_s": self.load_s, "index_s": self.index_s}

    def set_setting(self, name: str, value: int) -> None:
        """A query setting, as a ``SET`` of the session; logs the query the next passes send."""
        self.db.execute(f"SET {name} = {int(value)}")
        log.debug("SQL (each query): %s", self.sql)

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        rows = self.cursor.execute(self.sql, (q, k), prepare=True, binary=True).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def index_size_bytes(self) -> int:
        return self.db.size_bytes(TABLE)

    def __del__(self) -> None:
        if hasattr(self, "db"):
            self.db.close()
