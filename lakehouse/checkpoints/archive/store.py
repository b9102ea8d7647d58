"""The checkpoint archive: tiering of the saver's hot store into three Iceberg tables.

Archiving a day merges the hot records of that day into its partitions (rows already archived
are kept as they are), so re-running it is idempotent and never loses rows already trimmed from
the hot store. The hot store marks the day's threads as archived *before* the commit, so a saver
in any process reads through to the archive for them. Trimming goes through
:class:`lakehouse.ingest.tiering.Tiering`: hot checkpoints are deleted only when read back from the
committed archive, so a crash between the archive commit and the trim loses nothing.

Archived bytes are decoded with LangGraph's serializer only; a value typed ``pickle`` is refused
(by the saver that decodes them).
"""

from __future__ import annotations

import hashlib
import json
import uuid
import warnings
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from langchain_core.runnables import RunnableConfig
from pyiceberg.expressions import AlwaysTrue, And, BooleanExpression, EqualTo, In, LessThanOrEqual

from lakehouse.checkpoints.archive.read import KEY_FIELDS, ArchiveReader, key_tuples
from lakehouse.checkpoints.archive.results import ArchiveResult, RetentionPolicy, RetentionResult
from lakehouse.checkpoints.records import (
    CheckpointHotStore,
    CheckpointKey,
    HasHotStore,
    Records,
    hot_store,
)
from lakehouse.checkpoints.tables import ASSET, BLOBS, BLOBS_SPEC, CHECKPOINTS, WRITES
from lakehouse.ingest.tiering import Tiering, merge_into_day
from lakehouse.table.writer import Lineage

if TYPE_CHECKING:
    from lakehouse.core import Lakehouse

HotSource = CheckpointHotStore | HasHotStore


def _hash(type_: str, data: bytes | None) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(type_.encode())
    h.update(b"\0")
    h.update(data or b"")
    return h.hexdigest()


