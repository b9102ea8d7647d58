"""LangGraph checkpointers with a SQL hot store (PostgreSQL or SQLite) and an Iceberg archive.

Both savers share every line of logic: each operation is written once as a generator of SQL
statements (see :mod:`lakehouse.checkpoints._exec`) and an executor runs it on SQLite or
PostgreSQL, synchronously or asynchronously. Channel values are stored once per (thread,
namespace, channel, version), so a checkpoint never repeats a value its parent already holds.

Example:
    >>> with AuraCheckpointSaver.from_conn_string("sqlite:///state.db") as saver:
    ...     saver.setup()
    ...     graph = builder.compile(checkpointer=saver)
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from lakehouse.checkpoints._exec import (
    AsyncPostgresExecutor,
    Executor,
    Op,
    PostgresExecutor,
    Row,
    SqliteExecutor,
    Stmt,
    connect_sqlite,
    is_postgres_url,
    pg_conninfo,
)
from lakehouse.exceptions import AuraError
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from lakehouse.checkpoints.archive import CheckpointArchive

PRUNE_STRATEGIES = ("keep_latest", "delete")

# Strings longer than this go to the blobs table, so an archive stores them once per version.
_INLINE_STR_MAX = 256


def _is_inline(value: Any) -> bool:
    """Small primitives stay inside the checkpoint row; everything else becomes a blob."""
    if value is None or isinstance(value, (bool, int, float)):
        return True
    return isinstance(value, str) and len(value) <= _INLINE_STR_MAX


_Tuples = list[CheckpointTuple]
_Strs = list[str]
_Rows = list[Row]


def _config(thread_id: str, checkpoint_ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint_id,
        }
    }


class _AuraSaverBase(BaseCheckpointSaver[str]):
    """Operations shared by :class:`AuraCheckpointSaver` and :class:`AsyncAuraCheckpointSaver`."""

    _exec: Executor

    def __init__(
        self,
        executor: Executor,
        *,
        serde: SerializerProtocol | None = None,
        archive: CheckpointArchive | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self._exec = executor
        self.archive = archive

    @property
    def dialect_name(self) -> str:
        """``"postgres"`` or ``"sqlite"``."""
        return self._exec.dialect.name

    # ------------------------------------------------------------------ statements (sans I/O)

    def _sql(self, key: str) -> str:
        return self._exec.dialect.sql(key)

    def _op_setup(self) -> Op[None]:
        d = self._exec.dialect
        statements = d.migrations()
        for sql in statements[: -len(_migrations())]:
            yield Stmt(sql)
        rows = yield Stmt(d.render("SELECT MAX(v) FROM {migrations}"), fetch=True)
        done = rows[0][0] if rows and rows[0][0] is not None else -1
        for version, sql in enumerate(statements[-len(_migrations()) :]):
            if version > done:
                yield Stmt(sql)
                yield Stmt(d.render("INSERT INTO {migrations} (v) VALUES (?)"), (version,))

    def _op_get(self, config: RunnableConfig) -> Op[_Tuples]:
        conf = config["configurable"]
        thread_id = conf["thread_id"]
        checkpoint_ns = conf.get("checkpoint_ns", "")
        if checkpoint_id := get_checkpoint_id(config):
            stmt = Stmt(
                self._sql("get_by_id"), (thread_id, checkpoint_ns, checkpoint_id), fetch=True
            )
        else:
            stmt = Stmt(self._sql("get_latest"), (thread_id, checkpoint_ns), fetch=True)
        rows = yield stmt
        return self._decode(rows)

    def _op_list(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> Op[_Tuples]:
        where, params = self._where(config, filter, before)
        rows = yield Stmt(self._exec.dialect.select_tuples(where, limit), params, fetch=True)
        return self._decode(rows)

    def _where(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
    ) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        if config:
            conf = config["configurable"]
            where.append("thread_id = ?")
            params.append(conf["thread_id"])
            if (checkpoint_ns := conf.get("checkpoint_ns")) is not None:
                where.append("checkpoint_ns = ?")
                params.append(checkpoint_ns)
            if checkpoint_id := get_checkpoint_id(config):
                where.append("checkpoint_id = ?")
                params.append(checkpoint_id)
        if filter:
            clauses, values = self._exec.dialect.metadata_filter(filter)
            where += clauses
            params += values
        if before is not None and (before_id := get_checkpoint_id(before)):
            where.append("checkpoint_id < ?")
            params.append(before_id)
        return where, params

    def _op_put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> Op[RunnableConfig]:
        conf = config["configurable"]
        thread_id = conf["thread_id"]
        checkpoint_ns = conf.get("checkpoint_ns", "")
        parent_id = conf.get("checkpoint_id")
        inline: dict[str, Any] = {}
        blob_values: dict[str, Any] = {}
        for channel, value in checkpoint["channel_values"].items():
            (inline if _is_inline(value) else blob_values)[channel] = value
        versions = checkpoint["channel_versions"]
        blob_refs = {ch: str(versions[ch]) for ch in blob_values if ch in versions}
        blob_rows = [
            (thread_id, checkpoint_ns, ch, str(ver), *self.serde.dumps_typed(blob_values[ch]))
            for ch, ver in new_versions.items()
            if ch in blob_values
        ]
        stored = {**checkpoint, "channel_values": inline}
        type_, data = self.serde.dumps_typed(stored)
        md = get_serializable_checkpoint_metadata(config, metadata)
        if blob_rows:
            yield Stmt(self._sql("upsert_blob"), blob_rows, many=True)
        yield Stmt(
            self._sql("upsert_checkpoint"),
            (
                thread_id,
                checkpoint_ns,
                checkpoint["id"],
                parent_id,
                _run_id(md),
                checkpoint["ts"],
                type_,
                data,
                json.dumps(md, ensure_ascii=False, default=str),
                json.dumps(blob_refs),
            ),
        )
        return _config(thread_id, checkpoint_ns, checkpoint["id"])

    def _op_put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> Op[None]:
        conf = config["configurable"]
        key = "upsert_write" if all(w[0] in WRITES_IDX_MAP for w in writes) else "insert_write"
        rows = [
            (
                conf["thread_id"],
                conf.get("checkpoint_ns", ""),
                conf["checkpoint_id"],
                task_id,
                task_path,
                WRITES_IDX_MAP.get(channel, idx),
                channel,
                *self.serde.dumps_typed(value),
            )
            for idx, (channel, value) in enumerate(writes)
        ]
        if rows:
            yield Stmt(self._sql(key), rows, many=True)

    def _op_delete_threads(self, thread_ids: Sequence[str]) -> Op[None]:
        params = [(t,) for t in thread_ids]
        if not params:
            return
        for key in ("delete_thread_writes", "delete_thread_checkpoints", "delete_thread_blobs"):
            yield Stmt(self._sql(key), params, many=True)

    def _op_delete_for_runs(self, run_ids: Sequence[str]) -> Op[None]:
        threads: set[str] = set()
        for run_id in run_ids:
            rows = yield Stmt(self._sql("threads_of_run"), (run_id,), fetch=True)
            threads.update(r[0] for r in rows)
        if not threads:
            return
        params = [(r,) for r in run_ids]
        yield Stmt(self._sql("delete_run_writes"), params, many=True)
        yield Stmt(self._sql("delete_run_checkpoints"), params, many=True)
        yield Stmt(self._sql("gc_blobs"), [(t,) for t in sorted(threads)], many=True)

    def _op_copy_thread(self, source: str, target: str) -> Op[None]:
        for key in ("copy_blobs", "copy_checkpoints", "copy_writes"):
            yield Stmt(self._sql(key), (target, source))

    def _op_prune(self, thread_ids: Sequence[str], strategy: str) -> Op[None]:
        if strategy not in PRUNE_STRATEGIES:
            raise ValueError(
                f"unknown prune strategy {strategy!r}; use one of {', '.join(PRUNE_STRATEGIES)}"
            )
        if strategy == "delete":
            yield from self._op_delete_threads(thread_ids)
            return
        for thread_id in thread_ids:
            if (yield Stmt(self._sql("delta_thread"), (thread_id,), fetch=True)):
                raise NotImplementedError(
                    f"keep_latest can't prune thread {thread_id!r}: it uses a DeltaChannel, whose "
                    "state needs the ancestors keep_latest would delete"
                )
        for thread_id in thread_ids:
            for key in ("prune_writes", "prune_checkpoints", "orphan_parents", "gc_blobs"):
                yield Stmt(self._sql(key), (thread_id,))

    # ------------------------------------------------------------------------- decoding

    def _decode_archived(self, rows: _Rows) -> _Tuples:
        """:meth:`_decode` for archive rows: refuses pickled values instead of loading them."""
        for row in rows:
            if row[8] == "pickle":
                raise AuraError(
                    f"archived checkpoint {row[3]} of thread {row[1]!r} holds a pickled value; "
                    "AURA never unpickles archive data. Re-serialize it with a JSON/msgpack serde."
                )
        return self._decode(rows)

    def _decode(self, rows: _Rows) -> _Tuples:
        """Assemble checkpoint tuples (newest first) from the rows of one tuple read."""
        heads: dict[tuple[str, str, str], Row] = {}
        blobs: dict[tuple[str, str, str], dict[str, Any]] = {}
        writes: dict[tuple[str, str, str], _Rows] = {}
        for row in rows:
            kind, key = row[0], (row[1], row[2], row[3])
            if kind == "c":
                heads[key] = row
            elif kind == "b":
                if row[8] != "empty":
                    blobs.setdefault(key, {})[row[4]] = self.serde.loads_typed(
                        (row[8], bytes(row[9]))
                    )
            else:
                writes.setdefault(key, []).append(row)
        out = []
        for key in sorted(heads, key=lambda k: k[2], reverse=True):
            head = heads[key]
            checkpoint = self.serde.loads_typed((head[8], bytes(head[9])))
            checkpoint["channel_values"] = {**checkpoint["channel_values"], **blobs.get(key, {})}
            pending = sorted(writes.get(key, []), key=lambda w: writes_sort_key(w[6], w[4], w[7]))
            out.append(
                CheckpointTuple(
                    config=_config(*key),
                    checkpoint=checkpoint,
                    metadata=json.loads(head[5]),
                    parent_config=_config(key[0], key[1], head[4]) if head[4] else None,
                    pending_writes=[
                        (w[4], w[5], self.serde.loads_typed((w[8], bytes(w[9])))) for w in pending
                    ],
                )
            )
        return out

    # ------------------------------------------------------------------ archive read-through

    def _merge_archive(
        self,
        hot: _Tuples,
        cold: _Tuples,
        limit: int | None,
    ) -> _Tuples:
        seen = {_key(t) for t in hot}
        merged = hot + [t for t in cold if _key(t) not in seen]
        merged.sort(key=lambda t: t.config["configurable"]["checkpoint_id"], reverse=True)
        return merged if limit is None else merged[:limit]

    # ------------------------------------------------------------------------------ sync API

    def setup(self) -> None:
        """Create the hot-store tables (idempotent; run once before first use)."""
        self._exec.run(self._op_setup(), write=True)

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint named by ``config`` (latest when it has no id), hot or archived.

        Only a lookup by checkpoint id reads through to the archive: retention never trims a
        namespace's newest checkpoint, so "latest" is always hot (a new thread's first lookup
        costs no archive scan). A thread whose hot rows were lost comes back with ``restore``.
        """
        found = self._exec.run(self._op_get(config))
        if found:
            return found[0]
        if self.archive is not None and get_checkpoint_id(config):
            return self.archive.get_tuple(config, self._decode_archived)
        return None

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints matching the arguments, newest first (archived ones included)."""
        hot = self._exec.run(self._op_list(config, filter, before, limit))
        if self.archive is not None:
            cold = self.archive.list_tuples(
                config, self._decode_archived, filter=filter, before=before, limit=limit
            )
            hot = self._merge_archive(hot, cold, limit)
        yield from hot

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint; only channels in ``new_versions`` get new blobs."""
        return self._exec.run(
            self._op_put(config, checkpoint, metadata, new_versions), write=True, batch=True
        )

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store the pending writes of a task for the checkpoint in ``config``."""
        self._exec.run(
            self._op_put_writes(config, writes, task_id, task_path), write=True, batch=True
        )

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, blob and write of a thread (archived copies too)."""
        self._exec.run(self._op_delete_threads([thread_id]), write=True)
        if self.archive is not None:
            self.archive.delete(thread_ids=[thread_id])

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) that the given runs created."""
        self._exec.run(self._op_delete_for_runs(list(run_ids)), write=True)
        if self.archive is not None and run_ids:
            self.archive.delete(run_ids=list(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy a thread's whole history (every namespace, blob and write) to another thread."""
        self._exec.run(self._op_copy_thread(source_thread_id, target_thread_id), write=True)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Keep only the latest checkpoint per namespace (``keep_latest``) or drop threads."""
        self._exec.run(self._op_prune(list(thread_ids), strategy), write=True)
        if self.archive is not None:
            if strategy == "delete":
                self.archive.delete(thread_ids=list(thread_ids))
            else:
                keep = [_key(t) for t in self._heads(thread_ids)]
                self.archive.delete(thread_ids=list(thread_ids), keep=keep)

    def _heads(self, thread_ids: Sequence[str]) -> _Tuples:
        return [
            t
            for tid in thread_ids
            for t in self._exec.run(
                self._op_list({"configurable": {"thread_id": tid}}, None, None, None)
            )
        ]

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Versions sort as strings: a zero-padded counter plus a random tie-breaker."""
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(str(current).split(".")[0])
        return f"{current_v + 1:032}.{random.random():016}"

    # ----------------------------------------------------------------------------- async API

    async def asetup(self) -> None:
        """Async :meth:`setup`."""
        await self._exec.arun(self._op_setup(), write=True)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        found = await self._exec.arun(self._op_get(config))
        if found:
            return found[0]
        if self.archive is not None and get_checkpoint_id(config):
            return await asyncio.to_thread(self.archive.get_tuple, config, self._decode_archived)
        return None

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        hot = await self._exec.arun(self._op_list(config, filter, before, limit))
        if self.archive is not None:
            cold = await asyncio.to_thread(
                self.archive.list_tuples,
                config,
                self._decode_archived,
                filter=filter,
                before=before,
                limit=limit,
            )
            hot = self._merge_archive(hot, cold, limit)
        for item in hot:
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await self._exec.arun(
            self._op_put(config, checkpoint, metadata, new_versions), write=True, batch=True
        )

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await self._exec.arun(
            self._op_put_writes(config, writes, task_id, task_path), write=True, batch=True
        )

    async def adelete_thread(self, thread_id: str) -> None:
        await self._exec.arun(self._op_delete_threads([thread_id]), write=True)
        if self.archive is not None:
            await asyncio.to_thread(self.archive.delete, thread_ids=[thread_id])

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await self._exec.arun(self._op_delete_for_runs(list(run_ids)), write=True)
        if self.archive is not None and run_ids:
            await asyncio.to_thread(self.archive.delete, run_ids=list(run_ids))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self._exec.arun(self._op_copy_thread(source_thread_id, target_thread_id), write=True)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await self._exec.arun(self._op_prune(list(thread_ids), strategy), write=True)
        if self.archive is not None:
            await asyncio.to_thread(self._prune_archive, list(thread_ids), strategy)

    def _prune_archive(self, thread_ids: _Strs, strategy: str) -> None:
        assert self.archive is not None
        if strategy == "delete":
            self.archive.delete(thread_ids=thread_ids)
        else:
            self.archive.delete(
                thread_ids=thread_ids, keep=[_key(t) for t in self._heads(thread_ids)]
            )


