"""The memory API: one store over hot (Redis), warm (Qdrant) and cold (Iceberg) tiers.

Invariants:

- Tenant isolation: every tier read is keyed or filtered by the caller's tenant, and every
  record read back is checked against it; a memory id of another tenant reads as absent.
- Hard TTL: an expired memory is absent from every read (``get`` included) in every tier, and
  :meth:`MemoryStore.compact` purges it. Decay only ranks (see :mod:`lakehouse.memory.model`).
- Erase: :meth:`MemoryStore.forget` removes the memory from Redis keys and stream entries
  (rewriting persistence files), Qdrant (vacuuming the Edge shards) and every snapshot and file
  of ``memories``, ``memory_events`` and ``memory_events_rejected``, and returns a receipt.
- No resurrection: an erase first records a tombstone (:mod:`lakehouse.memory.tombstones`);
  ingestion and compaction skip tombstoned memories and remove copies they made meanwhile.
- Degradation: a tier whose server stops answering (or does not answer when the store
  opens) is skipped by reads (``get`` falls through
  to the next tier, ``search`` ranks what the others return and lists the skipped tier in
  :attr:`SearchResults.unavailable`; both log a warning). ``store`` with Redis down writes the
  memory and its event to the durable local spool (:mod:`lakehouse.memory.spool`) and still
  returns its id; reads answer from the spool too, and the spool is replayed into Redis, once,
  by the next ``store``/``get``/``search`` once Redis answers, by :meth:`MemoryStore.drain_spool`
  and by every compaction. ``forget``, ``forget_tenant`` and ``compact`` need Redis (the
  tombstone lives there) and raise :class:`~lakehouse.exceptions.TierUnavailableError` naming
  ``AURA_REDIS_URL`` having written nothing; ``forget``, ``forget_tenant`` and ``compact``
  also need Qdrant and raise it naming ``AURA_QDRANT_URL``.
- Encryption (``AURA_MEMORY_KEY``, :mod:`lakehouse.memory.crypto`): every tier and the event
  stream hold content and metadata sealed, each tier sealing where it serialises and opening
  where it reads; :meth:`MemoryStore.rotate_key` re-seals every copy with the current key.
- Tier moves copy, verify in the destination, then trim: a crash in between duplicates a
  memory across tiers for a while (reads deduplicate by id) and never loses one.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from lakehouse.memory.compaction import CompactionReport, MemoryCompaction
from lakehouse.memory.erase import EraseReceipt, MemoryErase
from lakehouse.memory.model import Memory, SearchHit
from lakehouse.memory.reads import MemoryReads
from lakehouse.memory.rotation import KeyRotation, RotationReport
from lakehouse.memory.shape import Shape, ShapeHit
from lakehouse.memory.writes import MemoryWrites
from lakehouse.settings import Settings


class MemoryStore(MemoryWrites, MemoryReads, MemoryCompaction, MemoryErase, KeyRotation):
    """Agent memory over three tiers, synchronous.

    Example:
        >>> with MemoryStore(Settings.from_env()) as mem:
        ...     mid = mem.store("acme", "the user prefers short answers", ttl=timedelta(days=30))
        ...     hits = mem.search("acme", "short answers", k=5)
    """


class AsyncMemoryStore:
    """The same API as :class:`MemoryStore`, awaitable; calls run on one worker thread.

    One thread keeps the tiers' clients used by a single thread at a time.
    """

    def __init__(self, settings: Settings | None = None, **options: Any) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aura-memory")
        self._sync = self._executor.submit(MemoryStore, settings, **options).result()

    @property
    def sync(self) -> MemoryStore:
        return self._sync

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(fn, *args, **kwargs))

    async def store(self, tenant_id: str, content: str, **options: Any) -> str:
        return await self._run(self._sync.store, tenant_id, content, **options)

    async def get(self, tenant_id: str, memory_id: str, **options: Any) -> Memory | None:
        return await self._run(self._sync.get, tenant_id, memory_id, **options)

    async def search(
        self, tenant_id: str, query: Any, k: int = 10, filters: Any = None, **options: Any
    ) -> list[SearchHit]:
        return await self._run(self._sync.search, tenant_id, query, k, filters, **options)

    async def search_by_shape(
        self, tenant_id: str, query: Shape, k: int = 10, **options: Any
    ) -> list[ShapeHit]:
        return await self._run(self._sync.search_by_shape, tenant_id, query, k, **options)

    async def forget(self, tenant_id: str, memory_id: str) -> EraseReceipt:
        return await self._run(self._sync.forget, tenant_id, memory_id)

    async def forget_tenant(self, tenant_id: str) -> EraseReceipt:
        return await self._run(self._sync.forget_tenant, tenant_id)

    async def drain_spool(self) -> int:
        return await self._run(self._sync.drain_spool)

    async def rotate_key(self) -> RotationReport:
        return await self._run(self._sync.rotate_key)

    async def compact(self, **options: Any) -> CompactionReport:
        return await self._run(self._sync.compact, **options)

    async def aclose(self) -> None:
        await self._run(self._sync.close)
        self._executor.shutdown(wait=True)

    async def __aenter__(self) -> AsyncMemoryStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
