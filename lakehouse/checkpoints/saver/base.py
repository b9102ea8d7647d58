"""What both checkpointers share: every operation, decoding, and the archive read-through.

Both savers share every line of logic: each operation is written once as a generator of SQL
statements (see :mod:`lakehouse.checkpoints._exec`) and an executor runs it on SQLite or
PostgreSQL, synchronously or asynchronously (so both savers serve the sync and the async API;
:mod:`.sync` and :mod:`.aio` only open their connections). Channel values are stored once per
(thread, namespace, channel, version), so a checkpoint never repeats a value its parent holds.

With an archive attached, ``list()`` reads through to it only for threads the hot store marks
as archived (the archive marks them before its commit), so a thread with nothing archived never
touches Iceberg.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, ClassVar

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

from lakehouse.checkpoints._exec import Executor, Op, Row, SqliteExecutor, Stmt
from lakehouse.checkpoints._sql import MIGRATIONS
from lakehouse.checkpoints.records import ColdCheckpoints, Records
from lakehouse.checkpoints.saver.hot import SqlCheckpointStore
from lakehouse.exceptions import AuraError

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
    _postgres_executor: ClassVar[Callable[..., Executor]]
    """How a subclass runs statements on a psycopg connection (sync or async)."""

    def __init__(
        self,
        conn: Any,
        *,
        schema: str | None = None,
        serde: SerializerProtocol | None = None,
        archive: ColdCheckpoints | None = None,
    ) -> None:
        """Wrap an open ``sqlite3.Connection`` or a psycopg connection or pool."""
        import sqlite3

        super().__init__(serde=serde)
        if isinstance(conn, sqlite3.Connection):
            executor: Executor = SqliteExecutor(conn, schema=schema)
        else:
            executor = self._postgres_executor(conn, schema=schema)
        self._exec = executor
        self.archive = archive
        self._hot = SqlCheckpointStore(executor)

    @property
    def hot(self) -> SqlCheckpointStore:
        """The hot store as rows: the interface the archive and tiering use."""
        return self._hot

    @property
    def dialect_name(self) -> str:
        """``"postgres"`` or ``"sqlite"``."""
        return self._exec.dialect.name

    # ------------------------------------------------------------------ statements (sans I/O)

    def _sql(self, key: str) -> str:
        return self._exec.dialect.sql(key)

    def _op_setup(self) -> Op[None]:
        d = self._exec.dialect
        if d.name == "postgres":
            # One setup at a time per schema: concurrent first callers (eight workers starting
            # on a fresh database) would otherwise race CREATE TABLE and the migration inserts
            # and fail with UniqueViolation. The lock is released when the transaction ends.
            yield Stmt(
                "SELECT pg_advisory_xact_lock(hashtext(%s))",
                (f"aura_checkpoint_setup:{d.schema or ''}",),
                fetch=True,
            )
        statements = d.migrations()
        for sql in statements[: -len(MIGRATIONS)]:
            yield Stmt(sql)
        rows = yield Stmt(d.render("SELECT MAX(v) FROM {migrations}"), fetch=True)
        done = rows[0][0] if rows and rows[0][0] is not None else -1
        for version, sql in enumerate(statements[-len(MIGRATIONS) :]):
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
        *,
        archived: bool = False,
    ) -> Op[tuple[_Tuples, bool]]:
        """Hot tuples, and (with ``archived``) whether the archive may hold more of them."""
        where, params = self._where(config, filter, before)
        rows = yield Stmt(self._exec.dialect.select_tuples(where, limit), params, fetch=True)
        marked = False
        if archived:
            if config:
                thread_id = config["configurable"]["thread_id"]
                marked = bool((yield Stmt(self._sql("archived_thread"), (thread_id,), fetch=True)))
            else:
                marked = bool((yield Stmt(self._sql("archived_any"), fetch=True)))
        return self._decode(rows), marked

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
        for key in (
            "delete_thread_writes",
            "delete_thread_checkpoints",
            "delete_thread_blobs",
            "delete_thread_archived",
        ):
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

    def _decode_archived(self, records: Records) -> _Tuples:
        """Tuples from archived records; refuses pickled values instead of loading them."""
        rows = _record_rows(records)
        for row in rows:
            if row[8] == "pickle":
                raise AuraError(
                    f"archived checkpoint {row[3]} of thread {row[1]!r} holds a pickled value; "
                    "AURA never unpickles archive data. Re-serialize it with a JSON/msgpack serde."
                )
        return self._decode(rows)

    def _cold_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        assert self.archive is not None
        conf = config["configurable"]
        scoped: RunnableConfig = {
            "configurable": {**conf, "checkpoint_ns": conf.get("checkpoint_ns", "")}
        }
        found = self._decode_archived(self.archive.read(scoped, limit=1))
        return found[0] if found else None

    def _cold_list(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> _Tuples:
        assert self.archive is not None
        records = self.archive.read(config, filter=filter, before=before, limit=limit)
        return self._decode_archived(records)

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
            return self._cold_tuple(config)
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
        op = self._op_list(config, filter, before, limit, archived=self.archive is not None)
        hot, marked = self._exec.run(op)
        if marked:
            cold = self._cold_list(config, filter, before, limit)
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
            )[0]
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
            return await asyncio.to_thread(self._cold_tuple, config)
        return None

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        op = self._op_list(config, filter, before, limit, archived=self.archive is not None)
        hot, marked = await self._exec.arun(op)
        if marked:
            cold = await asyncio.to_thread(self._cold_list, config, filter, before, limit)
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


def _run_id(metadata: CheckpointMetadata) -> str | None:
    run_id = metadata.get("run_id")
    return str(run_id) if run_id is not None else None


def _key(t: CheckpointTuple) -> tuple[str, str, str]:
    c = t.config["configurable"]
    return (c["thread_id"], c.get("checkpoint_ns", ""), c["checkpoint_id"])


def open_error(url: str, exc: Exception) -> AuraError:
    from lakehouse.settings import redact_url

    return AuraError(
        f"cannot open the checkpoint store at {redact_url(url)}: {type(exc).__name__}: {exc}. "
        "Check AURA_PG_URL (or the URL you passed) and that the database is reachable."
    )


def _record_rows(records: Records) -> _Rows:
    """Archived records in the shape of the hot store's one-round-trip read (see ``_sql``)."""
    rows: _Rows = []
    blobs = {
        (b["thread_id"], b["checkpoint_ns"], b["channel"], b["version"]): (b["type"], b["blob"])
        for b in records.blobs.to_pylist()
    }
    for c in records.checkpoints.to_pylist():
        t, ns, cid = c["thread_id"], c["checkpoint_ns"], c["checkpoint_id"]
        rows.append(
            ("c", t, ns, cid, c["parent_checkpoint_id"], c["metadata"], c["ts"].isoformat(), None)
            + (c["type"], c["checkpoint"])
        )
        for channel, version in json.loads(c["blob_versions"]).items():
            if (found := blobs.get((t, ns, channel, version))) is not None:
                rows.append(("b", t, ns, cid, channel, version, None, None, *found))
    for w in records.writes.to_pylist():
        rows.append(
            ("w", w["thread_id"], w["checkpoint_ns"], w["checkpoint_id"], w["task_id"])
            + (w["channel"], w["task_path"], w["idx"], w["type"], w["blob"])
        )
    return rows
