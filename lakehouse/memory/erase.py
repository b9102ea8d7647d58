"""Erase: ``forget`` and ``forget_tenant`` remove every copy and return a receipt.

Order: the tombstone first (:mod:`.tombstones`; an erase that cannot record it erases
nothing), then the spool, Redis keys and stream entries, Qdrant points (local storage
vacuumed), every snapshot and file of ``memories``, ``memory_events`` and
``memory_events_rejected``, and last the Redis persistence files.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from pyiceberg.expressions import AlwaysFalse, And, BooleanExpression, EqualTo, In

from lakehouse.exceptions import StreamRefusedError
from lakehouse.memory.cold import TableErase, erase_rows
from lakehouse.memory.coldindex import INDEX_ERRORS
from lakehouse.memory.events import mentions
from lakehouse.memory.model import parse_id
from lakehouse.memory.tables import MEMORIES, MEMORY_EVENTS, MEMORY_EVENTS_REJECTED, memory_table
from lakehouse.memory.tiers import MemoryTiers
from lakehouse.memory.warm import WARM_ERRORS
from lakehouse.table.tenants import check_tenant

log = logging.getLogger(__name__)
_NOT_ERASED = "not erased yet (its tombstone is recorded: no ingestion or compaction takes it back)"


@dataclass(frozen=True)
class EraseReceipt:
    """What an erase removed, where."""

    tenant_id: str
    memory_ids: tuple[str, ...]
    redis_keys_deleted: int
    redis_stream_entries_deleted: int
    redis_persistence_rewritten: bool
    qdrant_points_deleted: int
    qdrant_files_vacuumed: tuple[str, ...]
    iceberg: tuple[TableErase, ...]
    spool_entries_deleted: int = 0
    event_published: bool = True
    """Whether the erase's own ``forget`` event reached the stream (the audit record; a stream
    that refuses entries does not stop the erase)."""

    @property
    def found(self) -> bool:
        """Whether anything at all was removed."""
        return bool(
            self.redis_keys_deleted
            or self.redis_stream_entries_deleted
            or self.qdrant_points_deleted
            or self.spool_entries_deleted
            or any(t.rows_removed or t.snapshots_expired for t in self.iceberg)
        )


def _rejected_mentioning(table: Any, tenant_id: str, memory_id: str | None) -> set[str]:
    """Stream ids of dead letters, on any branch or tag, whose payload names the memory/tenant."""
    ids: set[str] = set()
    for ref in table.metadata.refs.values():
        rows = table.scan(snapshot_id=ref.snapshot_id, selected_fields=("stream_id", "raw"))
        for row in rows.to_arrow().to_pylist():
            if mentions(row["raw"], tenant_id, memory_id):
                ids.add(row["stream_id"])
    return ids


class MemoryErase(MemoryTiers):
    """``forget`` and ``forget_tenant``."""

    def forget(self, tenant_id: str, memory_id: str) -> EraseReceipt:
        """Erase one memory of the tenant from every tier, snapshot and file."""
        check_tenant(tenant_id)
        mid = parse_id(memory_id)
        if mid is None:
            return EraseReceipt(tenant_id, (), 0, 0, False, 0, (), ())
        # Tenant-qualified: another tenant's forget of this id buries nothing of theirs.
        self._bury(tenant_id, mid)
        index = self.cold.index
        try:
            points = [mid] if self.warm.owner(mid) == tenant_id else []  # expired ones too
            cold_points = [mid] if index is not None and index.owner(mid) == tenant_id else []
        except (*WARM_ERRORS, *INDEX_ERRORS) as exc:
            raise self._unavailable("warm", exc, _NOT_ERASED) from None
        spooled = self.spool.erase(tenant_id, [mid])
        keys = self.hot.trim(tenant_id, [mid], keep_access=False)
        entries = self.hot.erase_stream(tenant_id, {mid})
        self.warm.delete(points)
        vacuumed = tuple(self.warm.vacuum())
        if index is not None and cold_points:
            index.delete(cold_points)
            vacuumed += tuple(index.vacuum())
        iceberg = self._erase_iceberg(
            And(EqualTo("tenant_id", tenant_id), EqualTo("memory_id", mid)), tenant_id, mid
        )
        rewritten = self.hot.rewrite_persistence()
        published = self._publish(self._forget_event("forget", tenant_id, mid))
        return EraseReceipt(
            tenant_id,
            (mid,),
            keys,
            entries,
            rewritten,
            len(points),
            vacuumed,
            iceberg,
            spooled,
            published,
        )

    def forget_tenant(self, tenant_id: str) -> EraseReceipt:
        """Erase every memory of the tenant from every tier, snapshot and file."""
        check_tenant(tenant_id)
        self._bury(tenant_id, None)
        ids = set(self.hot.ids(tenant_id))
        ids |= {m.id for m in self.spool.memories(tenant_id, 0)}
        try:
            ids |= {m.id for m in self.warm.scan(tenant_id)}
        except WARM_ERRORS as exc:
            raise self._unavailable("warm", exc, _NOT_ERASED) from None
        cold = memory_table(self.lakehouse, "memories")
        if cold.current_snapshot() is not None:
            scan = cold.scan(
                row_filter=EqualTo("tenant_id", tenant_id), selected_fields=("memory_id",)
            )
            ids |= set(scan.to_arrow().column("memory_id").to_pylist())
        spooled = self.spool.erase(tenant_id, None)
        keys = self.hot.delete_tenant_keys(tenant_id)
        entries = self.hot.erase_stream(tenant_id, None)
        points = self.warm.delete_tenant(tenant_id)
        vacuumed = tuple(self.warm.vacuum())
        if self.cold.index is not None and self.cold.index.delete_tenant(tenant_id):
            vacuumed += tuple(self.cold.index.vacuum())
        iceberg = self._erase_iceberg(EqualTo("tenant_id", tenant_id), tenant_id, None)
        rewritten = self.hot.rewrite_persistence()
        published = self._publish(self._forget_event("forget_tenant", tenant_id, None))
        return EraseReceipt(
            tenant_id,
            tuple(sorted(ids)),
            keys,
            entries,
            rewritten,
            points,
            vacuumed,
            iceberg,
            spooled,
            published,
        )

    def _publish(self, event: dict[str, Any]) -> bool:
        """Publish the erase's event; the erase is done either way (a refusal is logged)."""
        try:
            self.hot.publish(event)
        except StreamRefusedError as exc:
            log.warning("memory erase done, its %s event not published: %s", event["op"], exc)
            return False
        return True

    def _erase_iceberg(
        self, predicate: BooleanExpression, tenant_id: str, memory_id: str | None
    ) -> tuple[TableErase, ...]:
        erased = [
            erase_rows(memory_table(self.lakehouse, spec.name), predicate)
            for spec in (MEMORIES, MEMORY_EVENTS)
        ]
        rejected = memory_table(self.lakehouse, MEMORY_EVENTS_REJECTED.name)
        ids = _rejected_mentioning(rejected, tenant_id, memory_id)
        erased.append(erase_rows(rejected, In("stream_id", ids) if ids else AlwaysFalse()))
        self.cold.rows.forget()  # no erased row stays in this process's cached row groups
        return tuple(erased)

    @staticmethod
    def _forget_event(op: str, tenant_id: str, memory_id: str | None) -> dict[str, Any]:
        now = int(time.time() * 1000)
        event: dict[str, Any] = {"event_id": str(uuid.uuid4()), "ts_ms": now, "op": op}
        return event | {"tenant_id": tenant_id, "memory_id": memory_id}
