"""Hot and cold tier search rank like a scan of every live, matching memory of the tenant.

The hot tier ranks on the vectors alone and opens records in similarity order; the cold tier
ranks an unfiltered search on ids and vectors, then reads the top rows whole. Both must give
the top ``k`` a full scan gives, past expired, filtered-out and other tenants' memories.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from lakehouse.memory import MemoryStore
from lakehouse.memory.model import Memory


def _brute(memories: list[Memory], query: np.ndarray, k: int) -> list[str]:
    sims = np.asarray([m.vector for m in memories], dtype=np.float32) @ query
    return [memories[i].id for i in np.argsort(-sims, kind="stable")[:k]]


def _load(mem: MemoryStore, n: int) -> tuple[list[Memory], np.ndarray]:
    """``n`` memories of tenant ``a`` (every third with kind x, every fifth expiring in an
    hour) and as many of tenant ``b`` with the same vectors."""
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(n, mem.dim)).astype(np.float32)
    built = []
    for tenant in ("a", "b"):
        for i in range(n):
            built.append(
                mem.new_memory(
                    tenant,
                    f"memory {i}",
                    vector=vectors[i],
                    metadata={"kind": "x" if i % 3 == 0 else "y"},
                    ttl=timedelta(hours=1) if i % 5 == 0 else None,
                )
            )
    mem.hot.put_many(built)
    return [m for m, _, _ in built if m.tenant_id == "a"], vectors


def test_hot_and_cold_search_match_a_full_scan(mem: MemoryStore) -> None:
    memories, vectors = _load(mem, 150)
    mem.cold.put(memories)
    later = int(time.time() * 1000) + 2 * 3600 * 1000  # the hour-long TTLs have passed
    live = [m for m in memories if not m.expired(later)]
    assert len(live) < len(memories)
    query = vectors[0] / np.linalg.norm(vectors[0])  # an expiring memory's own vector
    for k in (1, 5, 40):
        kind_x = [m for m in live if m.metadata["kind"] == "x"]
        for flt, pool in (({}, live), ({"kind": "x"}, kind_x)):
            want = _brute(pool, query, k)
            hot = mem.hot.search("a", query, k, flt, later)
            cold = mem.cold.search("a", query, k, flt, later)
            assert [m.id for m, _ in hot] == want, (k, flt)
            assert [m.id for m, _ in cold] == want, (k, flt)
            assert all(m.tenant_id == "a" for m, _ in hot + cold)
    now = int(datetime.now(UTC).timestamp() * 1000)  # nothing expired yet: vector 0 is first
    assert mem.hot.search("a", query, 1, {}, now)[0][0].id == memories[0].id
    assert mem.cold.search("a", query, 1, {}, now)[0][0].id == memories[0].id
    assert mem.hot.search("nobody", query, 3, {}, now) == []
    assert mem.cold.search("nobody", query, 3, {}, now) == []


def test_hot_search_sees_what_another_store_wrote_since(mem: MemoryStore) -> None:
    """Each store caches its tenants' hot vectors: another store's stores, trims and in-place
    vector changes (key rotation) reach its next search."""
    other = MemoryStore(mem.settings, redis_client=mem.redis, qdrant_client=mem.qdrant)
    try:
        memories, vectors = _load(mem, 200)
        rng = np.random.default_rng(11)
        query = rng.normal(size=mem.dim).astype(np.float32)
        query /= np.linalg.norm(query)
        now = int(time.time() * 1000)
        live = [m for m in memories if not m.expired(now)]
        assert [m.id for m, _ in mem.hot.search("a", query, 5, {}, now)] == _brute(live, query, 5)

        new = other.store("a", "the closest one", vector=query)
        assert mem.hot.search("a", query, 1, {}, now)[0][0].id == new
        other.hot.trim("a", [new])
        assert new not in {m.id for m, _ in mem.hot.search("a", query, 5, {}, now)}

        moved = memories[-1].id  # rotation rewrites a vector in place: it becomes the closest
        assert other.hot.revector("a", lambda _c, v: query if _c == "memory 199" else None) == 1
        assert mem.hot.search("a", query, 1, {}, now)[0][0].id == moved
    finally:
        other.close()


def test_cold_rows_are_read_by_id_from_sorted_row_groups(mem: MemoryStore) -> None:
    """The cold tier writes each day sorted by id in small row groups and reads memories by id
    from the row groups that hold them, also after an erase rewrote the day under its index."""
    import pyarrow.parquet as pq

    rng = np.random.default_rng(5)
    days = [datetime(2026, 11, d, 12, tzinfo=UTC) for d in (1, 2, 3)]
    built = [
        mem.new_memory("a", f"cold {i}", vector=rng.normal(size=mem.dim), now=days[i % 3])[0]
        for i in range(6300)
    ]
    mem.cold.put(built)
    table = mem.cold.table
    files = [t.file.file_path for t in table.scan().plan_files()]
    assert len(files) == 3
    for path in files:
        meta = pq.ParquetFile(path.removeprefix("file://")).metadata
        assert meta.num_row_groups > 1  # small row groups: a lookup reads one, not the day
        ids = pq.read_table(path.removeprefix("file://"), columns=["memory_id"])["memory_id"]
        assert ids.to_pylist() == sorted(ids.to_pylist())
    now = int(time.time() * 1000)
    wanted = [built[i] for i in (0, 1, 2, 1000, 6299)]
    got = mem.cold.fetch("a", wanted, now)
    assert {i: (m.content, m.created_ms) for i, m in got.items()} == {
        m.id: (m.content, m.created_ms) for m in wanted
    }
    assert mem.cold.fetch("b", wanted, now) == {}  # another tenant's ids read as absent

    mem.forget("a", built[0].id)  # rewrites day 1: the index's file of that day is gone
    got = mem.cold.fetch("a", wanted, now)
    assert set(got) == {m.id for m in wanted[1:]}


def test_cold_reads_by_id_answer_whole_when_the_row_group_cache_is_smaller_than_a_read(
    mem: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lookup needing more row groups than the cache keeps answers every row, first and
    again (found at 1M memories: the groups of one lookup evicted each other)."""
    from lakehouse.memory import coldrows

    monkeypatch.setattr(coldrows, "CACHED_ROWS", 1024)  # one row group
    rng = np.random.default_rng(6)
    day = datetime(2026, 11, 1, 12, tzinfo=UTC)
    built = [
        mem.new_memory("a", f"cold {i}", vector=rng.normal(size=mem.dim), now=day)[0]
        for i in range(4000)
    ]
    mem.cold.put(built)
    wanted = sorted(built, key=lambda m: m.id)[::500]  # one id in each row group, and more
    now = int(time.time() * 1000)
    for _ in range(3):
        got = mem.cold.fetch("a", wanted, now)
        assert {i: m.content for i, m in got.items()} == {m.id: m.content for m in wanted}
    assert mem.cold.rows._groups.rows <= 1024


def test_the_best_hot_candidates_come_in_the_order_a_stable_full_sort_gives() -> None:
    from lakehouse.memory.hot import _best_first

    rng = np.random.default_rng(7)
    for sims in (
        rng.normal(size=5000).astype(np.float32),
        rng.integers(0, 5, size=3000).astype(np.float32),  # many ties, also at the cut
        rng.normal(size=10).astype(np.float32),
    ):
        full = np.argsort(-sims, kind="stable")
        for n in (1, 32, 128, len(sims)):
            best = _best_first(sims, n)
            assert len(best) >= min(n, len(sims))
            assert best.tolist() == full[: len(best)].tolist()