class CheckpointArchive(ArchiveReader):
    """The Iceberg side of the checkpointer; attach it to a saver for read-through."""

    def tiering(self, source: HotSource) -> Tiering:
        """The tiering of ``source``'s hot checkpoints into ``workflow_checkpoints``."""
        return Tiering(self.lakehouse, CHECKPOINTS, hot_store(source), asset=ASSET)

    # --------------------------------------------------------------------------- archiving

    def archive_day(
        self, source: HotSource, day: date, *, run_id: str | None = None
    ) -> ArchiveResult:
        """Copy the hot checkpoints created on ``day`` (UTC) into the archive, idempotently."""
        hot = hot_store(source)
        records = hot.export_day(day)
        archived = self._archived_checkpoints(records)  # before the merges: what is new
        if records.checkpoints.num_rows:
            hot.mark_archived(records.thread_ids)  # before the commit: read-through finds them
        lineage = Lineage(asset=ASSET, partition=day.isoformat(), run_id=run_id)
        # Blobs and writes first: a checkpoint row in the archive implies its values are there.
        blobs = merge_into_day(self.lakehouse, BLOBS, self._blob_rows(records), day, lineage)
        writes = merge_into_day(self.lakehouse, WRITES, records.writes, day, lineage)
        cps = merge_into_day(self.lakehouse, CHECKPOINTS, records.checkpoints, day, lineage)
        return ArchiveResult(
            day=day,
            checkpoints=cps.added,
            writes=writes.added,
            blobs=blobs.added,
            raw_bytes=_raw_bytes(records, skip=archived),
            archive_bytes=blobs.bytes + writes.bytes + cps.bytes,
        )

    def _archived_checkpoints(self, records: Records) -> set[tuple[Any, ...]]:
        """Keys (thread, namespace, checkpoint id) of ``records``' checkpoints the archive
        already holds."""
        threads = sorted(set(records.checkpoints.column("thread_id").to_pylist()))
        if not threads:
            return set()
        held = self.scan(
            CHECKPOINTS, In("thread_id", threads), ("thread_id", "checkpoint_ns", "checkpoint_id")
        )
        return set(key_tuples(held))

    def _blob_rows(self, records: Records) -> pa.Table:
        """Blob rows not archived yet (under any day), with bytes only for new content."""
        schema = BLOBS_SPEC.arrow_schema
        blobs = records.blobs.to_pylist()
        if not blobs:
            return schema.empty_table()
        threads = sorted({b["thread_id"] for b in blobs})
        existing = self.scan(
            BLOBS, In("thread_id", threads), ("thread_id", "checkpoint_ns", "channel", "version")
        )
        have = set(key_tuples(existing))
        fresh = [
            b
            for b in blobs
            if (b["thread_id"], b["checkpoint_ns"], b["channel"], b["version"]) not in have
        ]
        hashes = [_hash(b["type"], b["blob"]) for b in fresh]
        stored = self.scan(
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
            rows.append({**b, "content_hash": h, "blob": b["blob"] if keep_bytes else None})
        return pa.Table.from_pylist(rows, schema=schema)

    def mark_threads(self, source: HotSource) -> int:
        """Mark every archived thread in ``source``'s hot store (for archives made before the
        hot store recorded archived threads); returns how many threads the archive holds."""
        threads = self.thread_ids()
        hot_store(source).mark_archived(threads)
        return len(threads)

    # ---------------------------------------------------------------------------- trimming

    def trim(
        self, source: HotSource, policy: RetentionPolicy, *, now: datetime | None = None
    ) -> RetentionResult:
        """Delete hot checkpoints outside ``policy`` that the committed archive holds."""
        hot = hot_store(source)
        now = now or datetime.now(UTC)
        cutoff = (
            now - timedelta(days=policy.max_age_days) if policy.max_age_days is not None else None
        )
        candidates: list[CheckpointKey] = []
        position: dict[tuple[str, str], int] = {}
        for thread_id, ns, checkpoint_id, ts in hot.retention_candidates():
            rank = position.get((thread_id, ns), 0)
            position[(thread_id, ns)] = rank + 1
            if rank == 0:
                continue  # the newest checkpoint of a namespace always stays hot
            outside_k = policy.keep_last is None or rank >= policy.keep_last
            too_old = cutoff is None or ts < cutoff
            if outside_k and too_old:
                candidates.append((thread_id, ns, checkpoint_id))
        if not candidates:
            return RetentionResult(0, 0, 0)
        threads = sorted({c[0] for c in candidates})
        archived_writes = self.write_counts(threads)
        hot_writes = hot.write_counts(threads)
        # A checkpoint whose writes grew after it was archived waits for the next archive run.
        ready = [c for c in candidates if hot_writes.get(c, 0) <= archived_writes.get(c, 0)]
        result = self.tiering(hot).trim(ready)
        return RetentionResult(len(candidates), result.trimmed, len(candidates) - result.trimmed)

    # ---------------------------------------------------------------------------- deleting

    def delete(
        self,
        *,
        thread_ids: Sequence[str] | None = None,
        run_ids: Sequence[str] | None = None,
        keep: Sequence[CheckpointKey] | None = None,
    ) -> None:
        """Delete archived checkpoints of threads (but ``keep``) or of runs, with their writes."""
        lineage = Lineage(asset=ASSET, run_id=f"delete-{uuid.uuid4().hex[:8]}").properties()
        if run_ids:
            cps = self.scan(CHECKPOINTS, In("run_id", list(run_ids)), KEY_FIELDS)
            for key in key_tuples(cps):
                self._delete_checkpoint_rows([key], lineage)
        if thread_ids:
            if keep is None:
                expr = In("thread_id", list(thread_ids))
                for name in (WRITES, CHECKPOINTS, BLOBS):
                    self._delete(name, expr, lineage)
            else:
                kept = {k[2] for k in keep}
                cps = self.scan(CHECKPOINTS, In("thread_id", list(thread_ids)), KEY_FIELDS)
                doomed = [k for k in key_tuples(cps) if k[2] not in kept]
                self._delete_checkpoint_rows(doomed, lineage)

    def _delete_checkpoint_rows(
        self, keys: Sequence[CheckpointKey], lineage: dict[str, str]
    ) -> None:
        if not keys:
            return
        ids = sorted({k[2] for k in keys})
        threads = sorted({k[0] for k in keys})
        expr = And(In("thread_id", threads), In("checkpoint_id", ids))
        self._delete(WRITES, expr, lineage)
        self._delete(CHECKPOINTS, expr, lineage)

    def _delete(self, name: str, expr: BooleanExpression, lineage: dict[str, str]) -> None:
        table = self.lakehouse.table(name)
        if table.current_snapshot() is None:
            return
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Delete operation did not match any records")
            table.delete(expr, snapshot_properties=lineage)

    # --------------------------------------------------------------------------- restoring

    def restore(
        self, source: HotSource, thread_id: str, *, as_of: datetime | None = None
    ) -> RunnableConfig | None:
        """Copy a thread's archived checkpoints (up to ``as_of``) back into the hot store.

        Returns the config of the newest restored root checkpoint: invoke the graph with it to
        resume from that state (``None`` when nothing is archived).
        """
        expr: BooleanExpression = EqualTo("thread_id", thread_id)
        if as_of is not None:
            expr = And(expr, LessThanOrEqual("ts", as_of.astimezone(UTC).isoformat()))
        cps = self.scan(CHECKPOINTS, expr)
        if cps.num_rows == 0:
            return None
        hot_store(source).import_records(self.records(cps))
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


def _raw_bytes(records: Records, skip: AbstractSet[tuple[Any, ...]] = frozenset()) -> int:
    """Bytes a store keeping every checkpoint whole would hold (values repeated per checkpoint),
    for the checkpoints (and their writes) whose key is not in ``skip`` (already archived: a
    re-run compares what it added with what it added, not with the whole day)."""
    sizes = {
        (b["thread_id"], b["checkpoint_ns"], b["channel"], b["version"]): len(b["blob"] or b"")
        for b in records.blobs.to_pylist()
    }
    total = 0
    for c in records.checkpoints.to_pylist():
        if (c["thread_id"], c["checkpoint_ns"], c["checkpoint_id"]) in skip:
            continue
        total += len(c["checkpoint"]) + len(c["metadata"].encode())
        for channel, version in json.loads(c["blob_versions"]).items():
            total += sizes.get((c["thread_id"], c["checkpoint_ns"], channel, version), 0)
    writes = records.writes.select(["thread_id", "checkpoint_ns", "checkpoint_id", "blob"])
    return total + sum(
        len(w["blob"])
        for w in writes.to_pylist()
        if (w["thread_id"], w["checkpoint_ns"], w["checkpoint_id"]) not in skip
    )


def archive_bytes(lakehouse: Lakehouse) -> int:
    """Bytes of the live data files of the three archive tables."""
    total = 0
    for name in (CHECKPOINTS, WRITES, BLOBS):
        table = lakehouse.table(name)
        if table.current_snapshot() is not None:
            total += sum(table.inspect.files().column("file_size_in_bytes").to_pylist())
    return total