def _migrations() -> tuple[str, ...]:
    from lakehouse.checkpoints._sql import MIGRATIONS

    return MIGRATIONS


def _run_id(metadata: CheckpointMetadata) -> str | None:
    run_id = metadata.get("run_id")
    return str(run_id) if run_id is not None else None


def _key(t: CheckpointTuple) -> tuple[str, str, str]:
    c = t.config["configurable"]
    return (c["thread_id"], c.get("checkpoint_ns", ""), c["checkpoint_id"])


def _open_error(url: str, exc: Exception) -> AuraError:
    from lakehouse.settings import redact_url

    return AuraError(
        f"cannot open the checkpoint store at {redact_url(url)}: {type(exc).__name__}: {exc}. "
        "Check AURA_PG_URL (or the URL you passed) and that the database is reachable."
    )


class AuraCheckpointSaver(_AuraSaverBase):
    """Synchronous LangGraph checkpointer on PostgreSQL or SQLite, with optional archive.

    The async methods also work (they run the sync code in a worker thread), so one saver can
    serve ``graph.invoke`` and ``graph.ainvoke``.
    """

    def __init__(
        self,
        conn: Any,
        *,
        schema: str | None = None,
        serde: SerializerProtocol | None = None,
        archive: CheckpointArchive | None = None,
    ) -> None:
        """Wrap an open ``sqlite3.Connection``, psycopg ``Connection`` or ``ConnectionPool``."""
        import sqlite3

        if isinstance(conn, sqlite3.Connection):
            executor: Executor = SqliteExecutor(conn, schema=schema)
        else:
            executor = PostgresExecutor(conn, schema=schema)
        super().__init__(executor, serde=serde, archive=archive)

    @classmethod
    @contextmanager
    def from_conn_string(
        cls,
        conn_string: str | None = None,
        *,
        schema: str | None = None,
        serde: SerializerProtocol | None = None,
        archive: CheckpointArchive | None = None,
    ) -> Iterator[AuraCheckpointSaver]:
        """Open a saver on ``postgresql://...``, ``sqlite:///path`` or a file path.

        Without ``conn_string`` the hot store comes from :class:`Settings` (``AURA_PG_URL``,
        else SQLite in ``AURA_HOME``).
        """
        url = conn_string or Settings.from_env().checkpoint_url
        if is_postgres_url(url):
            from psycopg import Connection

            try:
                conn = Connection.connect(pg_conninfo(url), autocommit=True)
            except Exception as exc:
                raise _open_error(url, exc) from None
            with conn:
                yield cls(conn, schema=schema, serde=serde, archive=archive)
        else:
            sconn = connect_sqlite(url)
            try:
                yield cls(sconn, schema=schema, serde=serde, archive=archive)
            finally:
                sconn.close()

    @classmethod
    @contextmanager
    def from_settings(
        cls, settings: Settings | None = None, *, archive: bool = True
    ) -> Iterator[AuraCheckpointSaver]:
        """The configured hot store (set up), reading through to the configured archive."""
        settings = settings or Settings.from_env()
        cold = _archive_for(settings) if archive else None
        with cls.from_conn_string(settings.checkpoint_url, archive=cold) as saver:
            saver.setup()
            yield saver


