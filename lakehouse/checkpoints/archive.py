"""The Iceberg archive of workflow checkpoints: archive, trim the hot store, read through, restore.

Three tables, each partitioned by day:

``workflow_checkpoints``
    One row per checkpoint, exactly as the hot store holds it: the checkpoint without its large
    channel values, plus ``blob_versions`` naming the (channel, version) values it uses.
``workflow_checkpoint_writes``
    The pending writes of each archived checkpoint.
``workflow_checkpoint_blobs``
    Channel values, coalesced: one row per (thread, namespace, channel, version), and the bytes
    of identical values stored once (by content hash); later rows carry only the hash.

Archiving a day merges the hot rows of that day into its partitions (rows already archived are
kept as they are), so re-running it is idempotent and never loses rows already trimmed from the
hot store. Trimming deletes hot rows only when the archive holds them, checked against the
committed archive, so a crash between the archive commit and the trim loses nothing.

Archived bytes are decoded with LangGraph's serializer only; a value typed ``pickle`` is refused.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple, get_checkpoint_id
from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    BooleanExpression,
    EqualTo,
    In,
    LessThanOrEqual,
)
from pyiceberg.schema import Schema
from pyiceberg.types import BinaryType, LongType, StringType, TimestamptzType

from lakehouse.checkpoints._exec import Row, Stmt
from lakehouse.exceptions import AuraError
from lakehouse.tables import TableSpec, column, register
from lakehouse.writer import Lineage

if TYPE_CHECKING:
    from lakehouse.checkpoints.saver import _AuraSaverBase
    from lakehouse.core import Lakehouse

CHECKPOINTS = "workflow_checkpoints"
WRITES = "workflow_checkpoint_writes"
BLOBS = "workflow_checkpoint_blobs"
ASSET = "workflow_checkpoints"

_Tuples = list[CheckpointTuple]
_KeySet = set[tuple[str, str, str]]
_Counts = dict[tuple[str, str, str], int]


CHECKPOINTS_SPEC = register(
    TableSpec(
        name=CHECKPOINTS,
        schema=Schema(
            column(1, "thread_id", StringType()),
            column(2, "checkpoint_ns", StringType()),
            column(3, "checkpoint_id", StringType(), doc="uuid6: sorts in creation order"),
            column(4, "parent_checkpoint_id", StringType(), required=False),
            column(5, "run_id", StringType(), required=False),
            column(6, "ts", TimestamptzType(), doc="When LangGraph created the checkpoint"),
            column(7, "type", StringType(), doc="Serializer type tag of `checkpoint`"),
            column(8, "checkpoint", BinaryType(), doc="Checkpoint without its blob values"),
            column(9, "metadata", StringType(), doc="Checkpoint metadata as JSON"),
            column(10, "blob_versions", StringType(), doc="JSON {channel: version} of blobs"),
        ),
        time_column="ts",
        key=("thread_id", "checkpoint_ns", "checkpoint_id"),
        description="Archived LangGraph checkpoints (channel values live in the blobs table)",
    )
)

WRITES_SPEC = register(
    TableSpec(
        name=WRITES,
        schema=Schema(
            column(1, "thread_id", StringType()),
            column(2, "checkpoint_ns", StringType()),
            column(3, "checkpoint_id", StringType()),
            column(4, "task_id", StringType()),
            column(5, "idx", LongType()),
            column(6, "task_path", StringType()),
            column(7, "channel", StringType()),
            column(8, "type", StringType(), required=False),
            column(9, "blob", BinaryType()),
            column(10, "ts", TimestamptzType(), doc="ts of the checkpoint the write belongs to"),
        ),
        time_column="ts",
        key=("thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx"),
        description="Pending writes of archived LangGraph checkpoints",
    )
)

BLOBS_SPEC = register(
    TableSpec(
        name=BLOBS,
        schema=Schema(
            column(1, "thread_id", StringType()),
            column(2, "checkpoint_ns", StringType()),
            column(3, "channel", StringType()),
            column(4, "version", StringType()),
            column(5, "content_hash", StringType(), doc="blake2b-128 of type and bytes"),
            column(6, "type", StringType()),
            column(
                7,
                "blob",
                BinaryType(),
                required=False,
                doc="The bytes; null when another row holds the same content_hash",
            ),
            column(8, "ts", TimestamptzType(), doc="ts of the first checkpoint using it"),
        ),
        time_column="ts",
        key=("thread_id", "checkpoint_ns", "channel", "version"),
        description="Channel values of archived checkpoints, once per version and content",
    )
)


@dataclass(frozen=True)
class RetentionPolicy:
    """Which checkpoints stay hot: the last ``keep_last`` per thread namespace, and (when set)
    every checkpoint younger than ``max_age_days``. The newest checkpoint always stays hot."""

    keep_last: int | None = 20
    max_age_days: float | None = None

    def __post_init__(self) -> None:
        if self.keep_last is None and self.max_age_days is None:
            raise AuraError("a retention policy needs keep_last, max_age_days or both")
        if self.keep_last is not None and self.keep_last < 1:
            raise AuraError(f"keep_last must be at least 1 (got {self.keep_last})")


@dataclass(frozen=True)
class ArchiveResult:
    """What one archive run added for one day."""

    day: date
    checkpoints: int
    writes: int
    blobs: int
    raw_bytes: int
    archive_bytes: int

    @property
    def ratio(self) -> float | None:
        """Archive bytes over raw checkpoint bytes (``None`` when nothing was archived)."""
        return self.archive_bytes / self.raw_bytes if self.raw_bytes else None


@dataclass(frozen=True)
class TrimResult:
    """What a retention pass removed from the hot store."""

    candidates: int
    trimmed: int
    not_archived: int


def _hash(type_: str, data: bytes | None) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(type_.encode())
    h.update(b"\0")
    h.update(data or b"")
    return h.hexdigest()


def _ts(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _day_bounds(day: date) -> tuple[str, str]:
    return day.isoformat(), (day + timedelta(days=1)).isoformat()


class CheckpointArchive:
    """The Iceberg side of the checkpointer; attach it to a saver for read-through."""

    def __init__(self, lakehouse: Lakehouse) -> None:
        self.lakehouse = lakehouse

    # ----------------------------------------------------------------------------- reading

    def _scan(
        self, name: str, row_filter: BooleanExpression, fields: Sequence[str] = ("*",)
    ) -> pa.Table:
        table = self.lakehouse.table(name)
        if table.current_snapshot() is None:
            spec = self.lakehouse.spec(name)
            schema = spec.arrow_schema
            return (
                schema.empty_table()
                if fields == ("*",)
                else pa.schema([schema.field(f) for f in fields]).empty_table()
            )
        return table.scan(row_filter=row_filter, selected_fields=tuple(fields)).to_arrow()

    def _rows_for(self, checkpoints: pa.Table, *, with_writes: bool = True) -> list[Row]:
        """Rows in the saver's tuple-read shape for the archived ``checkpoints``."""
        rows: list[Row] = []
        if checkpoints.num_rows == 0:
            return rows
        threads = sorted(set(checkpoints.column("thread_id").to_pylist()))
        wanted: set[tuple[str, str, str, str]] = set()
        for c in checkpoints.to_pylist():
            rows.append(
                (
                    "c",
                    c["thread_id"],
                    c["checkpoint_ns"],
                    c["checkpoint_id"],
                    c["parent_checkpoint_id"],
                    c["metadata"],
                    c["ts"].isoformat(),
                    None,
                    c["type"],
                    c["checkpoint"],
                )
            )
            for channel, version in json.loads(c["blob_versions"]).items():
                wanted.add((c["thread_id"], c["checkpoint_ns"], channel, version))
        blobs = self._blobs(threads, wanted)
        for c in checkpoints.to_pylist():
            for channel, version in json.loads(c["blob_versions"]).items():
                found = blobs.get((c["thread_id"], c["checkpoint_ns"], channel, version))
                if found is not None:
                    rows.append(
                        (
                            "b",
                            c["thread_id"],
                            c["checkpoint_ns"],
                            c["checkpoint_id"],
                            channel,
                            version,
                            None,
                            None,
                            found[0],
                            found[1],
                        )
                    )
        if with_writes:
            keys = {
                (c["thread_id"], c["checkpoint_ns"], c["checkpoint_id"])
                for c in checkpoints.to_pylist()
            }
            writes = self._scan(WRITES, In("thread_id", threads))
            for w in writes.to_pylist():
                if (w["thread_id"], w["checkpoint_ns"], w["checkpoint_id"]) in keys:
                    rows.append(
                        (
                            "w",
                            w["thread_id"],
                            w["checkpoint_ns"],
                            w["checkpoint_id"],
                            w["task_id"],
                            w["channel"],
                            w["task_path"],
                            w["idx"],
                            w["type"],
                            w["blob"],
                        )
                    )
        return rows

    def _blobs(
        self, threads: Sequence[str], wanted: set[tuple[str, str, str, str]]
    ) -> dict[tuple[str, str, str, str], tuple[str, bytes | None]]:
        """Resolve (thread, ns, channel, version) to (type, bytes), following content hashes."""
        if not wanted:
            return {}
        table = self._scan(BLOBS, In("thread_id", list(threads)))
        found: dict[tuple[str, str, str, str], tuple[str, bytes | None]] = {}
        missing: dict[tuple[str, str, str, str], tuple[str, str]] = {}
        for b in table.to_pylist():
            key = (b["thread_id"], b["checkpoint_ns"], b["channel"], b["version"])
            if key not in wanted:
                continue
            if b["blob"] is not None or b["type"] == "empty":
                found[key] = (b["type"], b["blob"])
            else:
                missing[key] = (b["type"], b["content_hash"])
        if missing:
            hashes = sorted({h for _, h in missing.values()})
            holders = self._scan(
                BLOBS, In("content_hash", hashes), ("content_hash", "type", "blob")
            )
            by_hash = {
                r["content_hash"]: r["blob"] for r in holders.to_pylist() if r["blob"] is not None
            }
            for key, (type_, content_hash) in missing.items():
                if content_hash in by_hash:
                    found[key] = (type_, by_hash[content_hash])
        return found

    def _checkpoint_filter(self, config: RunnableConfig | None) -> BooleanExpression:
        if not config:
            return AlwaysTrue()
        conf = config["configurable"]
        expr: BooleanExpression = EqualTo("thread_id", conf["thread_id"])
        if (ns := conf.get("checkpoint_ns")) is not None:
            expr = And(expr, EqualTo("checkpoint_ns", ns))
        if checkpoint_id := get_checkpoint_id(config):
            expr = And(expr, EqualTo("checkpoint_id", checkpoint_id))
        return expr

    def get_tuple(
        self, config: RunnableConfig, decode: Callable[[list[Row]], list[CheckpointTuple]]
    ) -> CheckpointTuple | None:
        """The archived checkpoint ``config`` names (latest archived one without an id)."""
        conf = config["configurable"]
        scoped: RunnableConfig = {
            "configurable": {**conf, "checkpoint_ns": conf.get("checkpoint_ns", "")}
        }
        table = self._scan(CHECKPOINTS, self._checkpoint_filter(scoped))
        if table.num_rows == 0:
            return None
        table = table.sort_by([("checkpoint_id", "descending")]).slice(0, 1)
        found = decode(self._rows_for(table))
        return found[0] if found else None

    def list_tuples(
        self,
        config: RunnableConfig | None,
        decode: Callable[[list[Row]], list[CheckpointTuple]],
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> _Tuples:
        """Archived checkpoints matching the arguments, newest first."""
        table = self._scan(CHECKPOINTS, self._checkpoint_filter(config))
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
        return decode(self._rows_for(table))

    def keys(
        self, thread_ids: Iterable[str]
    ) -> tuple[set[tuple[str, str, str]], dict[tuple[str, str, str], int]]:
        """Archived checkpoint keys of the threads, and the number of writes of each."""
        threads = sorted(set(thread_ids))
        if not threads:
            return set(), {}
        cps = self._scan(
            CHECKPOINTS, In("thread_id", threads), ("thread_id", "checkpoint_ns", "checkpoint_id")
        )
        keys = set(zip(*(cps.column(c).to_pylist() for c in cps.column_names), strict=True))
        ws = self._scan(
            WRITES, In("thread_id", threads), ("thread_id", "checkpoint_ns", "checkpoint_id")
        )
        counts: dict[tuple[str, str, str], int] = {}
        for key in zip(*(ws.column(c).to_pylist() for c in ws.column_names), strict=True):
            counts[key] = counts.get(key, 0) + 1
        return keys, counts

    # ---------------------------------------------------------------------------- deleting

    def delete(
        self,
        *,
        thread_ids: Sequence[str] | None = None,
        run_ids: Sequence[str] | None = None,
        keep: Sequence[tuple[str, str, str]] | None = None,
    ) -> None:
        """Delete archived checkpoints of threads (but ``keep``) or of runs, with their writes."""
        lineage = Lineage(asset=ASSET, run_id=f"delete-{uuid.uuid4().hex[:8]}").properties()
        if run_ids:
            cps = self._scan(
                CHECKPOINTS,
                In("run_id", list(run_ids)),
                ("thread_id", "checkpoint_ns", "checkpoint_id"),
            )
            for key in zip(*(cps.column(c).to_pylist() for c in cps.column_names), strict=True):
                self._delete_checkpoint_rows([key], lineage)
        if thread_ids:
            if keep is None:
                expr = In("thread_id", list(thread_ids))
                for name in (WRITES, CHECKPOINTS, BLOBS):
                    self._delete(name, expr, lineage)
            else:
                kept = {k[2] for k in keep}
                cps = self._scan(
                    CHECKPOINTS,
                    In("thread_id", list(thread_ids)),
                    ("thread_id", "checkpoint_ns", "checkpoint_id"),
                )
                doomed = [
                    k
                    for k in zip(
                        *(cps.column(c).to_pylist() for c in cps.column_names), strict=True
                    )
                    if k[2] not in kept
                ]
                self._delete_checkpoint_rows(doomed, lineage)

    def _delete_checkpoint_rows(
        self, keys: Sequence[tuple[str, str, str]], lineage: dict[str, str]
    ) -> None:
        if not keys:
            return
        ids = sorted({k[2] for k in keys})
        threads = sorted({k[0] for k in keys})
        expr = And(In("thread_id", threads), In("checkpoint_id", ids))
        self._delete(WRITES, expr, lineage)
        self._delete(CHECKPOINTS, expr, lineage)

    def _delete(self, name: str, expr: BooleanExpression, lineage: dict[str, str]) -> None:
        import warnings

        table = self.lakehouse.table(name)
        if table.current_snapshot() is None:
            return
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Delete operation did not match any records")
            table.delete(expr, snapshot_properties=lineage)

    # --------------------------------------------------------------------------- archiving

    def archive_day(
        self, saver: _AuraSaverBase, day: date, *, run_id: str | None = None
    ) -> ArchiveResult:
        """Copy the hot checkpoints created on ``day`` (UTC) into the archive, idempotently."""
        start, end = _day_bounds(day)
        cps, writes, blobs = saver._exec.run(_op_export(saver, start, end))
        lineage = Lineage(asset=ASSET, partition=day.isoformat(), run_id=run_id)
        raw = _raw_bytes(cps, writes, blobs)
        added_bytes = 0
        counts = {}
        # Blobs and writes first: a checkpoint row in the archive implies its values are there.
        for name, rows in (
            (BLOBS, self._blob_rows(blobs)),
            (WRITES, _write_rows(writes)),
            (CHECKPOINTS, _checkpoint_rows(cps)),
        ):
            added, size = self._merge_day(name, rows, day, lineage)
            counts[name] = added
            added_bytes += size
        return ArchiveResult(
            day=day,
            checkpoints=counts[CHECKPOINTS],
            writes=counts[WRITES],
            blobs=counts[BLOBS],
            raw_bytes=raw,
            archive_bytes=added_bytes,
        )

    def _blob_rows(self, blobs: list[Row]) -> pa.Table:
        """Blob rows not archived yet (under any day), with bytes only for new content."""
        spec = BLOBS_SPEC
        if not blobs:
            return spec.arrow_schema.empty_table()
        threads = sorted({b[0] for b in blobs})
        existing = self._scan(
            BLOBS, In("thread_id", threads), ("thread_id", "checkpoint_ns", "channel", "version")
        )
        have = set(
            zip(*(existing.column(c).to_pylist() for c in existing.column_names), strict=True)
        )
        fresh = [b for b in blobs if (b[0], b[1], b[2], b[3]) not in have]
        hashes = [_hash(b[4], b[5]) for b in fresh]
        stored = self._scan(
            BLOBS,
            In("content_hash", sorted(set(hashes))) if hashes else AlwaysTrue(),
            ("content_hash", "blob"),
        )
        held = {
            h
            for h, blob in zip(
                stored.column("content_hash").to_pylist(),
                stored.column("blob").to_pylist(),
                strict=True,
            )
            if blob is not None
        }
        rows = []
        for b, h in zip(fresh, hashes, strict=True):
            keep_bytes = h not in held
            held.add(h)
            rows.append(
                {
                    "thread_id": b[0],
                    "checkpoint_ns": b[1],
                    "channel": b[2],
                    "version": b[3],
                    "content_hash": h,
                    "type": b[4],
                    "blob": bytes(b[5]) if keep_bytes and b[5] is not None else None,
                    "ts": _ts(b[6]),
                }
            )
        return pa.Table.from_pylist(rows, schema=spec.arrow_schema)

    def _merge_day(self, name: str, rows: pa.Table, day: date, lineage: Lineage) -> tuple[int, int]:
        """Add ``rows`` missing from the day partition; returns (rows added, bytes written)."""
        if rows.num_rows == 0:
            return 0, 0
        spec = self.lakehouse.spec(name)
        existing = self.lakehouse.read(name, day=day)
        have = (
            set(zip(*(existing.column(k).to_pylist() for k in spec.key), strict=True))
            if existing.num_rows
            else set()
        )
        keys = list(zip(*(rows.column(k).to_pylist() for k in spec.key), strict=True))
        seen: set[tuple[Any, ...]] = set()
        mask = []
        for key in keys:
            mask.append(key not in have and key not in seen)
            seen.add(key)
        new = rows.filter(pa.array(mask, pa.bool_()))
        if new.num_rows == 0:
            return 0, 0
        merged = (
            pa.concat_tables([existing.select(rows.column_names).cast(rows.schema), new])
            if existing.num_rows
            else new
        )
        result = self.lakehouse.overwrite_day(name, merged, day, lineage=lineage)
        table = self.lakehouse.table(name)
        snapshot = table.snapshot_by_id(result.snapshot_id) if result.snapshot_id else None
        size = (
            int(snapshot.summary.get("added-files-size", 0)) if snapshot and snapshot.summary else 0
        )
        return new.num_rows, size

    # ---------------------------------------------------------------------------- trimming

    def trim(
        self, saver: _AuraSaverBase, policy: RetentionPolicy, *, now: datetime | None = None
    ) -> TrimResult:
        """Delete hot checkpoints outside ``policy`` that the committed archive holds."""
        now = now or datetime.now(UTC)
        rows = saver._exec.run(_op_rows(saver, "retention_candidates"))
        candidates: list[tuple[str, str, str]] = []
        position: dict[tuple[str, str], int] = {}
        cutoff = (
            (now - timedelta(days=policy.max_age_days)).isoformat()
            if policy.max_age_days is not None
            else None
        )
        for thread_id, ns, checkpoint_id, ts in rows:
            rank = position.get((thread_id, ns), 0)
            position[(thread_id, ns)] = rank + 1
            if rank == 0:
                continue  # the newest checkpoint of a namespace always stays hot
            outside_k = policy.keep_last is None or rank >= policy.keep_last
            too_old = cutoff is None or _ts(ts).isoformat() < cutoff
            if policy.keep_last is None:
                outside_k = True
            if outside_k and too_old:
                candidates.append((thread_id, ns, checkpoint_id))
        if not candidates:
            return TrimResult(0, 0, 0)
        archived, write_counts = self.keys(c[0] for c in candidates)
        hot_writes = saver._exec.run(_op_write_counts(saver, sorted({c[0] for c in candidates})))
        safe = [
            c
            for c in candidates
            if c in archived and hot_writes.get(c, 0) <= write_counts.get(c, 0)
        ]
        if safe:
            saver._exec.run(_op_trim(saver, safe), write=True)
        return TrimResult(len(candidates), len(safe), len(candidates) - len(safe))

    # --------------------------------------------------------------------------- restoring

    def restore(
        self, saver: _AuraSaverBase, thread_id: str, *, as_of: datetime | None = None
    ) -> RunnableConfig | None:
        """Copy a thread's archived checkpoints (up to ``as_of``) back into the hot store.

        Returns the config of the newest restored root checkpoint: invoke the graph with it to
        resume from that state (``None`` when nothing is archived).
        """
        expr: BooleanExpression = EqualTo("thread_id", thread_id)
        if as_of is not None:
            expr = And(expr, LessThanOrEqual("ts", as_of.astimezone(UTC).isoformat()))
        cps = self._scan(CHECKPOINTS, expr)
        if cps.num_rows == 0:
            return None
        checkpoints = cps.to_pylist()
        wanted = {
            (c["thread_id"], c["checkpoint_ns"], ch, v)
            for c in checkpoints
            for ch, v in json.loads(c["blob_versions"]).items()
        }
        blobs = [
            (*key, type_, data) for key, (type_, data) in self._blobs([thread_id], wanted).items()
        ]
        keys = {(c["thread_id"], c["checkpoint_ns"], c["checkpoint_id"]) for c in checkpoints}
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
            for w in self._scan(WRITES, EqualTo("thread_id", thread_id)).to_pylist()
            if (w["thread_id"], w["checkpoint_ns"], w["checkpoint_id"]) in keys
        ]
        rows = [
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
            for c in checkpoints
        ]
        saver._exec.run(_op_import(saver, rows, blobs, writes), write=True)
        root = cps.filter(pc.equal(cps.column("checkpoint_ns"), ""))
        head = (root if root.num_rows else cps).sort_by([("checkpoint_id", "descending")])
        first = head.slice(0, 1).to_pylist()[0]
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": first["checkpoint_ns"],
                "checkpoint_id": first["checkpoint_id"],
            }
        }


