"""Writes: a validated memory into the hot tier with its stream event (Redis down: the spool)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import redis

from lakehouse.exceptions import ValidationError
from lakehouse.memory import shape
from lakehouse.memory.events import EventError, encode_event, parse_event
from lakehouse.memory.model import (
    DEFAULT_IMPORTANCE,
    MAX_EPOCH_MS,
    MAX_TTL,
    Memory,
    check_content,
    check_metadata,
    normalise,
)
from lakehouse.memory.shape import Shape
from lakehouse.memory.tiers import MemoryTiers, clock_ms
from lakehouse.table.tenants import check_tenant


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
        check_content(content)
        meta = check_metadata(metadata or {})
        imp = DEFAULT_IMPORTANCE if importance is None else float(importance)
        if not 0.0 <= imp <= 1.0:
            raise ValidationError(f"importance must lie in [0, 1], got {imp}")
        created = clock_ms(now)
        if not 0 <= created <= MAX_EPOCH_MS:
            raise ValidationError(f"now must lie between 1970 and 9999, got {now}")
        expires = None
        if ttl is not None:
            if not timedelta(0) < ttl <= MAX_TTL:
                raise ValidationError(
                    f"ttl must be positive and at most {MAX_TTL.days} days, got {ttl}; "
                    "store without a ttl for no expiry"
                )
            expires = created + int(ttl.total_seconds() * 1000)
            if expires > MAX_EPOCH_MS:
                raise ValidationError(
                    f"ttl {ttl} ends after the year 9999; use a shorter ttl or none (no expiry)"
                )
        vec = normalise(self.embedder.embed(content) if vector is None else vector, self.dim)
        memory = Memory(
            id=str(uuid.uuid4()),
            tenant_id=tenant_id,
            content=content,
            vector=vec,
            metadata=meta,
            importance=imp,
            created_ms=created,
            expires_ms=expires,
            signature=shape.encode(signature),
        )
        event = {"event_id": str(uuid.uuid4()), "ts_ms": created, "op": "store"}
        event |= {"memory_id": memory.id} | self.cipher.seal_record(memory.record())
        event.pop("id")
        try:  # one validation: what store accepts, ingestion accepts (the same parser)
            parse_event(encode_event(event), cipher=self.cipher, window=False)
        except EventError as exc:
            raise ValidationError(f"memory not stored: ingestion would refuse it ({exc})") from None
        return memory, vec, event
