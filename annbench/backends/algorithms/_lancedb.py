"""Shared by the LanceDB adapters: a Lance table in the build's folder, an index built with
``create_index``, searched with the client's query builder (``search(q).nprobes(..).limit(k)``)."""

from __future__ import annotations

import contextlib
import logging
import time

import lancedb
import numpy as np
import pyarrow as pa

from annbench.backends.adapter import Adapter, handle_copy
from annbench.backends.workspace import Workspace
from annbench.quality.predicates import Attributes, Predicate

log = logging.getLogger("annbench.backends.lancedb")


def id_runs(ids: np.ndarray) -> list[tuple[int, int]]:
    """``ids`` as half-open runs ``[start, end)`` of consecutive values (a runbook's batches are one run each)."""
    ids = np.sort(np.asarray(ids, dtype=np.int64))
    if not len(ids):
        return []
    cut = np.flatnonzero(np.diff(ids) != 1) + 1
    return [(int(part[0]), int(part[-1]) + 1) for part in np.split(ids, cut)]


class LanceDBAdapter(Adapter):
    """Base of the LanceDB adapters: subclasses give ``create_index``'s arguments and the query's settings.

    Filters: each row's tags are a ``list<int32>`` column with a ``LABEL_LIST`` scalar index and its value a
    ``float64`` column with a ``BTREE`` one, loaded with the vectors; a predicate is the SQL filter
    ``array_has_all(tags, [..]) AND value >= .. AND value < ..`` of ``search(q).where(.., prefilter=True)``.
    Changes: ``table.add`` (then ``optimize()``, which adds the new rows to the index), ``table.delete``
    of id ranges, and ``merge_insert('id')`` (an upsert) to replace.
    """

    native_metrics = {"euclidean": "l2", "angular": "cosine", "ip": "dot"}
    libraries = ("lancedb",)
    filters = ("tags", "range")
    attributes_first = True
    changes = ("insert", "delete", "replace")
    # lancedb starts its async runtime's thread at import and calls its own fork support experimental (a
    # forked process resets the runtime, with a chance of deadlock it warns about): no warm parent, no forks
    fork_safe = False
    fork_clients = False
    fork_clients_reason = ("lancedb's fork support is experimental: its async runtime is reset in a forked "
                           "process, with a chance of deadlock it warns about")
    _attrs: Attributes | None = None
    table = None

    def index_config(self) -> object:
        """The ``lancedb.index`` configuration of ``create_index`` (``IvfPq(...)``, ...)."""
        raise NotImplementedError

    def fit_attributes(self, attrs: Attributes) -> None:
        self._attrs = attrs  # loaded as columns of the table, with the vectors (attributes_first)

    def _rows(self, X: np.ndarray, ids: np.ndarray, attrs: Attributes | None) -> pa.Table:
        columns = {"id": pa.array(ids.astype(np.int64)),
                   "vector": pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), X.shape[1])}
        if attrs is not None:
            tags = attrs.tags
            columns["tags"] = pa.ListArray.from_arrays(pa.array(tags.indptr.astype(np.int32)),
                                                       pa.array(tags.indices.astype(np.int32)))
            if attrs.values is not None:
                columns["value"] = pa.array(np.asarray(attrs.values, dtype=np.float64))
        return pa.table(columns)

    def fit(self, X: np.ndarray) -> None:
        self._create(X, np.arange(len(X), dtype=np.int64))

    def _create(self, X: np.ndarray, ids: np.ndarray) -> None:
        self.workspace = Workspace("lancedb")
        start = time.perf_counter()
        self.db = lancedb.connect(str(self.workspace.path))
        self._opened_by = id(self)
        data = self._rows(X, ids, self._attrs)
        log.debug("create_table('items', %d rows)", len(X))
        log.debug("columns %s", data.column_names)
        self.table = self.db.create_table("items", data=data)
        self.load_s = time.perf_counter() - start
        start = time.perf_counter()
        config = self.index_config()
        log.debug("create_index('vector', config=%r)", config)
        self.table.create_index("vector", config=config)
        if self._attrs is not None:
            log.debug("create_scalar_index('tags', index_type='LABEL_LIST')")
            self.table.create_scalar_index("tags", index_type="LABEL_LIST")
            if self._attrs.values is not None:
                log.debug("create_scalar_index('value', index_type='BTREE')")
                self.table.create_scalar_index("value", index_type="BTREE")
        self.index_s = time.perf_counter() - start

    def build_stats(self) -> dict[str, float]:
        """``load_s`` (connect, create_table) and ``index_s`` (create_index, the scalar indexes)."""
        return {"load_s": self.load_s, "index_s": self.index_s}

    def search(self, q: np.ndarray, k: int):
        """The query as the client builds it: subclasses add their settings."""
        return self.table.search(q).distance_type(self.metric_name).limit(k).select(["id", "_distance"])

    def log_query(self, settings: str) -> None:
        log.debug("search(q).distance_type(%r).limit(k).select(['id', '_distance'])%s.to_arrow() (each query)",
                  self.metric_name, settings)
        if self._attrs is not None:
            log.debug("search(q).distance_type(%r).limit(k).select(['id', '_distance'])%s.where('array_has_all(tags, "
                      "[..]) AND value >= .. AND value < ..', prefilter=True).to_arrow() (each filtered query)",
                      self.metric_name, settings)

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        return self.search(q, k).to_arrow()["id"].to_numpy().astype(np.int64)

    @staticmethod
    def where(predicate: Predicate) -> str:
        """The predicate as a Lance SQL filter: ``array_has_all(tags, [3, 7]) AND value >= 0.1 AND value < 0.2``."""
        clauses = [f"array_has_all(tags, [{', '.join(map(str, predicate.tags))}])"] if predicate.tags else []
        low, high = predicate.bounds()
        clauses += [f"value >= {low!r}"] if low is not None else []
        return " AND ".join(clauses + ([f"value < {high!r}"] if high is not None else []))

    def filtered_query(self, q: np.ndarray, k: int, predicate: Predicate) -> np.ndarray:
        where = self.where(predicate)
        search = self.search(q, k)
        if where:
            search = search.where(where, prefilter=True)
        return search.to_arrow()["id"].to_numpy().astype(np.int64)

    def insert(self, X: np.ndarray, ids: np.ndarray) -> None:
        if self.table is None:  # a runbook's first insert: the table and its index, trained on these rows
            self._create(X, ids)
            return
        log.debug("add(%d rows); optimize()", len(X))
        self.table.add(self._rows(X, ids, None))
        self.table.optimize()  # the new rows join the index (until then each query scans them in full)

    def delete(self, ids: np.ndarray) -> None:
        where = " OR ".join(f"(id >= {a} AND id < {b})" for a, b in id_runs(ids))
        log.debug("delete(%r)", where)
        self.table.delete(where)

    def replace(self, X: np.ndarray, ids: np.ndarray) -> None:
        log.debug("merge_insert('id').when_matched_update_all().execute(%d rows); optimize()", len(X))
        self.table.merge_insert("id").when_matched_update_all().execute(self._rows(X, ids, None))
        self.table.optimize()

    def client(self) -> LanceDBAdapter:
        """A second connection to the table's folder, as another user of the database would open it."""
        handle = handle_copy(self)
        handle.db = lancedb.connect(str(self.workspace.path))
        handle.table = handle.db.open_table("items")
        handle._opened_by = id(handle)
        return handle

    def close(self) -> None:
        """Close the table and the connection. lancedb 0.40's synchronous ``LanceDBConnection`` and
        ``LanceTable`` have no ``close()``; the asynchronous ``AsyncConnection`` and ``AsyncTable`` they wrap
        (``_conn``, ``_table``) do, and calling it twice is safe."""
        if self.table is not None:
            self.table._table.close()
        if getattr(self, "db", None) is not None:
            self.db._conn.close()

    def close_client(self) -> None:
        self.close()  # a handle's own table and connection; the adapter's stay open

    def __del__(self) -> None:
        # the end of a run: the connection this object opened, when it goes (a shallow copy of the adapter not
        # yet given a connection of its own, as client() makes, must not close the adapter's)
        if getattr(self, "_opened_by", None) == id(self):
            with contextlib.suppress(Exception):
                self.close()

    def index_size_bytes(self) -> int:
        return self.workspace.size_bytes()
