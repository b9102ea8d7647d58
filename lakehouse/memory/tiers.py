"""The tiers of a memory store opened together, and what every operation shares.

:class:`MemoryTiers` opens the hot (Redis), warm (Qdrant) and cold (Iceberg) tiers and the
local spool, and holds the behaviour the operations (:mod:`.writes`, :mod:`.reads`,
:mod:`.compaction`, :mod:`.erase`, :mod:`.rotation`) share: the spool's replay into Redis,
the tombstone check, and the degradation rules (a tier that does not answer is skipped by
reads with a warning, and refuses erase and compaction with
:class:`~lakehouse.exceptions.TierUnavailableError` naming the variable to fix).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Self

import numpy as np
import redis

from lakehouse.core import Lakehouse
from lakehouse.exceptions import StoreUnavailableError, TierUnavailableError
from lakehouse.memory import coldindex, tombstones
from lakehouse.memory import warm as warm_tier
from lakehouse.memory.cold import ColdTier
from lakehouse.memory.coldindex import INDEX_ERRORS, ColdIndex
from lakehouse.memory.crypto import MemoryCipher
from lakehouse.memory.engine import Collection
from lakehouse.memory.hot import HotTier
from lakehouse.memory.model import DEFAULT_HALF_LIFE, Embedder, HashingEmbedder, Memory, to_ms
from lakehouse.memory.spool import Spool, spool_path
from lakehouse.memory.tables import ensure_tables
from lakehouse.memory.warm import WARM_ERRORS, WarmTier
from lakehouse.settings import Settings, redact_url
from lakehouse.stores import close_redis, open_qdrant, open_redis

log = logging.getLogger(__name__)


TIERS = ("hot", "warm", "cold")
# What a tier that does not answer raises (Redis, Qdrant).
DOWN: tuple[type[Exception], ...] = (redis.RedisError, *WARM_ERRORS, *INDEX_ERRORS)


def clock_ms(now: datetime | None) -> int:
    """``now`` in epoch milliseconds (the clock when None)."""
    return to_ms(now) if now is not None else int(time.time() * 1000)


class MemoryTiers:
    """The tiers and the spool of one memory store, and the rules every operation shares."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        embedder: Embedder | None = None,
        half_life: timedelta = DEFAULT_HALF_LIFE,
        redis_client: Any = None,
        qdrant_client: Any = None,
        vector_lock_timeout: float = 10.0,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.cipher = MemoryCipher.from_settings(self.settings)
        # The default embedder is keyed by AURA_MEMORY_KEY: its vectors reveal no content.
        self.keyed_embedder = embedder is None
        self.embedder: Embedder = embedder or HashingEmbedder(key=self.cipher.embedding_key())
        self.dim = self.embedder.dim
        self.half_life = half_life
        self._own_redis = redis_client is None
        self.redis = redis_client if redis_client is not None else self._open_redis()
        # The Qdrant server's client (AURA_QDRANT_URL), for the topology index that shape search
        # reads; a server down at start is the degraded mode below, not a failure to open.
        # Embedded there is no client: every collection is an Edge shard opened where it is used.
        self._own_qdrant = qdrant_client is None and bool(self.settings.qdrant_url)
        self.qdrant = open_qdrant(self.settings, check=False) if self._own_qdrant else qdrant_client
        self.lakehouse = Lakehouse(self.settings)
        self.hot = HotTier(self.redis, self.cipher)
        # The warm tier and the cold tier's vectors: collections of the vector engine, opened on
        # first use and shared by the stores of this process (see .engine, .warm, .coldindex).
        self._collections = [
            Collection(self.settings, spec(self.dim), vector_lock_timeout)
            for spec in (warm_tier.spec, coldindex.spec)
        ]
        self.warm = WarmTier(self._collections[0], self.dim, self.cipher)
        self.cold = ColdTier(self.lakehouse, self.cipher, ColdIndex(self._collections[1]))
        self.spool = Spool(spool_path(self.settings.home), self.cipher)
        ensure_tables(self.lakehouse)
        self._spool_pending = self.spool.count() > 0
        self._drain_quietly()

    def _open_redis(self) -> Any:
        """The configured Redis; a server that is down now is reconnected to once it answers."""
        try:
            return open_redis(self.settings)
        except StoreUnavailableError as exc:
            log.warning("memory: %s; stores go to the local spool until it answers", exc)
            return open_redis(self.settings, check=False)

    def close(self) -> None:
        """Close the clients this store opened (an embedded Redis is saved and stopped)."""
        for collection in self._collections:
            collection.release()
        self.hot.close()
        if self._own_qdrant:
            self.qdrant.close()
        if self._own_redis:
            close_redis(self.redis)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the spool (Redis down) ----------------------------------------------------------------

    def _spool_put(
        self, memory: Memory, vec: np.ndarray, event: dict[str, Any], exc: Exception
    ) -> None:
        try:
            self.spool.put(memory, vec, event)
        except (OSError, sqlite3.Error) as spool_exc:
            raise self._unavailable(
                "hot",
                exc,
                f"memory not stored, nothing was written (the local spool "
                f"{self.spool.path} failed too: {type(spool_exc).__name__})",
            ) from None
        self._spool_pending = True
        log.warning(
            "memory: hot tier unavailable (%s); memory %s kept in the local spool %s, "
            "replayed into Redis once it answers",
            type(exc).__name__,
            memory.id,
            self.spool.path,
        )

    def drain_spool(self) -> int:
        """Replay the spooled memories (and their events) into Redis, once; returns how many.

        Raises:
            TierUnavailableError: Redis does not answer (the spool keeps every memory).
        """
        try:
            replayed, dropped = self.spool.drain(self._held_hot, self._replay, self._erased)
        except redis.RedisError as exc:
            self._spool_pending = True
            raise self._unavailable("hot", exc, "the spool was not replayed") from None
        self._spool_pending = False
        if replayed or dropped:
            log.info("memory spool: %d replayed into Redis, %d erased meanwhile", replayed, dropped)
        return replayed

    def _drain_quietly(self) -> None:
        """Drain when this process knows of spooled memories; Redis down: keep them."""
        if self._spool_pending:
            with contextlib.suppress(TierUnavailableError):
                self.drain_spool()

    def _held_hot(self, memory: Memory) -> bool:
        return bool(self.redis.exists(self.hot.key(memory.tenant_id, memory.id)))

    def _replay(self, memory: Memory, vec: np.ndarray, event: dict[str, Any]) -> None:
        self.hot.put(memory, vec, event)

    def _where(self, tier: str) -> str:
        if tier == "hot":
            return (
                f"Redis at {redact_url(self.settings.redis_url)} (AURA_REDIS_URL)"
                if (self.settings.redis_url)
                else f"the embedded Redis in {self.settings.redis_path}"
            )
        if self.settings.qdrant_url:
            return f"Qdrant at {redact_url(self.settings.qdrant_url)} (AURA_QDRANT_URL)"
        return f"the Qdrant Edge shards in {self.settings.vectors_path}"

    def _unavailable(self, tier: str, exc: Exception, what: str) -> TierUnavailableError:
        variable = "AURA_REDIS_URL" if tier == "hot" else "AURA_QDRANT_URL"
        return TierUnavailableError(
            f"{what}: the {tier} tier, {self._where(tier)}, does not answer "
            f"({type(exc).__name__}). Start the server or fix {variable}, then retry"
        )

    def _skip(self, tier: str, exc: Exception, skipped: list[str]) -> None:
        log.warning(
            "memory: %s tier unavailable (%s: %s); answering from the other tiers",
            tier,
            type(exc).__name__,
            (redact_url(str(exc)) or "").split("\n", 1)[0],
        )
        skipped.append(tier)

    # -- tombstones --------------------------------------------------------------------------

    def _bury(self, tenant_id: str, memory_id: str | None) -> None:
        """Tombstone first: an erase that cannot record its tombstone erases nothing."""
        try:
            tombstones.bury(self.redis, tenant_id, memory_id, int(time.time() * 1000))
        except redis.RedisError as exc:
            raise self._unavailable("hot", exc, "nothing was erased") from None

    def _erased(self, memories: Sequence[Memory]) -> set[str]:
        """The ids among ``memories`` that a tombstone covers (see :mod:`.tombstones`)."""
        return tombstones.erased(self.redis, [(m.tenant_id, m.id, m.created_ms) for m in memories])
