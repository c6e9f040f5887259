"""Shared by the Milvus Lite adapters: ``MilvusClient`` on a local ``.db`` file (Milvus Lite serves it
with an in-process gRPC server on a free 127.0.0.1 port), an index made with ``create_index``, searched
with ``client.search``."""

from __future__ import annotations

import atexit
import logging
import time
from collections.abc import Iterable

import numpy as np
from milvus_lite.server_manager import server_manager_instance
from pymilvus import DataType, MilvusClient

from annbench.backends.adapter import Adapter, handle_copy
from annbench.backends.workspace import Workspace
from annbench.quality.predicates import Attributes, Predicate

log = logging.getLogger("annbench.backends.milvus")

#: Rows per insert call.
BATCH_ROWS = 5000
#: The client's gRPC options: no keepalive pings. pymilvus pings every 10 s during a call, Milvus Lite's server keeps
#: gRPC's default policy (a ping every 5 minutes at most without data), so a call that outlasts a few pings (an index
#: build of 133 s on Fashion-MNIST under load) is cut by "GOAWAY too_many_pings" and pymilvus sends it again: the
#: second create_index failed with "index already exists". The server is in this process, on 127.0.0.1.
GRPC_OPTIONS = {"grpc.keepalive_time_ms": 2**31 - 1}


def tag_text(tags: Iterable[int]) -> str:
    """A point's tags as its ``tags`` field holds them: ``,3,17,`` (a comma on both sides of every tag, so that
    ``like "%,3,%"`` matches tag 3 and never 13 or 31; ``,`` for no tag)."""
    return "," + "".join(f"{t}," for t in tags)


def expression(predicate: Predicate) -> str:
    """The predicate as a Milvus filter expression: ``tags like "%,3,%" and tags like "%,7,%" and value >= 0.1
    and value < 0.2`` (empty for a predicate every point matches). Not ``array_contains_all`` on an ARRAY field:
    Milvus Lite 3.2 evaluates that in Python row by row after converting the whole segment, vectors included,
    to Python objects, on every query (see the README); ``like`` and comparisons run in pyarrow."""
    clauses = [f'tags like "%,{t},%"' for t in predicate.tags]
    for op, value in zip((">=", "<"), predicate.bounds()):
        if value is not None:
            clauses.append(f"value {op} {value!r}")
    return " and ".join(clauses)


