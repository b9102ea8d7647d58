"""Redis down, or the warm tier's vector store unavailable (its Edge shard held by another
opener): reads answer from the tiers that respond, erases refuse cleanly."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from lakehouse import Settings
from lakehouse.exceptions import TierUnavailableError
from lakehouse.memory import MemoryStore
from lakehouse.memory import warm as warm_tier
from lakehouse.vectors import EdgeStore


def _spread(mem: MemoryStore) -> tuple[str, str, str]:
    """One memory per tier: cold, warm, hot."""
    now = datetime.now(UTC)
    cold = mem.store("acme", "cold fact about invoices", now=now - timedelta(days=60))
    mem.compact(now=now, hot_max_age=timedelta(0))
    mem.compact(now=now, warm_max_age=timedelta(days=30))
    warm = mem.store("acme", "warm fact about invoices", now=now - timedelta(hours=3))
    mem.compact(now=now)
    hot = mem.store("acme", "hot fact about invoices")
    assert {mem.get("acme", i).tier for i in (cold, warm, hot)} == {"cold", "warm", "hot"}  # type: ignore[union-attr]
    return cold, warm, hot


def test_redis_down_reads_fall_through_and_erase_refuses(
    mem_on_server: MemoryStore, server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    mem = mem_on_server
    cold, warm, hot = _spread(mem)
    server.stop()
    with caplog.at_level(logging.WARNING, logger="lakehouse.memory.store"):
        assert mem.get("acme", warm).tier == "warm"  # type: ignore[union-attr]
        assert mem.get("acme", cold).tier == "cold"  # type: ignore[union-attr]
        assert mem.get("acme", hot) is None  # only Redis held it
        hits = mem.search("acme", "fact about invoices", k=5)
    assert hits.unavailable == ("hot",)
    assert {h.memory.id for h in hits} == {warm, cold}
    assert "hot tier unavailable" in caplog.text
    with pytest.raises(TierUnavailableError, match="AURA_REDIS_URL"):
        mem.forget("acme", warm)
    with pytest.raises(TierUnavailableError, match="AURA_REDIS_URL"):
        mem.compact()
    assert mem.get("acme", warm) is not None  # the refused forget erased nothing


def test_warm_unavailable_search_falls_back_to_hot_and_cold(
    settings: Settings, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    with MemoryStore(settings, redis_client=redis_client) as mem:
        cold, warm, hot = _spread(mem)
        dim = mem.dim
    held = EdgeStore(settings.vectors_path, warm_tier.spec(dim))  # as another process would
    try:
        with MemoryStore(settings, redis_client=redis_client, vector_lock_timeout=0.2) as mem:
            with caplog.at_level(logging.WARNING, logger="lakehouse.memory.store"):
                hits = mem.search("acme", "fact about invoices", k=5)
                assert mem.get("acme", cold).tier == "cold"  # type: ignore[union-attr]
                assert mem.get("acme", hot).tier == "hot"  # type: ignore[union-attr]
                assert mem.get("acme", warm) is None  # only the warm shard held it
            assert hits.unavailable == ("warm",)
            assert {h.memory.id for h in hits} == {hot, cold}
            assert "warm tier unavailable" in caplog.text
            stored = mem.store("acme", "stores need only Redis")  # the hot tier takes writes
            assert mem.get("acme", stored) is not None
            with pytest.raises(TierUnavailableError, match="Qdrant Edge shards"):
                mem.forget("acme", cold)
    finally:
        held.close()
    with MemoryStore(settings, redis_client=redis_client) as mem:  # released: nothing lost
        assert mem.get("acme", warm).tier == "warm"  # type: ignore[union-attr]
        assert mem.get("acme", cold) is not None
