"""store / get / search over the three tiers, TTL, decay and tenant isolation."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from lakehouse import Settings
from lakehouse.exceptions import ConfigurationError, ValidationError
from lakehouse.memory import AsyncMemoryStore, HashingEmbedder, MemoryStore, SentenceEmbedder

# Redis enforces TTLs on the real clock: test times are anchored at the present.
T0 = datetime.now(UTC).replace(microsecond=0)


def unit(dim: int, i: int) -> list[float]:
    v = np.zeros(dim)
    v[i] = 1.0
    return v.tolist()


def test_store_get_roundtrip_and_text_search(mem: MemoryStore) -> None:
    a = mem.store("acme", "the user prefers short answers", metadata={"kind": "pref"})
    mem.store("acme", "deploys happen on tuesdays", metadata={"kind": "fact"})
    got = mem.get("acme", a)
    assert got is not None and got.content == "the user prefers short answers"
    assert got.metadata == {"kind": "pref"} and got.tier == "hot"
    hits = mem.search("acme", "prefers short answers", k=1)
    assert [h.memory.id for h in hits] == [a]
    assert (
        mem.search("acme", "prefers short answers", k=5, filters={"kind": "fact"})[0].memory.id != a
    )


def test_search_falls_through_tiers_with_one_ranking(mem: MemoryStore) -> None:
    dim = mem.dim
    cold = mem.store("acme", "cold", vector=unit(dim, 0), now=T0 - timedelta(days=60))
    warm = mem.store("acme", "warm", vector=unit(dim, 1), now=T0 - timedelta(days=2))
    report = mem.compact(now=T0 - timedelta(days=1), warm_max_age=timedelta(days=30))
    assert report.hot_to_warm == 2 and report.warm_to_cold == 1
    hot = mem.store("acme", "hot", vector=unit(dim, 2), now=T0)
    assert {mem.get("acme", i, now=T0).tier for i in (cold, warm, hot)} == {"hot", "warm", "cold"}  # type: ignore[union-attr]
    # A query equally close to all three: the cold one (most similar) still ranks first.
    query = (
        np.array(unit(dim, 0)) * 0.8 + np.array(unit(dim, 1)) * 0.4 + np.array(unit(dim, 2)) * 0.3
    )
    hits = mem.search("acme", query, k=3, now=T0)
    assert [h.memory.id for h in hits] == [cold, warm, hot]
    assert [h.memory.tier for h in hits] == ["cold", "warm", "hot"]
    assert [h.memory.id for h in mem.search("acme", query, k=3, tiers=("hot",), now=T0)] == [hot]


def test_ttl_hides_everywhere_and_compaction_purges(mem: MemoryStore) -> None:
    dim = mem.dim
    ids = [
        mem.store("acme", f"m{i}", vector=unit(dim, i), ttl=timedelta(hours=2), now=T0)
        for i in range(3)
    ]
    mem.compact(now=T0 + timedelta(minutes=90))  # all three to warm
    mem.compact(now=T0 + timedelta(minutes=90), warm_max_points=1)  # two oldest to cold
    tiers = sorted(mem.get("acme", i, now=T0 + timedelta(minutes=91)).tier for i in ids)  # type: ignore[union-attr]
    assert tiers == ["cold", "cold", "warm"]
    later = T0 + timedelta(hours=3)
    assert all(mem.get("acme", i, now=later) is None for i in ids)
    assert mem.search("acme", unit(dim, 0), k=10, now=later) == []
    report = mem.compact(now=later)
    assert (report.expired_warm, report.expired_cold) == (1, 2)
    assert mem.warm.count() == 0
    assert mem.cold.table.scan().to_arrow().num_rows == 0
    assert mem.compact(now=later).expired_cold == 0  # idempotent


def test_hot_ttl_is_enforced_by_redis_and_by_reads(mem: MemoryStore) -> None:
    mid = mem.store("acme", "short lived", ttl=timedelta(milliseconds=200))
    assert mem.get("acme", mid) is not None
    assert mem.get("acme", mid, now=datetime.now(UTC) + timedelta(seconds=1)) is None
    import time

    time.sleep(0.4)
    assert mem.redis.exists(mem.hot.key("acme", mid)) == 0
    assert mem.get("acme", mid) is None
    assert mem.compact().expired_hot == 1  # the stale index entry


def test_decay_ranks_and_access_refreshes(mem: MemoryStore) -> None:
    dim = mem.dim
    query = np.ones(dim)
    old = mem.store("acme", "old", vector=query, importance=0.9, now=T0 - timedelta(days=30))
    new = mem.store("acme", "new", vector=query, importance=0.9, now=T0)
    assert [h.memory.id for h in mem.search("acme", query, k=2, now=T0)] == [new, old]
    mem.get("acme", old, now=T0 + timedelta(hours=1))  # access refreshes the decay clock
    hits = mem.search("acme", query, k=2, now=T0 + timedelta(hours=1))
    assert hits[0].memory.id == old
    assert hits[0].similarity == pytest.approx(hits[1].similarity)
    # Importance weighs in, decay never hides: an unimportant memory is still returned.
    low = mem.store("acme", "low", vector=query, importance=0.0, now=T0)
    assert low in [h.memory.id for h in mem.search("acme", query, k=3, now=T0)]


def test_get_refreshes_access_in_every_tier_and_leaves_none_for_a_miss(mem: MemoryStore) -> None:
    """The hot get writes the access refresh in its own round trip, hit or miss; a memory no
    tier holds (or another tenant's) keeps no access time."""
    warm = mem.store("acme", "warm one", vector=np.ones(mem.dim), now=T0)
    mem.compact(now=T0 + timedelta(hours=2))  # to warm
    hot = mem.store("acme", "hot one", vector=np.ones(mem.dim), now=T0)
    at = T0 + timedelta(minutes=5)
    assert [mem.get("acme", mid, now=at).tier for mid in (hot, warm)] == ["hot", "warm"]  # type: ignore[union-attr]
    assert mem.hot.access_times("acme", [hot, warm]) == {
        hot: int(at.timestamp() * 1000),
        warm: int(at.timestamp() * 1000),
    }
    nobody = str(uuid.uuid4())
    assert mem.get("acme", nobody, now=at) is None
    assert mem.get("other", hot, now=at) is None  # another tenant's id
    assert mem.hot.access_times("acme", [nobody]) == {}
    assert mem.hot.access_times("other", [hot]) == {}
    assert mem.redis.exists(mem.hot.access("other")) == 0


def test_tenant_isolation_in_every_tier(mem: MemoryStore) -> None:
    dim = mem.dim
    a_ids = [mem.store("tenant-a", f"secret of a {i}", vector=unit(dim, i)) for i in range(3)]
    now = datetime.now(UTC)
    mem.compact(now=now + timedelta(hours=2))  # all to warm
    mem.compact(now=now + timedelta(hours=2), warm_max_points=1)  # two to cold
    a_hot = mem.store("tenant-a", "hot secret of a", vector=unit(dim, 3))
    b = mem.store("tenant-b", "b's own", vector=unit(dim, 0), metadata={"tenant_id": "tenant-a"})
    for mid in [*a_ids, a_hot]:
        assert mem.get("tenant-a", mid) is not None
        assert mem.get("tenant-b", mid) is None
    adversarial = [{"tenant_id": "tenant-a"}, {}]
    for flt in adversarial:
        for i in range(4):
            ids = {h.memory.id for h in mem.search("tenant-b", unit(dim, i), k=50, filters=flt)}
            assert ids <= {b}
    for bad in ("tenant-a:m", "tenant-*", "", "a b"):
        with pytest.raises(ValidationError):
            mem.search(bad, unit(dim, 0))
    assert mem.get("tenant-b", "not-a-uuid") is None
    assert mem.get("tenant-b", str(uuid.uuid4())) is None
    receipt = mem.forget("tenant-b", a_hot)  # another tenant's id: nothing is removed
    assert not receipt.found
    assert mem.get("tenant-a", a_hot) is not None
    with pytest.raises(ValidationError):
        mem.search("tenant-b", unit(dim, 0), filters={"metadata.x": 1})


def test_validation_errors_say_what_to_do(mem: MemoryStore) -> None:
    with pytest.raises(ValidationError, match="dimensions"):
        mem.store("acme", "x", vector=[1.0, 2.0])
    with pytest.raises(ValidationError, match="importance"):
        mem.store("acme", "x", importance=2)
    with pytest.raises(ValidationError, match="ttl"):
        mem.store("acme", "x", ttl=timedelta(0))


def test_hashing_embedder_is_deterministic_and_lexical() -> None:
    e = HashingEmbedder()
    assert np.array_equal(e.embed("Hello world"), HashingEmbedder().embed("hello   world"))
    near = float(e.embed("deploys on tuesday") @ e.embed("deploy on tuesdays"))
    far = float(e.embed("deploys on tuesday") @ e.embed("quantum chromodynamics"))
    assert near > 0.5 > far


def test_sentence_embedder_missing_dependency_is_a_clear_error() -> None:
    # find_spec, not an import: importing sentence-transformers (torch) takes seconds.
    if importlib.util.find_spec("sentence_transformers") is not None:
        pytest.skip("sentence-transformers is installed; the missing-dependency path is moot")
    with pytest.raises(ConfigurationError, match="embeddings extra"):
        SentenceEmbedder()


def test_async_store(settings: Settings, redis_client) -> None:  # type: ignore[no-untyped-def]
    async def run() -> None:
        async with AsyncMemoryStore(settings, redis_client=redis_client) as mem:
            mid = await mem.store("acme", "async memory")
            got = await mem.get("acme", mid)
            assert got is not None and got.content == "async memory"
            hits = await mem.search("acme", "async memory", 1)
            assert hits[0].memory.id == mid
            assert (await mem.forget("acme", mid)).redis_keys_deleted == 1
            assert await mem.get("acme", mid) is None

    asyncio.run(run())


@pytest.mark.process
def test_another_process_stores_and_reads_while_a_store_is_open(
    mem: MemoryStore, aura_env: dict[str, str]
) -> None:
    # An agent's process beside a compaction run or a CLI call: both open the same AURA_HOME.
    mine = mem.store("t1", "written by the test process")
    code = (
        "import sys\n"
        "from lakehouse.memory import MemoryStore\n"
        "with MemoryStore() as m:\n"
        "    assert m.get('t1', sys.argv[1]) is not None\n"
        "    print(m.store('t1', 'written by another process'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, mine],
        env={**os.environ, **aura_env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    theirs = mem.get("t1", done.stdout.split()[-1])
    assert theirs is not None and theirs.content == "written by another process"
