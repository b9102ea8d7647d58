"""Redis down: `store` still succeeds into the durable local spool, replayed when Redis answers."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from datetime import timedelta
from typing import Any, cast

import numpy as np
import pytest
import redis
from qdrant_client import QdrantClient

from lakehouse import Settings
from lakehouse.exceptions import TierUnavailableError
from lakehouse.memory import STREAM, AsyncMemoryStore, Memory, MemoryStore, new_key
from tests.helpers import dead_port


def _store_events(client: redis.Redis) -> list[str]:
    """Memory ids of the ``store`` events in the stream, in order."""
    entries = cast(list[Any], client.xrange(STREAM))
    events = [json.loads(fields[b"data"]) for _, fields in entries]
    return [e["memory_id"] for e in events if e["op"] == "store"]


def _spooled(settings: Settings, content: str) -> str:
    """Store ``content`` for tenant acme through a store opened on a dead Redis port."""
    dead = replace(settings, redis_url=f"redis://127.0.0.1:{dead_port()}/0")
    with MemoryStore(dead) as down:
        mid = down.store("acme", content)
        assert down.get("acme", mid).tier == "spool"  # type: ignore[union-attr]
    return mid


def test_store_with_redis_down_spools_reads_and_replays_once(
    mem_on_server: MemoryStore, server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    mem = mem_on_server
    before = mem.store("acme", "stored while Redis answered")
    server.stop()
    with caplog.at_level(logging.WARNING, logger="lakehouse.memory.store"):
        first = mem.store("acme", "spooled fact about invoices", metadata={"kind": "a"})
        second = mem.store("acme", "spooled fact about refunds", metadata={"kind": "b"})
    assert "local spool" in caplog.text
    assert mem.spool.count() == 2
    found = mem.get("acme", first)
    assert found is not None and found.tier == "spool"
    assert found.content == "spooled fact about invoices" and found.metadata == {"kind": "a"}
    assert mem.get("other", first) is None  # tenant-checked in the spool too
    hits = mem.search("acme", "spooled fact about invoices", k=5)
    assert hits.unavailable == ("hot",) and hits[0].memory.id == first
    assert [h.memory.id for h in mem.search("acme", "fact", k=5, filters={"kind": "b"})] == [second]
    assert mem.search("other", "spooled fact", k=5) == []
    with pytest.raises(TierUnavailableError, match="AURA_REDIS_URL"):
        mem.drain_spool()
    assert mem.spool.count() == 2  # nothing acknowledged is lost
    server.start()  # an empty server: it keeps nothing on disk
    back = mem.get("acme", first)  # the next call replays the spool first
    assert back is not None and back.tier == "hot"
    assert mem.spool.count() == 0
    assert _store_events(mem.redis) == [first, second]
    assert mem.drain_spool() == 0 and _store_events(mem.redis) == [first, second]
    assert mem.get("acme", second).tier == "hot"  # type: ignore[union-attr]
    assert mem.get("acme", before) is None  # the server lost it, not the spool


def test_a_store_on_a_dead_port_is_replayed_by_the_next_process(
    settings: Settings, redis_client: redis.Redis
) -> None:
    """Another process (another MemoryStore on the same AURA_HOME) drains what one spooled."""
    mid = _spooled(settings, "kept on disk while Redis was away")
    with MemoryStore(settings, redis_client=redis_client) as up:
        assert up.spool.count() == 0  # opening the store drained it
        assert up.get("acme", mid).tier == "hot"  # type: ignore[union-attr]
        assert _store_events(redis_client) == [mid]
        report = up.compact(hot_max_age=timedelta(0))
        assert report.spool_replayed == 0 and report.hot_to_warm == 1


def test_replay_after_a_crash_writes_nothing_twice(
    settings: Settings, redis_client: redis.Redis
) -> None:
    mid = _spooled(settings, "replayed exactly once")
    with MemoryStore(settings, redis_client=redis_client) as up:
        assert _store_events(redis_client) == [mid] and up.spool.count() == 0
        # A drain that wrote to Redis and crashed before deleting its row leaves both behind.
        memory = up.get("acme", mid)
        assert memory is not None
        up.spool.put(memory, np.asarray(memory.vector), {"op": "store"})
        assert up.drain_spool() == 0  # Redis already holds it: only the row goes
        assert up.spool.count() == 0 and _store_events(redis_client) == [mid]


def test_forget_erases_spooled_copies(
    mem_on_server: MemoryStore, server: Any, settings: Settings
) -> None:
    mem = mem_on_server
    server.stop()
    secret = mem.store("acme", "the spooled secret is 7Q-ALPHA")
    other = mem.store("acme", "another spooled memory")
    with pytest.raises(TierUnavailableError, match="AURA_REDIS_URL"):
        mem.forget("acme", secret)  # the tombstone needs Redis: nothing is erased
    assert mem.get("acme", secret) is not None
    server.start()
    receipt = mem.forget("acme", secret)  # before any replay: the copy is only in the spool
    assert receipt.spool_entries_deleted == 1 and receipt.found
    assert b"7Q-ALPHA" not in mem.spool.path.read_bytes()
    assert mem.get("acme", secret) is None
    # A spool copy the erase did not see (another home's spool) is dropped, never replayed.
    assert mem.get("acme", other).tier == "hot"  # type: ignore[union-attr]
    stray = Memory(secret, "acme", "the spooled secret is 7Q-ALPHA", (1.0,) * mem.dim)
    mem.spool.put(stray, np.ones(mem.dim, dtype=np.float32), {"op": "store"})
    assert mem.drain_spool() == 0 and mem.spool.count() == 0
    assert mem.get("acme", secret) is None and secret not in _store_events(mem.redis)
    server.stop()
    late = mem.store("acme", "spooled again")
    kept = mem.store("globex", "globex spooled memory")
    server.start()
    tenant_receipt = mem.forget_tenant("acme")
    assert tenant_receipt.spool_entries_deleted == 1
    assert tenant_receipt.memory_ids == (late,)  # the restarted server holds nothing else
    assert mem.spool.count() == 1  # globex's memory stays spooled
    assert mem.get("acme", late) is None
    assert mem.get("globex", kept) is not None


def test_async_store_spools_and_another_store_drains(
    settings: Settings, redis_client: redis.Redis
) -> None:
    async def scenario() -> None:
        up = AsyncMemoryStore(settings, redis_client=redis_client)
        dead = replace(settings, redis_url=f"redis://127.0.0.1:{dead_port()}/0")
        scratch = QdrantClient(":memory:")
        down = AsyncMemoryStore(dead, qdrant_client=scratch)
        try:
            mid = await down.store("acme", "stored by an agent while Redis was away")
            assert (await down.get("acme", mid)).tier == "spool"  # type: ignore[union-attr]
            with pytest.raises(TierUnavailableError, match="AURA_REDIS_URL"):
                await down.drain_spool()
            assert await up.drain_spool() == 1
            assert (await up.get("acme", mid)).tier == "hot"  # type: ignore[union-attr]
            assert _store_events(redis_client) == [mid]
        finally:
            await down.aclose()
            scratch.close()
            await up.aclose()

    asyncio.run(scenario())


def test_the_spool_is_sealed_with_the_memory_key(
    settings: Settings, redis_client: redis.Redis
) -> None:
    key = new_key()
    keyed = settings.with_overrides(memory_key=key, memory_old_keys=())
    dead = replace(keyed, redis_url=f"redis://127.0.0.1:{dead_port()}/0")
    with MemoryStore(dead) as down:
        mid = down.store("acme", "spooled secret 9Z-OMEGA", metadata={"who": "HIDDEN-NAME"})
        found = down.get("acme", mid)
        assert found is not None and found.content == "spooled secret 9Z-OMEGA"
        raw = down.spool.path.read_bytes()
        assert b"9Z-OMEGA" not in raw and b"HIDDEN-NAME" not in raw
    new = new_key()
    rotated = keyed.with_overrides(memory_key=new, memory_old_keys=(key,))
    with MemoryStore(rotated, redis_client=redis_client) as up:
        assert up.get("acme", mid).content == "spooled secret 9Z-OMEGA"  # type: ignore[union-attr]
        up.rotate_key()
    with MemoryStore(keyed.with_overrides(memory_key=new), redis_client=redis_client) as only:
        assert only.get("acme", mid).metadata == {"who": "HIDDEN-NAME"}  # type: ignore[union-attr]
