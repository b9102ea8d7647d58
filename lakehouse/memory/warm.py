"""Warm tier: one collection of the vector engine, named vector ``dense``, tenant in every payload.

The engine is :mod:`lakehouse.vectors`: a Qdrant Edge shard in ``AURA_HOME/vectors/`` (Qdrant's
own engine in-process: HNSW and payload indexes, so a search touches an index, not every point),
or the same collection on the Qdrant server of ``AURA_QDRANT_URL``. Every read filters on
``tenant_id`` (caller filters are ANDed to it, never replace it) and on the hard TTL
(``expires_ms`` null or in the future). After an erase :meth:`WarmTier.vacuum` runs the
engine's optimizer, which rewrites the segments that held deleted points (no byte left).

With ``AURA_MEMORY_KEY`` the payload's content and metadata are sealed
(:mod:`lakehouse.memory.crypto`); the engine cannot filter on sealed metadata, so a filtered
search then filters after opening, widening the query until it has ``k`` hits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np

from lakehouse.exceptions import StoreUnavailableError, VectorStoreError
from lakehouse.memory.coldindex import VECTOR, collection_spec, point_vectors
from lakehouse.memory.crypto import MemoryCipher
from lakehouse.memory.filters import all_of, created_before, equals, expired, live, tenant_of
from lakehouse.memory.model import Memory, matches, read_record, read_records
from lakehouse.vectors import CollectionSpec, Record, VectorStore

COLLECTION = "aura_memory"
_PAGE = 512
# What the engine raises when it cannot answer (a server down, a shard held by another process,
# an engine that refused): reads skip the tier, erase and compaction stop having lost nothing.
WARM_ERRORS: tuple[type[Exception], ...] = (StoreUnavailableError, VectorStoreError)


def spec(dim: int) -> CollectionSpec:
    """The warm collection's design (the cold index's, under another name)."""
    return collection_spec(COLLECTION, dim)


def _payload(memory: Memory, cipher: MemoryCipher) -> dict[str, Any]:
    rec = cipher.seal_record(memory.record())
    rec.pop("id")
    return rec


def _decode(point: Record, cipher: MemoryCipher) -> Memory:
    rec = cipher.open_record({"id": str(point.id), **point.payload})
    return Memory.from_record(rec, point.vectors.get(VECTOR, []), "warm")


def _memory(point: Record, cipher: MemoryCipher) -> Memory:
    """The memory of the point asked for (an unreadable one is a clear error)."""
    return read_record(str(point.id), "warm", partial(_decode, point, cipher))


def _memories(points: Sequence[Record], cipher: MemoryCipher) -> list[Memory]:
    """The readable memories of ``points`` (see :func:`.model.read_records`)."""
    return read_records(((str(p.id), partial(_decode, p, cipher)) for p in points), "warm")


class WarmTier:
    """The vector-engine side of a memory store (the collection opened on first use)."""

    def __init__(
        self,
        store: Callable[[], VectorStore],
        dim: int,
        cipher: MemoryCipher | None = None,
    ) -> None:
        self._store = store
        self.cipher = cipher or MemoryCipher()
        self.dim = dim

    @property
    def store(self) -> VectorStore:
        return self._store()

    def put(self, memories: Sequence[Memory]) -> None:
        """Upsert (idempotent by id)."""
        cipher = self.cipher
        points = [
            Record(id=m.id, vectors={VECTOR: m.vector.tolist()}, payload=_payload(m, cipher))
            for m in memories
        ]
        if points:
            self.store.upsert(points)

    def get(self, tenant_id: str, memory_id: str, now_ms: int) -> Memory | None:
        found = self.store.retrieve([memory_id], with_vectors=True)
        for point in found:
            memory = _memory(point, self.cipher)
            if memory.tenant_id == tenant_id and not memory.expired(now_ms):
                return memory
        return None

    def owner(self, memory_id: str) -> str | None:
        """The tenant of a point (expired or not), or None when there is no such point."""
        found = self.store.retrieve([memory_id], with_payload=["tenant_id"])
        return str(found[0].payload.get("tenant_id")) if found and found[0].payload else None

    def held(self, ids: Sequence[str]) -> set[str]:
        """Which ids the collection holds (verification after a copy)."""
        return {str(p.id) for p in self.store.retrieve(list(ids), with_payload=False)}

    def search(
        self,
        tenant_id: str,
        vector: np.ndarray,
        k: int,
        filters: Mapping[str, object],
        now_ms: int,
        *,
        vectors: bool = True,
    ) -> list[tuple[Memory, float]]:
        """The tenant's ``k`` live memories most similar to ``vector`` matching ``filters``;
        ``vectors=False`` leaves their vectors empty (:meth:`vectors` reads them by id)."""
        must: list[Any] = [live(now_ms)]
        sealed = self.cipher.enabled and bool(filters)  # sealed metadata: filter after opening
        if not sealed:
            must += [equals(f"metadata.{key}", value) for key, value in filters.items()]
        limit = k
        store = self.store
        query = vector.tolist()
        while True:
            points = store.search(
                query,
                tenant=tenant_id,
                using=VECTOR,
                limit=limit,
                filter=all_of(must),
                with_payload=True,
                with_vectors=vectors,
            )
            scores = {str(p.id): float(p.score) for p in points}
            hits = [
                (memory, scores[memory.id])  # tenant: defence in depth
                for memory in _memories(points, self.cipher)
                if memory.tenant_id == tenant_id and matches(memory.metadata, filters)
            ]
            if not sealed or len(hits) >= k or len(points) < limit:
                return hits[:k]
            limit *= 4

    def vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The vectors of the points of ``ids`` (an id not held is absent)."""
        return point_vectors(self.store, ids)

    def scan(self, tenant_id: str | None = None, max_created_ms: int | None = None) -> list[Memory]:
        """Every point (of a tenant, created before a time), with vectors."""
        must: list[Any] = [tenant_of(tenant_id)] if tenant_id else []
        if max_created_ms is not None:
            must.append(created_before(max_created_ms))
        points = list(
            self.store.scroll(all_of(must) if must else None, with_vectors=True, page=_PAGE)
        )
        return _memories(points, self.cipher)

    def nearest(
        self,
        tenant_id: str,
        vectors: Sequence[Sequence[float] | np.ndarray],
        k: int,
        min_score: float,
        now_ms: int,
        *,
        scan: bool = False,
    ) -> list[list[Memory]]:
        """For each vector, the tenant's live points of cosine >= ``min_score`` (best k first).

        The engine answers batched queries (its HNSW and payload indexes); ``scan`` ranks the
        tenant's points with one matrix product instead (exact: a check of the index).
        """
        if not len(vectors):
            return []
        if scan:
            return self._nearest_by_scan(tenant_id, vectors, k, min_score, now_ms)
        out: list[list[Memory]] = []
        store = self.store
        for start in range(0, len(vectors), _PAGE):
            answers = store.search_batch(
                [list(map(float, v)) for v in vectors[start : start + _PAGE]],
                tenant=tenant_id,
                using=VECTOR,
                limit=k,
                filter=live(now_ms),
                score_threshold=min_score,
                with_payload=True,
                with_vectors=True,
            )
            for points in answers:
                found = _memories(points, self.cipher)
                out.append([m for m in found if m.tenant_id == tenant_id])
        return out

    def _nearest_by_scan(
        self, tenant_id: str, vectors: Any, k: int, score: float, now_ms: int
    ) -> list[list[Memory]]:
        points = [m for m in self.scan(tenant_id) if not m.expired(now_ms)]
        if not points:
            return [[] for _ in vectors]
        matrix = np.asarray([m.vector for m in points], dtype=np.float32)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        queries = np.asarray(vectors, dtype=np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        out: list[list[Memory]] = []
        for start in range(0, len(queries), _PAGE):  # bounded memory: _PAGE rows at a time
            sims = queries[start : start + _PAGE] @ matrix.T
            for row in sims:
                best = np.argsort(-row)[:k]
                out.append([points[i] for i in best if row[i] >= score])
        return out

    def count(self) -> int:
        return self.store.count()

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self.store.delete(list(ids))

    def delete_tenant(self, tenant_id: str) -> int:
        return self.store.delete_where(tenant_of(tenant_id))

    def purge_expired(self, now_ms: int) -> int:
        return self.store.delete_where(expired(now_ms))

    def vacuum(self) -> list[str]:
        """Run the engine's optimizer so deleted points leave no bytes; names what it rewrote.

        A Qdrant server compacts deleted points with its own optimizer (not forced here).
        """
        store = self.store
        store.optimize()
        path = getattr(store, "path", None)
        return [] if path is None else [str(path)]
