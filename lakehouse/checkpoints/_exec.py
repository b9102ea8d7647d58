"""Drivers that run the saver's database-agnostic operations on SQLite or PostgreSQL.

An operation is a generator that yields :class:`Stmt` objects and receives each statement's rows;
it returns its result. The saver logic is written once as such generators, and each executor
runs them synchronously or asynchronously, inside a transaction when they write.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from lakehouse.checkpoints._sql import Dialect
from lakehouse.exceptions import ConfigurationError, StoreUnavailableError
from lakehouse.settings import libpq_url, redact_url

log = logging.getLogger(__name__)

T = TypeVar("T")
Row = tuple[Any, ...]


@dataclass(frozen=True)
class Stmt:
    """One statement of an operation; ``many`` runs it once per parameter tuple."""

    sql: str
    params: Sequence[Any] = ()
    many: bool = False
    fetch: bool = False


Op = Generator[Stmt, list[Row], T]


class Executor(Protocol):
    """Runs operations against one hot store."""

    dialect: Dialect

    def run(self, op: Op[T], *, write: bool = False, batch: bool = False) -> T: ...

    async def arun(self, op: Op[T], *, write: bool = False, batch: bool = False) -> T: ...


def drive(op: Op[T], execute: Any) -> T:
    """Feed ``op`` the rows of each statement it yields, using ``execute(stmt) -> rows``."""
    try:
        stmt = next(op)
        while True:
            stmt = op.send(execute(stmt))
    except StopIteration as stop:
        return stop.value


async def adrive(op: Op[T], execute: Any) -> T:
    """Async :func:`drive`: ``execute`` is a coroutine function."""
    try:
        stmt = next(op)
        while True:
            stmt = op.send(await execute(stmt))
    except StopIteration as stop:
        return stop.value


# --------------------------------------------------------------------------------------- URLs


def sqlite_path(url: str) -> str:
    """The file path (or ``:memory:``) of a ``sqlite:///`` URL or a plain path."""
    if url in ("", ":memory:", "sqlite://", "sqlite:///:memory:"):
        return ":memory:"
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")  # sqlite:////abs/path keeps its leading /
    if "://" in url:
        raise ConfigurationError(
            f"unsupported checkpoint store URL {redact_url(url)!r}: use postgresql://..., "
            "sqlite:///path/to/file.db or a file path"
        )
    return url


# ------------------------------------------------------------------------------------ SQLite


def connect_sqlite(url: str) -> sqlite3.Connection:
    """Open the SQLite hot store (WAL, autocommit; transactions are explicit)."""
    path = sqlite_path(url)
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class SqliteExecutor:
    """SQLite: one connection guarded by a lock; async callers run it in a worker thread."""

    def __init__(self, conn: sqlite3.Connection, *, schema: str | None = None) -> None:
        self.conn = conn
        self.dialect = Dialect("sqlite", schema)
        self.lock = threading.RLock()

    def _execute(self, stmt: Stmt) -> list[Row]:
        if stmt.many:
            self.conn.executemany(stmt.sql, stmt.params)
            return []
        cur = self.conn.execute(stmt.sql, stmt.params)
        return cur.fetchall() if stmt.fetch else []

    def run(self, op: Op[T], *, write: bool = False, batch: bool = False) -> T:
        with self.lock:
            if not write:
                return drive(op, self._execute)
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                result = drive(op, self._execute)
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
            return result

    async def arun(self, op: Op[T], *, write: bool = False, batch: bool = False) -> T:
        return await asyncio.to_thread(self.run, op, write=write, batch=batch)


# -------------------------------------------------------------------------------- PostgreSQL


class PostgresExecutor:
    """PostgreSQL through psycopg 3: a connection (serialised by a lock) or a connection pool.

    Writes run in one transaction inside a pipeline, so a ``put`` costs one round trip.

    The server going away (a restart, a dropped connection) fails the operation under way with
    :class:`~lakehouse.exceptions.StoreUnavailableError` naming ``AURA_PG_URL``: its transaction
    is rolled back by the server, so nothing is half-written, and the caller retries (every
    write is an idempotent upsert). The next operation reopens the connection, up to
    :data:`RECONNECT_ATTEMPTS` times with a doubling pause, then fails the same way; a pool
    replaces broken connections itself.
    """

    def __init__(self, conn: Any, *, schema: str | None = None) -> None:
        from psycopg import Capabilities

        self.conn = conn
        self.dialect = Dialect("postgres", schema)
        self.lock = threading.Lock()
        self.pipeline = Capabilities().has_pipeline()

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        from psycopg_pool import ConnectionPool

        if isinstance(self.conn, ConnectionPool):
            with self.conn.connection() as conn:
                yield conn
        else:
            with self.lock:
                yield self._live()

    def _live(self) -> Any:
        """The connection, reopened (bounded attempts) when the server dropped it."""
        from psycopg import Connection, OperationalError

        conn = self.conn
        if not (conn.closed or conn.broken):
            return conn
        error: Exception | None = None
        for attempt in range(RECONNECT_ATTEMPTS):
            try:
                self.conn = Connection.connect(
                    conn.info.dsn, password=conn.info.password, autocommit=conn.autocommit
                )
                log.info("checkpoint store: reconnected to PostgreSQL")
                return self.conn
            except OperationalError as exc:
                error = exc
                time.sleep(RECONNECT_PAUSE_S * 2**attempt)
        raise _store_unavailable(conn.info.dsn, error, "nothing was read or written")

    def run(self, op: Op[T], *, write: bool = False, batch: bool = False) -> T:
        from psycopg import InterfaceError, OperationalError

        try:
            return self._run(op, write=write, batch=batch)
        except (OperationalError, InterfaceError) as exc:
            if not _connection_lost(exc):
                raise
            what = "the write was rolled back; retry it" if write else "retry the read"
            raise _store_unavailable(self.dialect_dsn(), exc, what) from None

    def dialect_dsn(self) -> str:
        from psycopg_pool import ConnectionPool

        if isinstance(self.conn, ConnectionPool):
            return str(self.conn.conninfo)
        return str(self.conn.info.dsn)

    def _run(self, op: Op[T], *, write: bool, batch: bool) -> T:
        with self._connection() as conn, conn.cursor() as cur:

            def execute(stmt: Stmt) -> list[Row]:
                if stmt.many:
                    cur.executemany(stmt.sql, stmt.params)
                    return []
                cur.execute(stmt.sql, stmt.params)
                return cur.fetchall() if stmt.fetch else []

            if not write:
                return drive(op, execute)
            if self.pipeline and batch:
                # No Sync until the pipeline ends: the batch is one implicit transaction.
                with conn.pipeline():
                    return drive(op, execute)
            with conn.transaction():
                return drive(op, execute)

    async def arun(self, op: Op[T], *, write: bool = False, batch: bool = False) -> T:
        return await asyncio.to_thread(self.run, op, write=write, batch=batch)


