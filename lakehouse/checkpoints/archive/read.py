"""Reading the checkpoint archive back as :class:`Records` (read-through and restore)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import get_checkpoint_id
from pyiceberg.expressions import AlwaysTrue, And, BooleanExpression, EqualTo, In

from lakehouse.checkpoints.records import BLOB_SCHEMA, CheckpointKey, Records
from lakehouse.checkpoints.tables import BLOBS, CHECKPOINTS, WRITES

if TYPE_CHECKING:
    from lakehouse.core import Lakehouse

BlobKey = tuple[str, str, str, str]
KEY_FIELDS = ("thread_id", "checkpoint_ns", "checkpoint_id")


def key_tuples(table: pa.Table) -> list[tuple[Any, ...]]:
    """Rows of ``table`` as tuples of all its columns."""
    if table.num_rows == 0:
        return []
    return list(zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True))


def checkpoint_filter(config: RunnableConfig | None) -> BooleanExpression:
    """The archive filter selecting what ``config`` names (a thread, namespace, checkpoint)."""
    if not config:
        return AlwaysTrue()
    conf = config["configurable"]
    expr: BooleanExpression = EqualTo("thread_id", conf["thread_id"])
    if (ns := conf.get("checkpoint_ns")) is not None:
        expr = And(expr, EqualTo("checkpoint_ns", ns))
    if checkpoint_id := get_checkpoint_id(config):
        expr = And(expr, EqualTo("checkpoint_id", checkpoint_id))
    return expr


class ArchiveReader:
    """Scans of the three archive tables, assembled into :class:`Records`."""

    def __init__(self, lakehouse: Lakehouse) -> None:
        self.lakehouse = lakehouse

    def scan(
        self, name: str, row_filter: BooleanExpression, fields: Sequence[str] = ("*",)
    ) -> pa.Table:
        """Rows of archive table ``name`` matching ``row_filter`` (empty before the first write)."""
        table = self.lakehouse.table(name)
        if table.current_snapshot() is None:
            schema = self.lakehouse.spec(name).arrow_schema
            if tuple(fields) == ("*",):
                return schema.empty_table()
            return pa.schema([schema.field(f) for f in fields]).empty_table()
        return table.scan(row_filter=row_filter, selected_fields=tuple(fields)).to_arrow()

    def read(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Records:
        """Archived checkpoints matching the arguments, newest first, with values and writes."""
        table = self.scan(CHECKPOINTS, checkpoint_filter(config))
        if before is not None and (before_id := get_checkpoint_id(before)):
            table = table.filter(pc.less(table.column("checkpoint_id"), before_id))
        if filter:
            keep = [
                all(md.get(k) == v for k, v in filter.items())
                for md in (json.loads(m) for m in table.column("metadata").to_pylist())
            ]
            table = table.filter(pa.array(keep, pa.bool_()))
        table = table.sort_by([("checkpoint_id", "descending")])
        if limit is not None:
            table = table.slice(0, limit)
        return self.records(table)

    def records(self, checkpoints: pa.Table) -> Records:
        """``checkpoints`` (archive rows) with the channel values they name and their writes."""
        if checkpoints.num_rows == 0:
            return Records.empty()
        cps = checkpoints.to_pylist()
        threads = sorted({c["thread_id"] for c in cps})
        wanted = {
            (c["thread_id"], c["checkpoint_ns"], channel, version)
            for c in cps
            for channel, version in json.loads(c["blob_versions"]).items()
        }
        blobs = self.blobs(threads, wanted)
        keys = {(c["thread_id"], c["checkpoint_ns"], c["checkpoint_id"]) for c in cps}
        writes = self.scan(WRITES, In("thread_id", threads))
        mask = [k in keys for k in key_tuples(writes.select(KEY_FIELDS))]
        return Records(
            checkpoints=checkpoints,
            writes=writes.filter(pa.array(mask, pa.bool_())),
            blobs=pa.Table.from_pylist(
                [
                    {
                        "thread_id": k[0],
                        "checkpoint_ns": k[1],
                        "channel": k[2],
                        "version": k[3],
                        "type": type_,
                        "blob": data,
                        "ts": ts,
                    }
                    for k, (type_, data, ts) in sorted(blobs.items())
                ],
                schema=BLOB_SCHEMA,
            ),
        )

    def blobs(
        self, threads: Sequence[str], wanted: set[BlobKey]
    ) -> dict[BlobKey, tuple[str, bytes | None, Any]]:
        """Resolve (thread, ns, channel, version) to (type, bytes, ts), following content hashes."""
        if not wanted:
            return {}
        table = self.scan(BLOBS, In("thread_id", list(threads)))
        found: dict[BlobKey, tuple[str, bytes | None, Any]] = {}
        missing: dict[BlobKey, tuple[str, str, Any]] = {}
        for b in table.to_pylist():
            key = (b["thread_id"], b["checkpoint_ns"], b["channel"], b["version"])
            if key not in wanted:
                continue
            if b["blob"] is not None or b["type"] == "empty":
                found[key] = (b["type"], b["blob"], b["ts"])
            else:
                missing[key] = (b["type"], b["content_hash"], b["ts"])
        if missing:
            hashes = sorted({h for _, h, _ in missing.values()})
            holders = self.scan(BLOBS, In("content_hash", hashes), ("content_hash", "type", "blob"))
            by_hash = {
                r["content_hash"]: r["blob"] for r in holders.to_pylist() if r["blob"] is not None
            }
            for key, (type_, content_hash, ts) in missing.items():
                if content_hash in by_hash:
                    found[key] = (type_, by_hash[content_hash], ts)
        return found

    def write_counts(self, thread_ids: Iterable[str]) -> dict[CheckpointKey, int]:
        """Archived pending writes per checkpoint of the threads."""
        threads = sorted(set(thread_ids))
        if not threads:
            return {}
        ws = self.scan(WRITES, In("thread_id", threads), KEY_FIELDS)
        counts: dict[CheckpointKey, int] = {}
        for key in key_tuples(ws):
            counts[key] = counts.get(key, 0) + 1
        return counts

    def thread_ids(self) -> list[str]:
        """Every thread with archived checkpoints."""
        table = self.scan(CHECKPOINTS, AlwaysTrue(), ("thread_id",))
        return sorted(set(table.column("thread_id").to_pylist()))