# ----------------------------------------------------------------------- hot-store operations


def _op_rows(saver: _AuraSaverBase, key: str, params: Sequence[Any] = ()) -> Any:
    rows = yield Stmt(saver._exec.dialect.sql(key), params, fetch=True)
    return rows


def _op_export(saver: _AuraSaverBase, start: str, end: str) -> Any:
    sql = saver._exec.dialect.sql
    cps = yield Stmt(sql("export_checkpoints"), (start, end), fetch=True)
    writes = yield Stmt(sql("export_writes"), (start, end), fetch=True)
    blobs = yield Stmt(sql("export_blobs"), (start, end), fetch=True)
    return cps, writes, blobs


def _op_write_counts(saver: _AuraSaverBase, threads: list[str]) -> Any:
    counts: dict[tuple[str, str, str], int] = {}
    for thread_id in threads:
        rows = yield Stmt(saver._exec.dialect.sql("write_counts"), (thread_id,), fetch=True)
        for t, ns, cid, n in rows:
            counts[(t, ns, cid)] = int(n)
    return counts


def _op_trim(saver: _AuraSaverBase, keys: list[tuple[str, str, str]]) -> Any:
    sql = saver._exec.dialect.sql
    yield Stmt(sql("delete_checkpoint_writes"), keys, many=True)
    yield Stmt(sql("delete_checkpoint"), keys, many=True)
    yield Stmt(sql("gc_blobs"), [(t,) for t in sorted({k[0] for k in keys})], many=True)


