"""Erase tombstones: erased memory ids (and erased tenants) that no later write may resurrect.

``forget`` records its memory id, and ``forget_tenant`` its tenant with the erase time, in the
Redis hash :data:`.keys.TOMBSTONES` (in the memory stream's slot) *before* it erases anything.
Every writer that copies memories between places checks the tombstones twice: before it writes
(skip erased ones) and after (erase what an erase that ran in between did not see):

- event ingestion (:func:`lakehouse.memory.ingest.ingest_memory_events`) drops erased
  ``store`` events, and after publishing erases from ``memory_events`` any it wrote that were
  tombstoned meanwhile;
- compaction (hot → warm, warm → cold) skips erased memories, and deletes from the
  destination any that were tombstoned while it copied.

Whichever order the two run in, the erase or the second check removes the copy. A tenant
tombstone covers every memory and event of the tenant created at or before the erase
(millisecond resolution). Tombstones hold ids and times only, never content; they are kept
for good (a few dozen bytes each).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from lakehouse.memory.keys import TOMBSTONES, rename_untagged

_ALL = "*"  # the field suffix of a whole-tenant tombstone (memory ids are UUIDs)


def _field(tenant_id: str, memory_id: str | None) -> str:
    return f"{tenant_id}:{memory_id or _ALL}"


def bury(client: Any, tenant_id: str, memory_id: str | None, now_ms: int) -> None:
    """Record that ``memory_id`` of the tenant (every memory when None) is erased at ``now_ms``."""
    client.hset(TOMBSTONES, _field(tenant_id, memory_id), now_ms)


def erased(client: Any, items: Iterable[tuple[str, str, int]]) -> set[str]:
    """The memory ids among ``(tenant_id, memory_id, created_ms)`` that an erase covers."""
    items = list(items)
    if not items:
        return set()
    rename_untagged(client)  # tombstones written before the hash tag are read too
    tenants = sorted({t for t, _, _ in items})
    fields = [_field(t, m) for t, m, _ in items] + [_field(t, None) for t in tenants]
    values = cast(list[bytes | None], client.hmget(TOMBSTONES, fields))
    by_tenant = {
        t: int(v) for t, v in zip(tenants, values[len(items) :], strict=True) if v is not None
    }
    out = set()
    for (tenant, memory_id, created_ms), value in zip(items, values, strict=False):
        whole = by_tenant.get(tenant)
        if value is not None or (whole is not None and created_ms <= whole):
            out.add(memory_id)
    return out


def recorded(client: Any, tenant_id: str, memory_id: str | None) -> bool:
    """Whether an erase of ``memory_id`` of the tenant (of the whole tenant when None) was
    recorded: a ``forget`` event without its tombstone was not published by an erase."""
    rename_untagged(client)
    return bool(client.hexists(TOMBSTONES, _field(tenant_id, memory_id)))
