"""An erase racing ingestion or compaction: the erased memory is never written back."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import numpy as np

from lakehouse import Lakehouse
from lakehouse.memory import MemoryStore, ingest_memory_events
from lakehouse.memory.events import STREAM, publish_event
from lakehouse.memory.ingest import read_day_events
from lakehouse.memory.tables import memory_table
from lakehouse.publish.wap import Accepted, accept_all
from lakehouse.table.writer import Lineage

SECRET = "tombstone secret QX-5521"


def _store_event(mem: MemoryStore, tenant: str, memory_id: str, content: str) -> dict[str, object]:
    """The stream entry a store of ``memory_id`` writes (e.g. one replayed or still in flight)."""
    now = int(datetime.now(UTC).timestamp() * 1000)
    return {
        "event_id": f"replay-{memory_id}",
        "ts_ms": now,
        "op": "store",
        "memory_id": memory_id,
        "tenant_id": tenant,
        "content": content,
        "metadata": {},
        "importance": 0.5,
        "created_ms": now,
    }


def _event_contents(mem: MemoryStore, day: date) -> list[str | None]:
    return read_day_events(mem.lakehouse, day).column("content").to_pylist()


def test_event_published_after_forget_is_not_ingested(mem: MemoryStore) -> None:
    today = datetime.now(UTC).date()
    mid = mem.store("acme", SECRET)
    keep = mem.store("acme", "kept memory")
    mem.forget("acme", mid)
    publish_event(mem.redis, _store_event(mem, "acme", mid, SECRET))  # after the erase
    report = ingest_memory_events(mem.lakehouse, mem.redis, today, audit=accept_all)
    contents = _event_contents(mem, today)
    assert SECRET not in contents and "kept memory" in contents
    assert report.dropped == 1
    assert mem.get("acme", mid) is None and mem.get("acme", keep) is not None
    # The dropped entry is acknowledged: a second ingestion does not see it again.
    assert ingest_memory_events(mem.lakehouse, mem.redis, today, audit=accept_all).read == 0


def test_forget_during_ingestion_is_not_undone(mem: MemoryStore) -> None:
    """forget runs after ingestion read the stream and wrote its branch, before the publish."""
    today = datetime.now(UTC).date()
    mid = mem.store("acme", SECRET)
    mem.store("acme", "kept memory")
    calls: list[str] = []

    def forget_then_accept(
        lh: Lakehouse, table: str, branch: str, day: date | None, lineage: Lineage
    ) -> Accepted:
        if not calls:  # the erase lands once, while the first attempt's branch is audited
            mem.forget("acme", mid)
        calls.append(branch)
        return accept_all(lh, table, branch, day, lineage)

    report = ingest_memory_events(mem.lakehouse, mem.redis, today, audit=forget_then_accept)
    assert report.dropped == 1
    contents = _event_contents(mem, today)
    assert SECRET not in contents and "kept memory" in contents
    table = memory_table(mem.lakehouse, "memory_events")
    for snap in table.metadata.snapshots:  # no snapshot of any ref keeps it
        rows = table.scan(snapshot_id=snap.snapshot_id, selected_fields=("content",)).to_arrow()
        assert SECRET not in rows.column("content").to_pylist()


def test_forget_tenant_tombstones_older_events(mem: MemoryStore) -> None:
    today = datetime.now(UTC).date()
    mid = mem.store("acme", SECRET)
    stale = _store_event(mem, "acme", mid, SECRET)
    mem.forget_tenant("acme")
    publish_event(mem.redis, stale)  # created before the tenant erase: dropped
    later = mem.store("acme", "stored after the erase")  # created after: kept
    ingest_memory_events(mem.lakehouse, mem.redis, today, audit=accept_all)
    contents = _event_contents(mem, today)
    assert SECRET not in contents and "stored after the erase" in contents
    assert mem.get("acme", later) is not None
    # Another tenant's forget of the same id tombstones nothing of acme's.
    other = mem.store("acme", "acme again")
    mem.forget("intruder", other)
    publish_event(mem.redis, _store_event(mem, "acme", other, "acme again"))
    ingest_memory_events(mem.lakehouse, mem.redis, today, audit=accept_all)
    assert "acme again" in _event_contents(mem, today)


def test_compaction_never_resurrects_a_forgotten_memory(mem: MemoryStore) -> None:
    now = datetime.now(UTC)
    mid = mem.store("acme", SECRET)
    keep = mem.store("acme", "kept memory")
    stale = mem.hot.load("acme", [mid])[0]  # what a compaction that read before forget holds
    mem.forget("acme", mid)
    # The stale copy lands in hot and in warm after the erase (a compaction mid-flight).
    vec = np.asarray(stale.vector, dtype=np.float32)
    mem.hot.put(stale, vec, {"event_id": "x", "ts_ms": stale.created_ms, "op": "store"})
    mem.warm.put([stale])
    report = mem.compact(now=now + timedelta(hours=2), warm_max_points=0)
    assert report.warm_to_cold == 1  # only the kept memory
    assert mem.warm.held([mid, keep]) == set()
    cold = mem.cold.table.scan().to_arrow()
    assert cold.column("memory_id").to_pylist() == [keep]
    assert mem.get("acme", mid) is None
    assert not mem.hot.ids("acme")
    entries = [json.loads(f[b"data"]) for _, f in mem.redis.xrange(STREAM)]
    assert all(e.get("content") != SECRET for e in entries if e.get("event_id") != "x")