def _op_import(
    saver: _AuraSaverBase,
    cps: list[tuple[Any, ...]],
    blobs: list[tuple[Any, ...]],
    writes: list[tuple[Any, ...]],
) -> Any:
    sql = saver._exec.dialect.sql
    if blobs:
        yield Stmt(sql("upsert_blob"), blobs, many=True)
    if writes:
        yield Stmt(sql("insert_write"), writes, many=True)
    if cps:
        yield Stmt(sql("insert_checkpoint_if_absent"), cps, many=True)


def _raw_bytes(cps: list[Row], writes: list[Row], blobs: list[Row]) -> int:
    """Bytes a store keeping every checkpoint whole would hold (values repeated per checkpoint)."""
    sizes = {(b[0], b[1], b[2], b[3]): len(b[5] or b"") for b in blobs}
    total = 0
    for c in cps:
        total += len(c[7]) + len(c[8].encode())
        for channel, version in json.loads(c[9]).items():
            total += sizes.get((c[0], c[1], channel, version), 0)
    return total + sum(len(w[8]) for w in writes)


def _checkpoint_rows(cps: list[Row]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "thread_id": c[0],
                "checkpoint_ns": c[1],
                "checkpoint_id": c[2],
                "parent_checkpoint_id": c[3],
                "run_id": c[4],
                "ts": _ts(c[5]),
                "type": c[6],
                "checkpoint": bytes(c[7]),
                "metadata": c[8],
                "blob_versions": c[9],
            }
            for c in cps
        ],
        schema=CHECKPOINTS_SPEC.arrow_schema,
    )