def _archive_for(settings: Settings) -> CheckpointArchive:
    from lakehouse.checkpoints.archive import CheckpointArchive
    from lakehouse.core import Lakehouse

    return CheckpointArchive(Lakehouse(settings))


class AsyncAuraCheckpointSaver(_AuraSaverBase):
    """Asynchronous LangGraph checkpointer on PostgreSQL (psycopg async) or SQLite.

    Its sync methods may be called from threads other than the event loop's, as with
    LangGraph's ``AsyncPostgresSaver``.
    """

    def __init__(
        self,
        conn: Any,
        *,
        schema: str | None = None,
        serde: SerializerProtocol | None = None,
        archive: CheckpointArchive | None = None,
    ) -> None:
        """Wrap an open ``sqlite3.Connection``, psycopg ``AsyncConnection`` or async pool."""
        import sqlite3

        if isinstance(conn, sqlite3.Connection):
            executor: Executor = SqliteExecutor(conn, schema=schema)
        else:
            executor = AsyncPostgresExecutor(conn, schema=schema)
        super().__init__(executor, serde=serde, archive=archive)

    @classmethod
    @asynccontextmanager
    async def from_conn_string(
        cls,
        conn_string: str | None = None,
        *,
        schema: str | None = None,
        serde: SerializerProtocol | None = None,
        archive: CheckpointArchive | None = None,
    ) -> AsyncIterator[AsyncAuraCheckpointSaver]:
        """Async twin of :meth:`AuraCheckpointSaver.from_conn_string`."""
        url = conn_string or Settings.from_env().checkpoint_url
        if is_postgres_url(url):
            from psycopg import AsyncConnection

            try:
                conn = await AsyncConnection.connect(pg_conninfo(url), autocommit=True)
            except Exception as exc:
                raise _open_error(url, exc) from None
            async with conn:
                yield cls(conn, schema=schema, serde=serde, archive=archive)
        else:
            sconn = await asyncio.to_thread(connect_sqlite, url)
            try:
                yield cls(sconn, schema=schema, serde=serde, archive=archive)
            finally:
                sconn.close()

    @classmethod
    @asynccontextmanager
    async def from_settings(
        cls, settings: Settings | None = None, *, archive: bool = True
    ) -> AsyncIterator[AsyncAuraCheckpointSaver]:
        """The configured hot store (set up), reading through to the configured archive."""
        settings = settings or Settings.from_env()
        cold = _archive_for(settings) if archive else None
        async with cls.from_conn_string(settings.checkpoint_url, archive=cold) as saver:
            await saver.setup()
            yield saver

    async def setup(self) -> None:  # type: ignore[override]
        """Create the hot-store tables (idempotent). Async, as in LangGraph's async savers."""
        await self.asetup()
