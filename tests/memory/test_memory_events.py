"""The aura:events:memory stream → memory_events exactly once; crash-safe tier moves."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from lakehouse.memory import STREAM, MemoryStore, ingest_memory_events
from lakehouse.memory._glue import GROUP, memory_table, read_day_events, tier_move


def test_every_write_is_ingested_exactly_once(mem: MemoryStore) -> None:
    today = datetime.now(UTC).date()
    ids = [mem.store("acme", f"event {i}") for i in range(5)]
    mem.redis.xadd(STREAM, {"data": b"{not json"})
    mem.redis.xadd(STREAM, {"data": json.dumps({"tenant_id": "acme", "memory_id": "x"})})
    first = ingest_memory_events(mem.lakehouse, mem.redis, today)
    assert (first.written, first.rejected) == (5, 2)
    rows = read_day_events(mem.lakehouse, today)
    assert sorted(rows["memory_id"].to_pylist()) == sorted(ids)
    assert set(rows["op"].to_pylist()) == {"store"}
    # A crash after the commit and before XACK: the replay adds nothing.
    mem.store("acme", "event 5")
    entries = mem.redis.xreadgroup(GROUP, "ingest", {STREAM: ">"})
    assert len(entries[0][1]) == 1  # delivered, now pending, never acknowledged
    second = ingest_memory_events(mem.lakehouse, mem.redis, today)
    third = ingest_memory_events(mem.lakehouse, mem.redis, today)
    assert (second.written, third.read) == (1, 0)
    assert read_day_events(mem.lakehouse, today).num_rows == 6
    # Re-delivering everything (a reset group) is absorbed by the event_id deduplication.
    mem.redis.xgroup_setid(STREAM, GROUP, "0")
    replay = ingest_memory_events(mem.lakehouse, mem.redis, today)
    assert (replay.written, replay.duplicates) == (0, 6)
    rejected = memory_table(mem.lakehouse, "memory_events_rejected").scan().to_arrow()
    assert rejected.num_rows == 2 and rejected["tenant_id"].to_pylist().count("acme") == 1


def test_forget_is_an_event_without_content(mem: MemoryStore) -> None:
    today = datetime.now(UTC).date()
    mid = mem.store("acme", "to be forgotten")
    mem.forget("acme", mid)
    ingest_memory_events(mem.lakehouse, mem.redis, today)
    rows = read_day_events(mem.lakehouse, today).to_pylist()
    assert [(r["op"], r["memory_id"], r["content"]) for r in rows] == [("forget", mid, None)]


def test_crash_between_copy_and_trim_loses_nothing(mem: MemoryStore) -> None:
    now = datetime.now(UTC)
    ids = [mem.store("acme", f"moving {i}") for i in range(3)]
    hot = mem.hot.load("acme", ids)

    def crash(_: object) -> None:
        raise RuntimeError("killed between copy and trim")

    with pytest.raises(RuntimeError):
        tier_move(
            hot, mem.warm.put, lambda m: mem.warm.held([x.id for x in m]), crash, lambda m: m.id
        )
    assert mem.warm.count() == 3 and mem.hot.count("acme") == 3  # both hold them
    hits = mem.search("acme", "moving", k=10)
    assert sorted(h.memory.id for h in hits) == sorted(ids)  # counted once
    report = mem.compact(now=now + timedelta(hours=2))
    assert report.hot_to_warm == 3 and mem.hot.count("acme") == 0 and mem.warm.count() == 3
    assert mem.compact(now=now + timedelta(hours=2)).hot_to_warm == 0  # idempotent
    # warm → cold, crash before trim, rerun: cold holds each memory once.
    warm = mem.warm.scan()
    with pytest.raises(RuntimeError):
        tier_move(
            warm, mem.cold.put, lambda m: mem.cold.held([x.id for x in m]), crash, lambda m: m.id
        )
    assert mem.compact(now=now + timedelta(hours=2), warm_max_points=0).warm_to_cold == 3
    cold = mem.cold.table.scan().to_arrow()
    assert sorted(cold["memory_id"].to_pylist()) == sorted(ids)
    assert all(mem.get("acme", i).tier == "cold" for i in ids)  # type: ignore[union-attr]


def test_hot_per_tenant_count_limit(mem: MemoryStore) -> None:
    ids = [
        mem.store("acme", f"n{i}", now=datetime.now(UTC) + timedelta(seconds=i)) for i in range(5)
    ]
    report = mem.compact(hot_max_per_tenant=2)
    assert report.hot_to_warm == 3
    assert sorted(mem.hot.ids("acme")) == sorted(ids[3:])