def _write_rows(writes: list[Row]) -> pa.Table:
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
                "ts": _ts(w[9]),
            }
            for w in writes
        ],
        schema=WRITES_SPEC.arrow_schema,
    )


# ------------------------------------------------------------------------------ public API


def archive_checkpoints(
    lakehouse: Lakehouse, saver: _AuraSaverBase, day: date, *, run_id: str | None = None
) -> ArchiveResult:
    """Archive the hot checkpoints of ``day`` (UTC) into Iceberg; safe to re-run."""
    return CheckpointArchive(lakehouse).archive_day(saver, day, run_id=run_id)


def apply_retention(
    lakehouse: Lakehouse, saver: _AuraSaverBase, policy: RetentionPolicy
) -> TrimResult:
    """Trim the hot store to ``policy``, deleting only checkpoints the archive already holds."""
    return CheckpointArchive(lakehouse).trim(saver, policy)


def archive_and_trim(
    lakehouse: Lakehouse,
    saver: _AuraSaverBase,
    day: date,
    policy: RetentionPolicy,
    *,
    run_id: str | None = None,
    on_archived: Callable[[ArchiveResult], None] | None = None,
) -> tuple[ArchiveResult, TrimResult]:
    """Archive ``day``, then trim the hot store; the trim runs only after the commit succeeded.

    ``on_archived`` is called between the two steps (for logging or progress reporting).
    """
    archive = CheckpointArchive(lakehouse)
    result = archive.archive_day(saver, day, run_id=run_id)
    if on_archived is not None:
        on_archived(result)
    return result, archive.trim(saver, policy)


def restore_thread(
    lakehouse: Lakehouse,
    saver: _AuraSaverBase,
    thread_id: str,
    *,
    as_of: datetime | None = None,
) -> RunnableConfig | None:
    """Rehydrate a thread's archived history (up to ``as_of``) into the hot store."""
    return CheckpointArchive(lakehouse).restore(saver, thread_id, as_of=as_of)


def archive_bytes(lakehouse: Lakehouse) -> int:
    """Bytes of the live data files of the three archive tables."""
    total = 0
    for name in (CHECKPOINTS, WRITES, BLOBS):
        table = lakehouse.table(name)
        if table.current_snapshot() is not None:
            total += sum(table.inspect.files().column("file_size_in_bytes").to_pylist())
    return total