RECONNECT_ATTEMPTS = 3
RECONNECT_PAUSE_S = 0.5


def _connection_lost(exc: Exception) -> bool:
    """Whether a psycopg error means the server or the connection went away."""
    from psycopg import InterfaceError, OperationalError

    if isinstance(exc, InterfaceError):
        return "closed" in str(exc)
    state = getattr(exc, "sqlstate", None) or ""
    # No state (the socket closed), connection exceptions (08), operator intervention (57P).
    return isinstance(exc, OperationalError) and (not state or state.startswith(("08", "57P")))


def _store_unavailable(dsn: str, exc: Exception | None, what: str) -> StoreUnavailableError:
    detail = f"{type(exc).__name__}: {str(exc).strip()[:200]}" if exc else "no answer"
    return StoreUnavailableError(
        f"the checkpoint store (PostgreSQL, {redact_url(dsn)}) does not answer ({detail}); "
        f"{what}. Check AURA_PG_URL and that PostgreSQL is running."
    )


class AsyncPostgresExecutor:
    """PostgreSQL through psycopg's async connection (or async pool)."""

    def __init__(self, conn: Any, *, schema: str | None = None) -> None:
        from psycopg import Capabilities

        self.conn = conn
        self.dialect = Dialect("postgres", schema)
        self.lock = asyncio.Lock()
        self.pipeline = Capabilities().has_pipeline()
        self.loop = asyncio.get_running_loop()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        from psycopg_pool import AsyncConnectionPool

        if isinstance(self.conn, AsyncConnectionPool):
            async with self.conn.connection() as conn:
                yield conn
        else:
            async with self.lock:
                yield self.conn

    async def arun(self, op: Op[T], *, write: bool = False, batch: bool = False) -> T:
        async with self._connection() as conn, conn.cursor() as cur:

            async def execute(stmt: Stmt) -> list[Row]:
                if stmt.many:
                    await cur.executemany(stmt.sql, stmt.params)
                    return []
                await cur.execute(stmt.sql, stmt.params)
                return await cur.fetchall() if stmt.fetch else []

            if not write:
                return await adrive(op, execute)
            if self.pipeline and batch:
                # No Sync until the pipeline ends: the batch is one implicit transaction.
                async with conn.pipeline():
                    return await adrive(op, execute)
            async with conn.transaction():
                return await adrive(op, execute)

    def run(self, op: Op[T], *, write: bool = False, batch: bool = False) -> T:
        """Run from another thread on the loop that owns the connection (LangGraph's rule)."""
        try:
            if asyncio.get_running_loop() is self.loop:
                raise asyncio.InvalidStateError(
                    "Synchronous calls to AsyncAuraCheckpointSaver are only allowed from a "
                    "different thread. From the main thread, use the async interface: "
                    "`await saver.aget_tuple(...)` or `await graph.ainvoke(...)`."
                )
        except RuntimeError:
            pass
        return asyncio.run_coroutine_threadsafe(
            self.arun(op, write=write, batch=batch), self.loop
        ).result()


CONNECT_TIMEOUT_S = 5
"""A checkpoint database that does not answer within this many seconds is unreachable."""


def pg_conninfo(url: str) -> str:
    """A libpq URL from a ``postgresql://`` or SQLAlchemy-style URL, with a connect timeout.

    ``connect_timeout`` is added unless the URL sets one, so a server that accepts TCP but
    never answers fails within :data:`CONNECT_TIMEOUT_S` seconds instead of hanging.
    """
    conninfo = libpq_url(url).replace("postgres://", "postgresql://", 1)
    if "connect_timeout" in conninfo:
        return conninfo
    separator = "&" if "?" in conninfo else "?"
    if "://" not in conninfo:  # keyword form: host=... dbname=...
        return f"{conninfo} connect_timeout={CONNECT_TIMEOUT_S}"
    return f"{conninfo}{separator}connect_timeout={CONNECT_TIMEOUT_S}"
