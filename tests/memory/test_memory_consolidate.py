"""Compaction consolidates near-duplicate memories of a tenant, keeping provenance."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from lakehouse.exceptions import ValidationError
from lakehouse.memory import MemoryStore
from lakehouse.memory.consolidate import PROVENANCE

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def _vectors(dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    base = rng.normal(size=dim)
    near = base + rng.normal(scale=0.02, size=dim)  # cosine ≈ 0.9998 with base
    far = rng.normal(size=dim)
    return base, near, far


def test_near_duplicates_collapse_into_one_survivor_per_tier(mem: MemoryStore) -> None:
    base, near, far = _vectors(mem.dim)
    style = {"topic": "style"}
    low = mem.store(
        "acme", "the user prefers short answers", vector=base, importance=0.3,
        metadata=style, now=NOW - timedelta(hours=3),
    )  # fmt: skip
    high = mem.store(
        "acme", "The user prefers  short answers.", vector=near, importance=0.8,
        metadata=style, now=NOW - timedelta(hours=2),
    )  # fmt: skip
    # Not near-duplicates of those: other metadata, other text, another vector, another tenant.
    other_meta = mem.store("acme", "the user prefers short answers", vector=base,
                           metadata={"topic": "other"}, now=NOW - timedelta(hours=2))  # fmt: skip
    other_text = mem.store("acme", "the user dislikes long meetings", vector=base,
                           metadata=style, now=NOW - timedelta(hours=2))  # fmt: skip
    other_vec = mem.store("acme", "the user prefers short answers", vector=far,
                          metadata=style, now=NOW - timedelta(hours=2))  # fmt: skip
    globex = mem.store("globex", "the user prefers short answers", vector=base,
                       metadata=style, now=NOW - timedelta(hours=2))  # fmt: skip
    numbered = [  # the same but for a number: kept apart
        mem.store(
            "acme",
            f"order {n} shipped to the customer today",
            vector=base,
            metadata=style,
            now=NOW - timedelta(hours=2),
        )  # fmt: skip
        for n in (1234, 1235)
    ]
    touched = NOW - timedelta(minutes=30)
    assert mem.get("acme", low, now=touched) is not None  # the absorbed one was read last

    report = mem.compact(now=NOW, hot_max_age=timedelta(hours=1))
    assert (report.consolidated_hot, report.consolidated_warm) == (1, 0)
    assert report.hot_to_warm == 7
    assert mem.get("acme", low, now=NOW) is None  # absorbed: gone from every read
    survivor = mem.get("acme", high, now=NOW)
    assert survivor is not None and survivor.tier == "warm"
    assert survivor.importance == 0.8 and survivor.metadata == {**style, PROVENANCE: [low]}
    assert survivor.last_access_ms == int(touched.timestamp() * 1000)
    for kept in (other_meta, other_text, other_vec, *numbered):
        assert mem.get("acme", kept, now=NOW) is not None
    assert mem.get("globex", globex, now=NOW) is not None
    found = {h.memory.id for h in mem.search("acme", base, k=10, now=NOW)}
    assert low not in found and high in found

    # A later, more important near-duplicate absorbs the warm survivor and its provenance.
    later = mem.store("acme", "the user prefers short answers!", vector=base, importance=0.9,
                      metadata=style, now=NOW + timedelta(hours=1))  # fmt: skip
    again = mem.compact(now=NOW + timedelta(hours=3), hot_max_age=timedelta(hours=1))
    assert (again.consolidated_hot, again.consolidated_warm) == (0, 1)
    assert mem.get("acme", high, now=NOW) is None
    merged = mem.get("acme", later, now=NOW + timedelta(hours=3))
    assert merged is not None and merged.metadata[PROVENANCE] == sorted([low, high])
    assert mem.compact(now=NOW + timedelta(hours=3)).consolidated_warm == 0  # idempotent

    # The provenance reaches the cold table.
    mem.compact(now=NOW + timedelta(days=60), warm_max_age=timedelta(days=30))
    rows = {r["memory_id"]: r for r in mem.lakehouse.read("memories").to_pylist()}
    assert low not in rows and high not in rows
    assert json.loads(rows[later]["metadata"])[PROVENANCE] == sorted([low, high])
    assert mem.get("acme", later, now=NOW + timedelta(days=60)).tier == "cold"  # type: ignore[union-attr]


def test_consolidation_can_be_turned_off_and_checks_its_inputs(mem: MemoryStore) -> None:
    base, near, _ = _vectors(mem.dim)
    ids = [
        mem.store("acme", "same fact", vector=v, now=NOW - timedelta(hours=2)) for v in (base, near)
    ]
    report = mem.compact(now=NOW, consolidate_cosine=None)
    assert report.consolidated_hot == 0 and report.hot_to_warm == 2
    assert all(mem.get("acme", i, now=NOW) is not None for i in ids)
    with pytest.raises(ValidationError, match="threshold"):
        mem.compact(now=NOW, consolidate_cosine=1.5)
    with pytest.raises(ValidationError, match="reserved"):
        mem.store("acme", "x", metadata={PROVENANCE: ["forged"]})


def test_warm_nearest_by_batched_query_and_by_scan_agree(mem: MemoryStore) -> None:
    """Consolidation's warm lookup: the engine's batched query and an exact scan agree."""
    rng = np.random.default_rng(3)
    base = rng.normal(size=(6, mem.dim))
    for i, vec in enumerate(base):
        for j in range(3):  # three near copies of each base vector
            near = vec + rng.normal(scale=0.01, size=mem.dim)
            mem.store("acme", f"fact {i} copy {j}", vector=near, now=NOW - timedelta(hours=2))
    mem.store("globex", "fact 0", vector=base[0], now=NOW - timedelta(hours=2))
    mem.compact(now=NOW, consolidate_cosine=None)
    queries = [tuple((v / np.linalg.norm(v)).tolist()) for v in base] + [(1.0,) * mem.dim]
    by_scan = mem.warm.nearest("acme", queries, 2, 0.97, int(NOW.timestamp() * 1000), scan=True)
    batched = mem.warm.nearest("acme", queries, 2, 0.97, int(NOW.timestamp() * 1000), scan=False)
    assert [[m.id for m in hits] for hits in by_scan] == [[m.id for m in hits] for hits in batched]
    assert [len(hits) for hits in by_scan] == [2] * 6 + [0]
    assert all(m.tenant_id == "acme" for hits in by_scan for m in hits)