class MilvusAdapter(Adapter):
    """Base of the Milvus Lite adapters: subclasses give the index type, its build and search parameters."""

    native_metrics = {"euclidean": "L2", "angular": "COSINE", "ip": "IP"}
    libraries = ("pymilvus", "milvus-lite")
    index_type = ""
    # Filters: a VARCHAR field of each point's tags as text (``,3,17,``) and a DOUBLE field of values (INVERTED
    # index) in the collection's schema, loaded with the vectors; a predicate is the search's filter expression.
    filters = ("tags", "range")
    attributes_first = True
    # Changes: insert and flush, delete(ids), upsert (replace).
    changes = ("insert", "delete", "replace")
    fork_clients = False
    fork_clients_reason = ("Milvus Lite's server runs in threads of the process that built the index, and gRPC "
                           "skips its fork handlers while those threads use it (fork is unsupported there)")
    _attrs: Attributes | None = None
    client_ = None

    def build_params(self) -> dict[str, int]:
        raise NotImplementedError

    def fit_attributes(self, attrs: Attributes) -> None:
        self._attrs = attrs  # fields of each row, inserted with its vector (attributes_first)

    def fit(self, X: np.ndarray) -> None:
        self._create(X, np.arange(len(X), dtype=np.int64))

    def _schema(self, dimension: int):
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
        if self._attrs is not None:
            widest = max(map(len, self._tag_texts))
            schema.add_field("tags", DataType.VARCHAR, max_length=widest)
            if self._attrs.values is not None:
                schema.add_field("value", DataType.DOUBLE)
        return schema

    def _rows(self, X: np.ndarray, ids: np.ndarray, with_attrs: bool) -> list[dict]:
        rows = [{"id": i, "vector": row} for i, row in zip(ids.tolist(), X)]
        if with_attrs:
            attrs = self._attrs
            assert attrs is not None
            for row, i in zip(rows, ids.tolist()):
                row["tags"] = self._tag_texts[i]
                if attrs.values is not None:
                    row["value"] = float(attrs.values[i])
        return rows

    def _insert(self, X: np.ndarray, ids: np.ndarray, call: str = "insert") -> None:
        """Rows in batches, then ``flush``: until flushed, rows sit in Milvus Lite's memtable, which every
        query scans in full (no index covers it); a flush writes them as a segment the index is built on."""
        with_attrs = self._attrs is not None and call == "insert" and len(ids) == self._attrs.n
        log.debug("%s('items', rows) in batches of %d; flush('items')", call, BATCH_ROWS)
        write = getattr(self.client_, call)
        for i in range(0, len(X), BATCH_ROWS):
            write("items", self._rows(X[i:i + BATCH_ROWS], ids[i:i + BATCH_ROWS], with_attrs))
        self.client_.flush("items")

    def _create(self, X: np.ndarray, ids: np.ndarray) -> None:
        self.workspace = Workspace("milvus")
        start = time.perf_counter()
        self.path = str(self.workspace.path / "items.db")
        self.client_ = MilvusClient(self.path, grpc_options=GRPC_OPTIONS)
        # at exit the server flushes its files: stop it before the workspace's folder is removed (LIFO)
        atexit.register(server_manager_instance.release_server, self.path)
        if self._attrs is not None:
            indptr, indices = self._attrs.tags.indptr, self._attrs.tags.indices.tolist()
            self._tag_texts = [tag_text(indices[a:b]) for a, b in zip(indptr[:-1], indptr[1:])]
        schema = self._schema(X.shape[1])
        log.debug("create_collection('items', schema=%s)", [f"{f.name} {f.dtype.name}" for f in schema.fields])
        self.client_.create_collection("items", schema=schema)
        self._insert(X, ids)
        self.load_s = time.perf_counter() - start
        start = time.perf_counter()
        index = self.client_.prepare_index_params()
        # pymilvus 3 sends each build parameter as a key-value pair of its own, which Milvus Lite 3.2 ignores: it
        # reads a single 'params' pair (JSON), as older clients sent, and would otherwise build with its defaults
        build = self.build_params()
        index.add_index(field_name="vector", index_type=self.index_type, metric_type=self.metric_name,
                        params={**build, "params": build})
        log.debug("create_index('items', %s %s)", self.index_type, self.build_params())
        if self._attrs is not None and self._attrs.values is not None:
            index.add_index(field_name="value", index_type="INVERTED")
            log.debug("create_index('items', value INVERTED)")
        self.client_.create_index("items", index)
        self.client_.load_collection("items")
        self.index_s = time.perf_counter() - start

    def build_stats(self) -> dict[str, float]:
        """``load_s`` (client, collection, inserts, flush) and ``index_s`` (create_index, load_collection)."""
        return {"load_s": self.load_s, "index_s": self.index_s}

    def search_params(self, params: dict[str, int]) -> None:
        self.search = {"metric_type": self.metric_name, "params": params}
        log.debug("search('items', data=[q], limit=k, search_params=%r) (each query)", self.search)
        if self._attrs is not None:
            log.debug("search('items', data=[q], limit=k, filter='tags like \"%%,..,%%\" and .. and value >= .. and "
                      "value < ..', search_params=%r) (each filtered query)", self.search)

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        hits = self.client_.search("items", data=[q], limit=k, search_params=self.search)[0]
        return np.array([h["id"] for h in hits], dtype=np.int64)

    def batch_query(self, Q: np.ndarray, k: int) -> np.ndarray:
        """One ``search`` call with every query: Milvus Lite's per-call work over all rows (see the README) is
        then done once for the batch."""
        out = np.full((len(Q), k), -1, dtype=np.int64)
        for i, hits in enumerate(self.client_.search("items", data=list(Q), limit=k, search_params=self.search)):
            out[i, :len(hits)] = [h["id"] for h in hits]
        return out

    def filtered_query(self, q: np.ndarray, k: int, predicate: Predicate) -> np.ndarray:
        hits = self.client_.search("items", data=[q], limit=k, filter=expression(predicate),
                                   search_params=self.search)[0]
        return np.array([h["id"] for h in hits], dtype=np.int64)

    def insert(self, X: np.ndarray, ids: np.ndarray) -> None:
        if self.client_ is None:  # a runbook's first insert: the collection and its index
            self._create(X, ids)
        else:  # indexed by Milvus Lite's background worker once flushed; scanned in full until then
            self._insert(X, ids)

    def delete(self, ids: np.ndarray) -> None:
        log.debug("delete('items', ids=[%d ids])", len(ids))
        self.client_.delete("items", ids=ids.tolist())

    def replace(self, X: np.ndarray, ids: np.ndarray) -> None:
        self._insert(X, ids, "upsert")

    def client(self) -> MilvusAdapter:
        """A ``MilvusClient`` of its own on the same file: its own gRPC connection (``dedicated=True``) to the
        Milvus Lite server of that file."""
        handle = handle_copy(self)
        handle.client_ = MilvusClient(self.path, dedicated=True, grpc_options=GRPC_OPTIONS)
        return handle

    def close_client(self) -> None:
        self.client_.close()  # a handle's own connection; the server stays the adapter's

    def index_size_bytes(self) -> int:
        return self.workspace.size_bytes()
