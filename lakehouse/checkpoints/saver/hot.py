"""The saver's hot store as the archive sees it: rows in and out as Arrow :class:`Records`.

:class:`SqlCheckpointStore` implements :class:`~lakehouse.checkpoints.records.CheckpointHotStore`
(and so the generic :class:`~lakehouse.ingest.tiering.HotStore`) over the saver's executor; the
archive
uses only this public surface, never the executor or the SQL row tuples.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa

from lakehouse.checkpoints._exec import Executor, Op, Row, Stmt
from lakehouse.checkpoints.records import (
    BLOB_SCHEMA,
    CHECKPOINT_SCHEMA,
    WRITE_SCHEMA,
    CheckpointKey,
    Records,
)


def parse_ts(value: str) -> datetime:
    """A hot-store ``ts`` (ISO text) as an aware UTC datetime."""
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(value: datetime) -> str:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


class SqlCheckpointStore:
    """The SQL hot store of a saver (SQLite or PostgreSQL), seen as rows."""

    def __init__(self, executor: Executor) -> None:
        self._exec = executor

    def _sql(self, key: str) -> str:
        return self._exec.dialect.sql(key)

    def _fetch(self, key: str, params: Sequence[Any] = ()) -> list[Row]:
        def op() -> Op[list[Row]]:
            rows = yield Stmt(self._sql(key), params, fetch=True)
            return rows

        return self._exec.run(op())

    # --------------------------------------------------------------------------- HotStore

    def candidates(
        self, *, day: date | None = None, older_than: datetime | None = None
    ) -> pa.Table:
        """Checkpoint rows created on ``day`` (UTC) and/or before ``older_than``."""
        start, end = "", "~"  # every ISO timestamp sorts between these
        if day is not None:
            start, end = day.isoformat(), (day + timedelta(days=1)).isoformat()
        if older_than is not None:
            end = min(end, _iso(older_than))
        return _checkpoints(self._fetch("export_checkpoints", (start, end)))

    def delete(self, keys: Sequence[CheckpointKey]) -> int:
        """Delete checkpoints with their writes, and the channel values nothing refers to."""
        keys = [tuple(k) for k in keys]  # type: ignore[misc]
        if not keys:
            return 0

        def op() -> Op[int]:
            yield Stmt(self._sql("delete_checkpoint_writes"), keys, many=True)
            yield Stmt(self._sql("delete_checkpoint"), keys, many=True)
            threads = [(t,) for t in sorted({k[0] for k in keys})]
            yield Stmt(self._sql("gc_blobs"), threads, many=True)
            return len(keys)

        return self._exec.run(op(), write=True)

    def count(self) -> int:
        """Hot checkpoints."""
        return int(self._fetch("count_checkpoints")[0][0])

    # ----------------------------------------------------------------- CheckpointHotStore

    def export_day(self, day: date) -> Records:
        """The checkpoints of ``day`` (UTC) with their channel values and writes."""
        start, end = day.isoformat(), (day + timedelta(days=1)).isoformat()

        def op() -> Op[tuple[list[Row], list[Row], list[Row]]]:
            cps = yield Stmt(self._sql("export_checkpoints"), (start, end), fetch=True)
            writes = yield Stmt(self._sql("export_writes"), (start, end), fetch=True)
            blobs = yield Stmt(self._sql("export_blobs"), (start, end), fetch=True)
            return cps, writes, blobs

        cps, writes, blobs = self._exec.run(op())
        return Records(_checkpoints(cps), _writes(writes), _blobs(blobs))

    def mark_archived(self, thread_ids: Sequence[str]) -> None:
        """Record that the threads have archived rows (idempotent)."""
        params = [(t,) for t in sorted(set(thread_ids))]
        if not params:
            return

        def op() -> Op[None]:
            yield Stmt(self._sql("mark_archived"), params, many=True)

        self._exec.run(op(), write=True)

    def retention_candidates(self) -> list[tuple[str, str, str, datetime]]:
        """Every hot checkpoint, newest first per thread namespace."""
        return [
            (t, ns, cid, parse_ts(ts)) for t, ns, cid, ts in self._fetch("retention_candidates")
        ]

    def write_counts(self, thread_ids: Sequence[str]) -> dict[CheckpointKey, int]:
        """Hot pending writes per checkpoint of the threads."""
        counts: dict[CheckpointKey, int] = {}
        for thread_id in sorted(set(thread_ids)):
            for t, ns, cid, n in self._fetch("write_counts", (thread_id,)):
                counts[(t, ns, cid)] = int(n)
        return counts

    def import_records(self, records: Records) -> None:
        """Insert archived checkpoints, values and writes; rows already hot are kept."""
        blobs = [
            (b["thread_id"], b["checkpoint_ns"], b["channel"], b["version"], b["type"], b["blob"])
            for b in records.blobs.to_pylist()
        ]
        writes = [
            (
                w["thread_id"],
                w["checkpoint_ns"],
                w["checkpoint_id"],
                w["task_id"],
                w["task_path"],
                w["idx"],
                w["channel"],
                w["type"],
                w["blob"],
            )
            for w in records.writes.to_pylist()
        ]
        cps = [
            (
                c["thread_id"],
                c["checkpoint_ns"],
                c["checkpoint_id"],
                c["parent_checkpoint_id"],
                c["run_id"],
                c["ts"].isoformat(),
                c["type"],
                c["checkpoint"],
                c["metadata"],
                c["blob_versions"],
            )
            for c in records.checkpoints.to_pylist()
        ]
        threads = [(t,) for t in records.thread_ids]

        def op() -> Op[None]:
            if blobs:
                yield Stmt(self._sql("upsert_blob"), blobs, many=True)
            if writes:
                yield Stmt(self._sql("insert_write"), writes, many=True)
            if cps:
                yield Stmt(self._sql("insert_checkpoint_if_absent"), cps, many=True)
            if threads:
                # Restored threads keep reading through to the rest of their archived history.
                yield Stmt(self._sql("mark_archived"), threads, many=True)

        self._exec.run(op(), write=True)


def _checkpoints(rows: list[Row]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "thread_id": c[0],
                "checkpoint_ns": c[1],
                "checkpoint_id": c[2],
                "parent_checkpoint_id": c[3],
                "run_id": c[4],
                "ts": parse_ts(c[5]),
                "type": c[6],
                "checkpoint": bytes(c[7]),
                "metadata": c[8],
                "blob_versions": c[9],
            }
            for c in rows
        ],
        schema=CHECKPOINT_SCHEMA,
    )


def _writes(rows: list[Row]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "thread_id": w[0],
                "checkpoint_ns": w[1],
                "checkpoint_id": w[2],
                "task_id": w[3],
                "idx": w[4],
                "task_path": w[5],
                "channel": w[6],
                "type": w[7],
                "blob": bytes(w[8]),
                "ts": parse_ts(w[9]),
            }
            for w in rows
        ],
        schema=WRITE_SCHEMA,
    )


def _blobs(rows: list[Row]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "thread_id": b[0],
                "checkpoint_ns": b[1],
                "channel": b[2],
                "version": b[3],
                "type": b[4],
                "blob": bytes(b[5]) if b[5] is not None else None,
                "ts": parse_ts(b[6]),
            }
            for b in rows
        ],
        schema=BLOB_SCHEMA,
    )
