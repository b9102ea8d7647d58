"""Writes: a validated memory into the hot tier with its stream event (Redis down: the spool)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import redis

from lakehouse.exceptions import ValidationError
from lakehouse.memory import consolidate, shape
from lakehouse.memory.model import DEFAULT_IMPORTANCE, Memory, check_tenant, normalise
from lakehouse.memory.shape import Shape
from lakehouse.memory.tiers import MemoryTiers, clock_ms


class MemoryWrites(MemoryTiers):
    """``store`` and ``new_memory``."""

    def store(
        self,
        tenant_id: str,
        content: str,
        *,
        vector: Sequence[float] | np.ndarray | None = None,
        metadata: Mapping[str, Any] | None = None,
        ttl: timedelta | None = None,
        importance: float | None = None,
        signature: Shape | None = None,
        now: datetime | None = None,
    ) -> str:
        """Store a memory in the hot tier and publish its event; returns its id.

        ``signature`` is the topology of the workflow run behind the memory: the run id (of
        the tenant's run in the topology index) or its diagrams (see :mod:`.shape`). With
        Redis down the memory goes to the durable local spool (still acknowledged).
        """
        memory, vec, event = self.new_memory(
            tenant_id,
            content,
            vector=vector,
            metadata=metadata,
            ttl=ttl,
            importance=importance,
            signature=signature,
            now=now,
        )
        self._drain_quietly()  # spooled memories reach Redis before this one (order kept)
        try:
            self.hot.put(memory, vec, event)
        except redis.RedisError as exc:
            self._spool_put(memory, vec, event, exc)
        return memory.id

    def new_memory(
        self,
        tenant_id: str,
        content: str,
        *,
        vector: Sequence[float] | np.ndarray | None = None,
        metadata: Mapping[str, Any] | None = None,
        ttl: timedelta | None = None,
        importance: float | None = None,
        signature: Shape | None = None,
        now: datetime | None = None,
    ) -> tuple[Memory, np.ndarray, dict[str, Any]]:
        """The validated memory :meth:`store` writes, its unit vector and its store event
        (nothing is written; a bulk load hands batches of them to ``HotTier.put_many``)."""
        check_tenant(tenant_id)
        if not isinstance(content, str):
            raise ValidationError("content must be a string")
        consolidate.check_metadata(dict(metadata or {}))
        imp = DEFAULT_IMPORTANCE if importance is None else float(importance)
        if not 0.0 <= imp <= 1.0:
            raise ValidationError(f"importance must lie in [0, 1], got {imp}")
        if ttl is not None and ttl <= timedelta(0):
            raise ValidationError(f"ttl must be positive, got {ttl}")
        vec = normalise(self.embedder.embed(content) if vector is None else vector, self.dim)
        created = clock_ms(now)
        memory = Memory(
            id=str(uuid.uuid4()),
            tenant_id=tenant_id,
            content=content,
            vector=vec,
            metadata=dict(metadata or {}),
            importance=imp,
            created_ms=created,
            expires_ms=None if ttl is None else created + int(ttl.total_seconds() * 1000),
            signature=shape.encode(signature),
        )
        event = {"event_id": str(uuid.uuid4()), "ts_ms": created, "op": "store"}
        event |= {"memory_id": memory.id} | self.cipher.seal_record(memory.record())
        event.pop("id")
        return memory, vec, event
