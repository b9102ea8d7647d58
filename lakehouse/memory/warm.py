"""Warm tier: one Qdrant collection, named vector ``dense``, tenant in every point's payload.

Every read filters on ``tenant_id`` (caller filters are ANDed to it, never replace it) and on
the hard TTL (``expires_ms`` null or in the future). In local mode Qdrant keeps points as
pickles in ``<path>/collection/<name>/storage.sqlite``; a deleted row's bytes can stay in
SQLite's free pages, so :meth:`WarmTier.vacuum` rewrites the file after an erase.

With ``AURA_MEMORY_KEY`` the payload's content and metadata are sealed
(:mod:`lakehouse.memory.crypto`); Qdrant cannot filter on sealed metadata, so a filtered
search then filters after opening, widening the query until it has ``k`` hits.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import models as qm
from qdrant_client.http.exceptions import ApiException

from lakehouse.memory.crypto import MemoryCipher
from lakehouse.memory.model import Memory, matches, read_record, read_records

COLLECTION = "aura_memory"
VECTOR = "dense"
_PAGE = 512
# What the client raises when the server does not answer (connection refused, timeout, 5xx).
WARM_ERRORS: tuple[type[Exception], ...] = (ApiException,)


def _payload(memory: Memory, cipher: MemoryCipher) -> dict[str, Any]:
    rec = cipher.seal_record(memory.record())
    rec.pop("id")
    return rec


def _decode(point: Any, cipher: MemoryCipher) -> Memory:
    payload = dict(point.payload or {})
    vector = point.vector[VECTOR] if isinstance(point.vector, dict) else point.vector or []
    rec = cipher.open_record({"id": str(point.id), **payload})
    return Memory.from_record(rec, vector, "warm")


def _memory(point: Any, cipher: MemoryCipher) -> Memory:
    """The memory of the point asked for (an unreadable one is a clear error)."""
    return read_record(str(point.id), "warm", partial(_decode, point, cipher))


def _memories(points: Sequence[Any], cipher: MemoryCipher) -> list[Memory]:
    """The readable memories of ``points`` (see :func:`.model.read_records`)."""
    return read_records(((str(p.id), partial(_decode, p, cipher)) for p in points), "warm")


class WarmTier:
    """The Qdrant side of a memory store."""

    def __init__(
        self,
        client: Any,
        dim: int,
        local_path: Path | None,
        cipher: MemoryCipher | None = None,
    ) -> None:
        self.client = client
        self.cipher = cipher or MemoryCipher()
        self.dim = dim
        self._local_path = local_path
        self._ready = False
        # A server that is down: the collection is created on first use once it answers.
        with contextlib.suppress(*WARM_ERRORS):
            self._ensure()

    def _ensure(self) -> None:
        """Create the collection (and a server's payload indexes) if it does not exist."""
        if self._ready:
            return
        client, dim, local_path = self.client, self.dim, self._local_path
        if not client.collection_exists(COLLECTION):
            client.create_collection(
                COLLECTION,
                vectors_config={VECTOR: qm.VectorParams(size=dim, distance=qm.Distance.COSINE)},
            )
            if local_path is None:  # local mode has no payload indexes
                for field, schema in (
                    ("tenant_id", qm.PayloadSchemaType.KEYWORD),
                    ("created_ms", qm.PayloadSchemaType.INTEGER),
                    ("expires_ms", qm.PayloadSchemaType.INTEGER),
                ):
                    client.create_payload_index(COLLECTION, field, field_schema=schema)
        self._ready = True

    @staticmethod
    def _tenant(tenant_id: str, now_ms: int | None = None) -> list[Any]:
        must: list[Any] = [qm.FieldCondition(key="tenant_id", match=qm.MatchValue(value=tenant_id))]
        if now_ms is not None:
            must.append(
                qm.Filter(
                    should=[
                        qm.IsNullCondition(is_null=qm.PayloadField(key="expires_ms")),
                        qm.FieldCondition(key="expires_ms", range=qm.Range(gt=now_ms)),
                    ]
                )
            )
        return must

    def put(self, memories: Sequence[Memory]) -> None:
        """Upsert (idempotent by id)."""
        self._ensure()
        cipher = self.cipher
        points = [
            qm.PointStruct(id=m.id, vector={VECTOR: list(m.vector)}, payload=_payload(m, cipher))
            for m in memories
        ]
        for start in range(0, len(points), _PAGE):
            self.client.upsert(COLLECTION, points=points[start : start + _PAGE], wait=True)

    def get(self, tenant_id: str, memory_id: str, now_ms: int) -> Memory | None:
        self._ensure()
        found = self.client.retrieve(COLLECTION, [memory_id], with_vectors=True)
        for point in found:
            memory = _memory(point, self.cipher)
            if memory.tenant_id == tenant_id and not memory.expired(now_ms):
                return memory
        return None

    def owner(self, memory_id: str) -> str | None:
        """The tenant of a point (expired or not), or None when there is no such point."""
        self._ensure()
        found = self.client.retrieve(COLLECTION, [memory_id], with_payload=["tenant_id"])
        return str(found[0].payload.get("tenant_id")) if found and found[0].payload else None

    def held(self, ids: Sequence[str]) -> set[str]:
        """Which ids the collection holds (verification after a copy)."""
        self._ensure()
        found = self.client.retrieve(COLLECTION, list(ids), with_payload=False)
        return {str(p.id) for p in found}

    def search(
        self,
        tenant_id: str,
        vector: np.ndarray,
        k: int,
        filters: Mapping[str, object],
        now_ms: int,
    ) -> list[tuple[Memory, float]]:
        self._ensure()
        must = self._tenant(tenant_id, now_ms)
        sealed = self.cipher.enabled and bool(filters)  # sealed metadata: filter after opening
        if not sealed:
            must += [
                qm.FieldCondition(key=f"metadata.{key}", match=qm.MatchValue(value=value))  # type: ignore[arg-type]
                for key, value in filters.items()
            ]
        limit = k
        while True:
            result = self.client.query_points(
                COLLECTION,
                query=vector.tolist(),
                using=VECTOR,
                query_filter=qm.Filter(must=must),
                limit=limit,
                with_payload=True,
                with_vectors=True,
            )
            scores = {str(p.id): float(p.score) for p in result.points}
            hits = [
                (memory, scores[memory.id])  # tenant: defence in depth
                for memory in _memories(result.points, self.cipher)
                if memory.tenant_id == tenant_id and matches(memory.metadata, filters)
            ]
            if not sealed or len(hits) >= k or len(result.points) < limit:
                return hits[:k]
            limit *= 4

    def scan(self, tenant_id: str | None = None, max_created_ms: int | None = None) -> list[Memory]:
        """Every point (of a tenant, created before a time), with vectors."""
        self._ensure()
        must: list[Any] = self._tenant(tenant_id) if tenant_id else []
        if max_created_ms is not None:
            must.append(qm.FieldCondition(key="created_ms", range=qm.Range(lt=max_created_ms)))
        out: list[Memory] = []
        offset = None
        while True:
            points, offset = self.client.scroll(
                COLLECTION,
                scroll_filter=qm.Filter(must=must) if must else None,
                limit=_PAGE,
                offset=offset,
                with_vectors=True,
            )
            out.extend(_memories(points, self.cipher))
            if offset is None:
                return out

    def nearest(
        self,
        tenant_id: str,
        vectors: Sequence[Sequence[float] | np.ndarray],
        k: int,
        min_score: float,
        now_ms: int,
        *,
        scan: bool | None = None,
    ) -> list[list[Memory]]:
        """For each vector, the tenant's live points of cosine >= ``min_score`` (best k first).

        A server answers one batched query; local mode, which evaluates filters in Python for
        every point and query, is scanned once and ranked with one matrix product instead
        (``scan`` forces either way).
        """
        self._ensure()
        if not vectors:
            return []
        if scan if scan is not None else self._local_path is not None:
            return self._nearest_by_scan(tenant_id, vectors, k, min_score, now_ms)
        return self._nearest_by_query(tenant_id, vectors, k, min_score, now_ms)

    def _nearest_by_query(
        self, tenant_id: str, vectors: Any, k: int, score: float, now_ms: int
    ) -> list[list[Memory]]:
        flt = qm.Filter(must=self._tenant(tenant_id, now_ms))
        requests = [
            qm.QueryRequest(
                query=list(v), using=VECTOR, filter=flt, limit=k, score_threshold=score,
                with_payload=True, with_vector=True,
            )
            for v in vectors
        ]  # fmt: skip
        out: list[list[Memory]] = []
        for start in range(0, len(requests), _PAGE):
            for answer in self.client.query_batch_points(
                COLLECTION, requests=requests[start : start + _PAGE]
            ):
                found = _memories(answer.points, self.cipher)
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
        self._ensure()
        return int(self.client.count(COLLECTION, exact=True).count)

    def delete(self, ids: Sequence[str]) -> None:
        self._ensure()
        if ids:
            self.client.delete(COLLECTION, points_selector=qm.PointIdsList(points=list(ids)))

    def delete_tenant(self, tenant_id: str) -> int:
        self._ensure()
        flt = qm.Filter(must=self._tenant(tenant_id))
        n = int(self.client.count(COLLECTION, count_filter=flt, exact=True).count)
        if n:
            self.client.delete(COLLECTION, points_selector=qm.FilterSelector(filter=flt))
        return n

    def purge_expired(self, now_ms: int) -> int:
        self._ensure()
        flt = qm.Filter(must=[qm.FieldCondition(key="expires_ms", range=qm.Range(lte=now_ms))])
        n = int(self.client.count(COLLECTION, count_filter=flt, exact=True).count)
        if n:
            self.client.delete(COLLECTION, points_selector=qm.FilterSelector(filter=flt))
        return n

    def vacuum(self) -> list[str]:
        """Rewrite local-mode storage files so deleted points leave no bytes; returns them.

        A Qdrant server compacts deleted points with its own optimizer (not forced here).
        """
        if self._local_path is None:
            return []
        done = []
        for storage in sorted(self._local_path.glob("collection/*/storage.sqlite")):
            con = sqlite3.connect(str(storage))
            try:
                con.execute("VACUUM")
            finally:
                con.close()
            done.append(str(storage))
        return done
