"""The cold tier's vector index: each cold memory's vector and ranking fields, no content.

A collection of the vector engine (:mod:`lakehouse.vectors`: a Qdrant Edge shard in
``AURA_HOME/vectors/aura_memory_cold``, or that collection on ``AURA_QDRANT_URL``) holds, per
memory in ``memories``, its vector and the payload ranking needs (tenant, importance, creation,
expiry and access times). A search asks it for the best candidates (an HNSW query filtered by
tenant and TTL), ranks them with the other tiers' and reads from Iceberg only the rows of the
cold hits that make the final top k (:meth:`ColdTier.fetch`).

Invariants: a memory enters the index before its row is copied into ``memories`` and leaves it
with the row (erase, TTL purge), so no cold memory is ever unsearchable; an indexed id whose row
is not (yet) in the table is dropped from a search's answer. :meth:`ColdIndex.rebuild` remakes
the index from the table (a new or lost shard, key rotation, a count that differs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.exceptions import VectorStoreBusyError, VectorStoreError
from lakehouse.memory.filters import expired, live, tenant_of
from lakehouse.memory.model import Memory, to_ms
from lakehouse.vectors import CollectionSpec, Record, VectorStore

COLLECTION = "aura_memory_cold"
VECTOR = "dense"
# What the index raises when it cannot answer (a shard another process holds past the wait, an
# engine that refused): reads skip the cold tier, erase and compaction stop.
INDEX_ERRORS: tuple[type[Exception], ...] = (VectorStoreBusyError, VectorStoreError)
_BATCH = 2000
_FIELDS = ("memory_id", "tenant_id", "vector", "importance", "created_at", "expires_at")
_RANKING = ("importance", "created_ms", "expires_ms", "last_access_ms")


def collection_spec(name: str, dim: int) -> CollectionSpec:
    """A memory collection's design (the warm tier's and this index alike): one cosine vector,
    the tenant and the times indexed."""
    return CollectionSpec(
        name,
        {VECTOR: (dim, "cosine")},
        tenant_field="tenant_id",
        indexes={"created_ms": "integer", "expires_ms": "integer"},
    )


def spec(dim: int) -> CollectionSpec:
    """The index's design."""
    return collection_spec(COLLECTION, dim)


def _payload(memory: Memory) -> dict[str, Any]:
    return {
        "tenant_id": memory.tenant_id,
        "importance": memory.importance,
        "created_ms": memory.created_ms,
        "expires_ms": memory.expires_ms,
        "last_access_ms": memory.last_access_ms,
    }


def point_vectors(store: VectorStore, ids: Sequence[str]) -> dict[str, np.ndarray]:
    """The :data:`VECTOR` of each of ``ids`` a memory collection holds.

    Searches ask for payloads only (vectors of a whole candidate pool cost more than the
    search) and read the vectors of the few memories a ranking keeps with this.
    """
    if not ids:
        return {}
    found = store.retrieve(list(ids), with_payload=False, with_vectors=[VECTOR])
    return {str(r.id): np.asarray(r.vectors[VECTOR], dtype=np.float32) for r in found}


def _stub(point: Any) -> Memory:
    """A cold memory without content or metadata, for ranking."""
    p = point.payload
    return Memory(
        id=str(point.id),
        tenant_id=str(p["tenant_id"]),
        content="",
        vector=np.asarray(point.vectors.get(VECTOR, []), dtype=np.float32),
        importance=float(p["importance"]),
        created_ms=int(p["created_ms"]),
        expires_ms=p.get("expires_ms"),
        last_access_ms=p.get("last_access_ms"),
        tier="cold",
    )


class ColdIndex:
    """The cold tier's vectors in the vector engine (see the module docstring)."""

    def __init__(self, store: Callable[[], VectorStore]) -> None:
        self._store = store

    @property
    def store(self) -> VectorStore:
        return self._store()

    def put(self, memories: Sequence[Memory]) -> None:
        """Index memories (idempotent by id)."""
        points = [
            Record(id=m.id, vectors={VECTOR: m.vector.tolist()}, payload=_payload(m))
            for m in memories
        ]
        for start in range(0, len(points), _BATCH):
            self.store.upsert(points[start : start + _BATCH])

    def put_rows(self, rows: pa.Table) -> int:
        """Index rows of ``memories`` (:data:`_FIELDS` and optionally ``last_access``)."""
        n = 0
        for batch in rows.to_batches(_BATCH):
            flat = pc.list_flatten(batch.column("vector")).to_numpy(zero_copy_only=False)
            matrix = flat.astype(np.float32).reshape(batch.num_rows, -1)
            cols = {name: batch.column(name).to_pylist() for name in batch.schema.names}
            points = []
            for i in range(batch.num_rows):
                last = cols.get("last_access", [None] * batch.num_rows)[i]
                expires = cols["expires_at"][i]
                points.append(
                    Record(
                        id=cols["memory_id"][i],
                        vectors={VECTOR: matrix[i].tolist()},
                        payload={
                            "tenant_id": cols["tenant_id"][i],
                            "importance": cols["importance"][i],
                            "created_ms": to_ms(cols["created_at"][i]),
                            "expires_ms": None if expires is None else to_ms(expires),
                            "last_access_ms": None if last is None else to_ms(last),
                        },
                    )
                )
            self.store.upsert(points)
            n += len(points)
        return n

    def candidates(
        self, tenant_id: str, vector: np.ndarray, k: int, now_ms: int
    ) -> list[tuple[Memory, float]]:
        """The tenant's ``k`` live cold memories most similar to ``vector``, as ranking stubs
        without their vectors (:meth:`vectors` gives those of the few that make a ranking)."""
        points = self.store.search(
            vector.tolist(),
            tenant=tenant_id,
            using=VECTOR,
            limit=k,
            filter=live(now_ms),
            with_payload=True,  # all of it (the ranking fields): a field list is slower
            with_vectors=False,
        )
        return [
            (_stub(p), float(p.score)) for p in points if p.payload.get("tenant_id") == tenant_id
        ]

    def vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The vectors of the indexed ``ids`` (an id not indexed is absent)."""
        return point_vectors(self.store, ids)

    def owner(self, memory_id: str) -> str | None:
        found = self.store.retrieve([memory_id], with_payload=["tenant_id"])
        return str(found[0].payload.get("tenant_id")) if found and found[0].payload else None

    def ids(self) -> set[str]:
        return {str(r.id) for r in self.store.scroll(with_payload=False)}

    def count(self) -> int:
        return self.store.count()

    def delete(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        if ids:
            self.store.delete(ids)

    def delete_tenant(self, tenant_id: str) -> int:
        return self.store.delete_where(tenant_of(tenant_id))

    def purge_expired(self, now_ms: int) -> int:
        return self.store.delete_where(expired(now_ms))

    def vacuum(self) -> list[str]:
        """Run the engine's optimizer so deleted points leave no bytes; names what it rewrote."""
        store = self.store
        store.optimize()
        path = getattr(store, "path", None)
        return [] if path is None else [str(path)]
