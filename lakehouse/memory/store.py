"""The memory API: one store over hot (Redis), warm (Qdrant) and cold (Iceberg) tiers.

Invariants:

- Tenant isolation: every tier read is keyed or filtered by the caller's tenant, and every
  record read back is checked against it; a memory id of another tenant reads as absent.
- Hard TTL: an expired memory is absent from every read (``get`` included) in every tier, and
  :meth:`MemoryStore.compact` purges it. Decay only ranks (see :mod:`lakehouse.memory.model`).
- Erase: :meth:`MemoryStore.forget` removes the memory from Redis keys and stream entries
  (rewriting persistence files), Qdrant (vacuuming local storage) and every snapshot and file
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
import contextlib
import logging
import sqlite3
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, ParamSpec, TypeVar

import numpy as np
import redis
from pyiceberg.expressions import AlwaysFalse, And, BooleanExpression, EqualTo, In

from lakehouse.core import Lakehouse
from lakehouse.exceptions import (
    ConfigurationError,
    StoreUnavailableError,
    TierUnavailableError,
    ValidationError,
)
from lakehouse.memory import consolidate, shape, tombstones
from lakehouse.memory.cold import (
    ColdTier,
    TableErase,
    TableReseal,
    WarmSource,
    erase_rows,
    reseal_table,
    resealed_rows,
)
from lakehouse.memory.crypto import MemoryCipher
from lakehouse.memory.events import mentions
from lakehouse.memory.hot import HotTier
from lakehouse.memory.model import (
    DEFAULT_HALF_LIFE,
    DEFAULT_IMPORTANCE,
    Embedder,
    HashingEmbedder,
    Memory,
    SearchHit,
    check_filters,
    check_tenant,
    from_ms,
    normalise,
    parse_id,
    score,
    to_ms,
)
from lakehouse.memory.shape import Shape, ShapeHit
from lakehouse.memory.spool import Spool, spool_path
from lakehouse.memory.tables import (
    MEMORIES,
    MEMORY_EVENTS,
    MEMORY_EVENTS_REJECTED,
    ensure_tables,
    memory_table,
)
from lakehouse.memory.warm import WARM_ERRORS, WarmTier
from lakehouse.settings import Settings, redact_url
from lakehouse.stores import close_redis, open_qdrant, open_redis

log = logging.getLogger(__name__)
TIERS = ("hot", "warm", "cold")
_NEIGHBOURS = 8  # warm points compared with each memory leaving the hot tier (consolidation)
# What a tier that does not answer raises (Redis, Qdrant).
_DOWN: tuple[type[Exception], ...] = (redis.RedisError, *WARM_ERRORS)
_NOT_ERASED = "not erased yet (its tombstone is recorded: no ingestion or compaction takes it back)"
P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class EraseReceipt:
    """What an erase removed, where."""

    tenant_id: str
    memory_ids: tuple[str, ...]
    redis_keys_deleted: int
    redis_stream_entries_deleted: int
    redis_persistence_rewritten: bool
    qdrant_points_deleted: int
    qdrant_files_vacuumed: tuple[str, ...]
    iceberg: tuple[TableErase, ...]
    spool_entries_deleted: int = 0

    @property
    def found(self) -> bool:
        """Whether anything at all was removed."""
        return bool(
            self.redis_keys_deleted
            or self.redis_stream_entries_deleted
            or self.qdrant_points_deleted
            or self.spool_entries_deleted
            or any(t.rows_removed or t.snapshots_expired for t in self.iceberg)
        )


class SearchResults(list[SearchHit]):
    """The hits of a search, best first, and the tiers that did not answer (skipped)."""

    def __init__(self, hits: Sequence[SearchHit] = (), unavailable: Sequence[str] = ()) -> None:
        super().__init__(hits)
        self.unavailable: tuple[str, ...] = tuple(unavailable)


@dataclass(frozen=True)
class CompactionReport:
    """What one compaction moved and purged, per tier."""

    hot_to_warm: int = 0
    warm_to_cold: int = 0
    expired_hot: int = 0
    expired_warm: int = 0
    expired_cold: int = 0
    tenants: tuple[str, ...] = field(default_factory=tuple)
    spool_replayed: int = 0
    consolidated_hot: int = 0
    consolidated_warm: int = 0


@dataclass(frozen=True)
class RotationReport:
    """What a key rotation re-sealed with the current key, per tier and copy."""

    hot_records: int
    stream_entries: int
    warm_points: int
    iceberg: tuple[TableReseal, ...]
    qdrant_files_vacuumed: tuple[str, ...]
    redis_persistence_rewritten: bool


@dataclass(frozen=True)
class TierStats:
    """Per-tier counts and the oldest / next-expiring times (epoch ms), for sensors and runs."""

    hot: int
    hot_oldest_ms: int | None
    warm: int
    warm_oldest_ms: int | None
    warm_next_expiry_ms: int | None
    cold: int
    cold_next_expiry_ms: int | None
    spooled: int = 0


def _ranked(found: Sequence[Memory], vec: np.ndarray, pool: int) -> list[tuple[Memory, float]]:
    """The ``pool`` memories most similar to ``vec``, with their cosine similarity."""
    if not found:
        return []
    sims = np.asarray([m.vector for m in found], dtype=np.float32) @ vec
    return [(found[i], float(sims[i])) for i in np.argsort(-sims)[:pool]]


def _now_ms(now: datetime | None) -> int:
    return to_ms(now) if now is not None else int(time.time() * 1000)


def _rejected_mentioning(table: Any, tenant_id: str, memory_id: str | None) -> set[str]:
    """Stream ids of dead letters, on any branch or tag, whose payload names the memory/tenant."""
    ids: set[str] = set()
    for ref in table.metadata.refs.values():
        rows = table.scan(snapshot_id=ref.snapshot_id, selected_fields=("stream_id", "raw"))
        for row in rows.to_arrow().to_pylist():
            if mentions(row["raw"], tenant_id, memory_id):
                ids.add(row["stream_id"])
    return ids


class MemoryStore:
    """Agent memory over three tiers, synchronous.

    Example:
        >>> with MemoryStore(Settings.from_env()) as mem:
        ...     mid = mem.store("acme", "the user prefers short answers", ttl=timedelta(days=30))
        ...     hits = mem.search("acme", "short answers", k=5)
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        embedder: Embedder | None = None,
        half_life: timedelta = DEFAULT_HALF_LIFE,
        redis_client: Any = None,
        qdrant_client: Any = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.embedder: Embedder = embedder or HashingEmbedder()
        self.dim = self.embedder.dim
        self.half_life = half_life
        self._own_redis = redis_client is None
        self._own_qdrant = qdrant_client is None
        self.redis = redis_client if redis_client is not None else self._open_redis()
        # A Qdrant server down at start is the degraded mode below, not a failure to open.
        self.qdrant = (
            qdrant_client if qdrant_client is not None else open_qdrant(self.settings, check=False)
        )
        local = None if self.settings.qdrant_url else self.settings.qdrant_path
        self.lakehouse = Lakehouse(self.settings)
        self.cipher = MemoryCipher.from_settings(self.settings)
        self.hot = HotTier(self.redis, self.cipher)
        self.warm = WarmTier(self.qdrant, self.dim, local, self.cipher)
        self.cold = ColdTier(self.lakehouse, self.cipher)
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
        if self._own_qdrant:
            self.qdrant.close()
        if self._own_redis:
            close_redis(self.redis)

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ------------------------------------------------------------------------------

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
        created = _now_ms(now)
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
        return f"Qdrant local mode in {self.settings.qdrant_path}"

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

    # -- reads -------------------------------------------------------------------------------

    def get(self, tenant_id: str, memory_id: str, *, now: datetime | None = None) -> Memory | None:
        """The tenant's memory with this id from the hottest tier holding it, or None."""
        check_tenant(tenant_id)
        mid = parse_id(memory_id)
        if mid is None:
            return None
        now_ms = _now_ms(now)
        skipped: list[str] = []
        self._drain_quietly()
        try:  # the hot get refreshes the access time in the same round trip, hit or miss
            found = self.hot.get(tenant_id, mid, now_ms)
        except redis.RedisError as exc:
            self._skip("hot", exc, skipped)
            found = None
        if found is not None:
            return found
        found = self.spool.get(tenant_id, mid, now_ms)  # stored while Redis was down
        if found is not None:
            return found
        try:
            found = self.warm.get(tenant_id, mid, now_ms)
        except WARM_ERRORS as exc:
            self._skip("warm", exc, skipped)
        found = found or self.cold.get(tenant_id, mid, now_ms)
        if found is None and "hot" not in skipped:  # no such memory: keep no access time
            try:
                self.hot.untouch(tenant_id, mid)
            except redis.RedisError as exc:
                self._skip("hot", exc, [])
        return found

    def _touch(self, tenant_id: str, ids: list[str], now_ms: int) -> None:
        """Refresh access times; a read still answers when Redis has just gone away."""
        try:
            self.hot.touch(tenant_id, ids, now_ms)
        except redis.RedisError as exc:
            self._skip("hot", exc, [])

    def search(
        self,
        tenant_id: str,
        query: str | Sequence[float] | np.ndarray,
        k: int = 10,
        filters: Mapping[str, object] | None = None,
        *,
        tiers: Sequence[str] = TIERS,
        now: datetime | None = None,
    ) -> SearchResults:
        """Top ``k`` of the tenant's live memories over ``tiers``, in one merged ranking.

        Each tier contributes its best candidates by similarity (hot, then warm, then cold); a
        memory present in two tiers (mid-move) counts once, from the hotter tier. The merged
        candidates are ranked by similarity × decayed importance (newer access breaks ties).
        ``filters`` are metadata equalities, always ANDed with the tenant. A tier that does not
        answer is skipped (a warning is logged) and named in the result's ``unavailable``.
        """
        check_tenant(tenant_id)
        if k <= 0:
            return SearchResults()
        unknown = set(tiers) - set(TIERS)
        if unknown:
            raise ValidationError(f"unknown tier(s) {sorted(unknown)}; tiers are {TIERS}")
        flt = check_filters(filters)
        vec = normalise(self.embedder.embed(query) if isinstance(query, str) else query, self.dim)
        now_ms = _now_ms(now)
        pool = max(k * 4, 20)
        candidates: dict[str, tuple[Memory, float]] = {}
        skipped: list[str] = []
        self._drain_quietly()
        for tier in TIERS:
            if tier not in tiers:
                continue
            try:
                found = self._tier_search(tier, tenant_id, vec, pool, flt, now_ms)
            except _DOWN as exc:
                self._skip(tier, exc, skipped)
                found = []
            if tier == "hot":  # with what Redis will hold once the spool is replayed
                found += _ranked(self.spool.memories(tenant_id, now_ms, flt), vec, pool)
            for memory, sim in found:
                candidates.setdefault(memory.id, (memory, sim))
        access: dict[str, int] = {}
        if "hot" not in skipped:
            try:
                access = self.hot.access_times(tenant_id, list(candidates))
            except redis.RedisError as exc:
                self._skip("hot", exc, skipped)
        hits = []
        for mid, (memory, sim) in candidates.items():
            if mid in access:
                memory = Memory(**{**memory.__dict__, "last_access_ms": access[mid]})
            hits.append(SearchHit(memory, score(sim, memory, now_ms, self.half_life), sim))
        hits.sort(
            key=lambda h: (-h.score, -(h.memory.last_access_ms or h.memory.created_ms), h.memory.id)
        )
        top = hits[:k]
        if "hot" not in skipped:
            self._touch(tenant_id, [h.memory.id for h in top], now_ms)
        return SearchResults(top, skipped)

    def _tier_search(
        self,
        tier: str,
        tenant_id: str,
        vec: np.ndarray,
        pool: int,
        flt: dict[str, object],
        now_ms: int,
    ) -> list[tuple[Memory, float]]:
        if tier == "warm":
            return self.warm.search(tenant_id, vec, pool, flt, now_ms)
        if tier == "cold":
            return self.cold.search(tenant_id, vec, pool, flt, now_ms)
        return self.hot.search(tenant_id, vec, pool, flt, now_ms)

    def search_by_shape(
        self, tenant_id: str, query: Shape, k: int = 10, *, now: datetime | None = None
    ) -> list[ShapeHit]:
        """The tenant's ``k`` memories whose workflow run is closest in shape to ``query``.

        ``query`` is one of the tenant's indexed run ids or a run's diagrams; every live memory
        of the tenant carrying a signature (any tier) is ranked by exact diagram distance
        (the topology domain's bottleneck H0 + H1), closest first. A tier that does not
        answer is skipped with a warning, as in :meth:`search`.
        """
        check_tenant(tenant_id)
        if k <= 0:
            return []
        now_ms = _now_ms(now)
        try:
            target = shape.query_diagrams(self.qdrant, tenant_id, query)
        except WARM_ERRORS as exc:
            raise self._unavailable("warm", exc, "no shape search (the topology index)") from None
        self._drain_quietly()
        found: dict[str, Memory] = {}
        skipped: list[str] = []
        try:
            hot = self.hot.load(tenant_id, self.hot.ids(tenant_id))
        except redis.RedisError as exc:
            self._skip("hot", exc, skipped)
            hot = []
        try:
            warm = self.warm.scan(tenant_id)
        except WARM_ERRORS as exc:
            self._skip("warm", exc, skipped)
            warm = []
        spooled = self.spool.memories(tenant_id, now_ms)
        for memory in [*hot, *spooled, *warm, *self.cold.signed(tenant_id, now_ms)]:
            if memory.signature and not memory.expired(now_ms):
                found.setdefault(memory.id, memory)
        return shape.rank_by_shape(self.qdrant, tenant_id, target, list(found.values()), k)

    # -- statistics --------------------------------------------------------------------------

    def stats(self) -> TierStats:
        """Counts per tier and the times compaction cares about (no content)."""
        hot = 0
        oldest: int | None = None
        for tenant in self.hot.tenants():
            hot += self.hot.count(tenant)
            first = self.hot.oldest_created_ms(tenant)
            if first is not None and (oldest is None or first < oldest):
                oldest = first
        warm = self.warm.scan()
        expiries = [m.expires_ms for m in warm if m.expires_ms is not None]
        cold = self.cold.table
        cold_rows = 0
        cold_next_ms: int | None = None
        if cold.current_snapshot() is not None:
            rows = cold.scan(selected_fields=("expires_at",)).to_arrow()
            cold_rows = rows.num_rows
            times = [t for t in rows.column("expires_at").to_pylist() if t is not None]
            cold_next_ms = to_ms(min(times)) if times else None
        return TierStats(
            hot=hot,
            hot_oldest_ms=oldest,
            warm=len(warm),
            warm_oldest_ms=min((m.created_ms for m in warm), default=None),
            warm_next_expiry_ms=min(expiries, default=None),
            cold=cold_rows,
            cold_next_expiry_ms=cold_next_ms,
            spooled=self.spool.count(),
        )

    # -- compaction --------------------------------------------------------------------------

    def compact(
        self,
        *,
        now: datetime | None = None,
        hot_max_age: timedelta = timedelta(hours=1),
        hot_max_per_tenant: int | None = None,
        warm_max_age: timedelta = timedelta(days=30),
        warm_max_points: int | None = None,
        consolidate_cosine: float | None = consolidate.COSINE,
        consolidate_text: float = consolidate.TEXT,
    ) -> CompactionReport:
        """Move hot → warm past an age or count, warm → cold past an age or size; purge expired.

        Memories leaving the hot tier are consolidated with their near-duplicates (among
        themselves and in the warm tier; see :mod:`.consolidate`), unless
        ``consolidate_cosine`` is None. Idempotent; each move copies, verifies the copy in
        the destination, then trims.

        Raises:
            TierUnavailableError: Redis or Qdrant does not answer; the moves done before stay
                done, every other memory stays where it was (nothing is trimmed unverified).
        """
        if consolidate_cosine is not None:
            consolidate.check_thresholds(consolidate_cosine, consolidate_text)
        try:
            return self._compact(
                now,
                hot_max_age,
                hot_max_per_tenant,
                warm_max_age,
                warm_max_points,
                consolidate_cosine,
                consolidate_text,
            )
        except WARM_ERRORS as exc:
            raise self._unavailable("warm", exc, "compaction stopped, nothing was lost") from None

    def _compact(
        self,
        now: datetime | None,
        hot_max_age: timedelta,
        hot_max_per_tenant: int | None,
        warm_max_age: timedelta,
        warm_max_points: int | None,
        consolidate_cosine: float | None,
        consolidate_text: float,
    ) -> CompactionReport:
        now_ms = _now_ms(now)
        spool_replayed = self.drain_spool()  # first: the spool may add tenants
        try:
            tenants = self.hot.tenants()
        except redis.RedisError as exc:
            raise self._unavailable("hot", exc, "nothing was compacted") from None
        expired_hot = hot_to_warm = absorbed_hot = absorbed_warm = 0
        thresholds = None if consolidate_cosine is None else (consolidate_cosine, consolidate_text)
        for tenant in tenants:
            expired_hot += self.hot.drop_stale_index(tenant)
            cutoff = now_ms - int(hot_max_age.total_seconds() * 1000)
            ids = set(self.hot.ids(tenant, cutoff))
            if hot_max_per_tenant is not None:
                every = self.hot.ids(tenant)  # ordered by creation time
                ids |= set(every[: max(0, len(every) - hot_max_per_tenant)])
            memories = self.hot.load(tenant, sorted(ids))
            expired = [m.id for m in memories if m.expired(now_ms)]
            expired_hot += self.hot.trim(tenant, expired, keep_access=False)
            live = [m for m in memories if not m.expired(now_ms)]
            access = self.hot.access_times(tenant, [m.id for m in live])
            live = [
                Memory(**{**m.__dict__, "last_access_ms": access.get(m.id, m.last_access_ms)})
                for m in live
            ]
            moved_hot, merged_hot, merged_warm = self._hot_to_warm(tenant, live, now_ms, thresholds)
            hot_to_warm += moved_hot
            absorbed_hot += merged_hot
            absorbed_warm += merged_warm
        expired_warm = self.warm.purge_expired(now_ms)
        source = WarmSource(self.warm, self._erased)
        if warm_max_points is not None:
            points = self.warm.scan()
            excess = len(points) - warm_max_points
            if excess > 0:
                oldest = sorted(points, key=lambda m: (m.created_ms, m.id))[:excess]
                source.extra = {m.id for m in oldest}
        cutoff = now_ms - int(warm_max_age.total_seconds() * 1000)
        moved = self.cold.archive(source, from_ms(cutoff))  # type: ignore[arg-type]
        warm_to_cold = moved.trim.trimmed if moved.trim else 0
        late = self._erased(source.chosen)
        if late:  # erased while being archived: the erase may have missed the new cold copy
            erase_rows(self.cold.table, In("memory_id", sorted(late)))
            self.warm.delete(sorted(late))
        expired_cold = self.cold.purge_expired(now_ms)
        report = CompactionReport(
            hot_to_warm,
            warm_to_cold,
            expired_hot,
            expired_warm,
            expired_cold,
            tuple(tenants),
            spool_replayed=spool_replayed,
            consolidated_hot=absorbed_hot,
            consolidated_warm=absorbed_warm,
        )
        log.info("memory compaction: %s", report)
        return report

    def _hot_to_warm(
        self,
        tenant: str,
        live: list[Memory],
        now_ms: int,
        thresholds: tuple[float, float] | None,
    ) -> tuple[int, int, int]:
        """Consolidate, copy to Qdrant (an idempotent upsert by id), verify, only then trim.

        The same copy-verify-trim as :class:`lakehouse.ingest.tiering.Tiering`, whose destination is
        an Iceberg table; here the destination is the warm tier. An absorbed memory leaves its
        tier only once its survivor is verified in Qdrant. Returns (moved, absorbed from hot,
        absorbed from warm).
        """
        buried = self._erased(live)
        if buried:  # erased after this compaction read them: never copy, drop the hot copy
            self.hot.trim(tenant, sorted(buried), keep_access=False)
            live = [m for m in live if m.id not in buried]
        if not live:
            return 0, 0, 0
        if thresholds is None:
            todo = consolidate.Plan(survivors=live)
        else:
            todo = consolidate.plan(
                live,
                lambda leads: self.warm.nearest(
                    tenant, [m.vector for m in leads], _NEIGHBOURS, thresholds[0], now_ms
                ),
                cosine=thresholds[0],
                text=thresholds[1],
            )
        self.warm.put(todo.survivors)
        late = self._erased(todo.survivors)
        if late:  # erased while being copied: the erase may have missed the new warm copy
            self.warm.delete(sorted(late))
            self.hot.trim(tenant, sorted(late & {m.id for m in live}), keep_access=False)
        held = self.warm.held([m.id for m in todo.survivors if m.id not in late])
        hot_ids = {m.id for m in live}
        moved = [m.id for m in todo.survivors if m.id in held and m.id in hot_ids]
        unverified = [m.id for m in todo.survivors if m.id not in held and m.id not in late]
        if unverified:
            log.warning(
                "hot → warm: %d memory(ies) not verified in Qdrant; kept where they were",
                len(unverified),
            )
        from_hot = sorted(i for i, s in todo.absorbed_hot.items() if s in held)
        from_warm = sorted(i for i, s in todo.absorbed_warm.items() if s in held)
        for survivor in todo.survivors:  # a survivor's access time is its group's latest
            merged = survivor.metadata.get(consolidate.PROVENANCE)
            if merged and survivor.id in held and survivor.last_access_ms is not None:
                self.hot.touch(tenant, [survivor.id], survivor.last_access_ms)
        self.warm.delete(from_warm)
        self.hot.trim(tenant, moved)
        self.hot.trim(tenant, from_hot, keep_access=False)
        return len(moved), len(from_hot), len(from_warm)

    # -- erase -------------------------------------------------------------------------------

    def _bury(self, tenant_id: str, memory_id: str | None) -> None:
        """Tombstone first: an erase that cannot record its tombstone erases nothing."""
        try:
            tombstones.bury(self.redis, tenant_id, memory_id, int(time.time() * 1000))
        except redis.RedisError as exc:
            raise self._unavailable("hot", exc, "nothing was erased") from None

    def _erased(self, memories: Sequence[Memory]) -> set[str]:
        """The ids among ``memories`` that a tombstone covers (see :mod:`.tombstones`)."""
        return tombstones.erased(self.redis, [(m.tenant_id, m.id, m.created_ms) for m in memories])

    def forget(self, tenant_id: str, memory_id: str) -> EraseReceipt:
        """Erase one memory of the tenant from every tier, snapshot and file."""
        check_tenant(tenant_id)
        mid = parse_id(memory_id)
        if mid is None:
            return EraseReceipt(tenant_id, (), 0, 0, False, 0, (), ())
        # Tenant-qualified: another tenant's forget of this id buries nothing of theirs.
        self._bury(tenant_id, mid)
        try:
            points = [mid] if self.warm.owner(mid) == tenant_id else []  # expired ones too
        except WARM_ERRORS as exc:
            raise self._unavailable("warm", exc, _NOT_ERASED) from None
        spooled = self.spool.erase(tenant_id, [mid])
        keys = self.hot.trim(tenant_id, [mid], keep_access=False)
        entries = self.hot.erase_stream(tenant_id, {mid})
        self.warm.delete(points)
        vacuumed = tuple(self.warm.vacuum())
        iceberg = self._erase_iceberg(
            And(EqualTo("tenant_id", tenant_id), EqualTo("memory_id", mid)), tenant_id, mid
        )
        rewritten = self.hot.rewrite_persistence()
        self.hot.publish(self._forget_event("forget", tenant_id, mid))
        return EraseReceipt(
            tenant_id, (mid,), keys, entries, rewritten, len(points), vacuumed, iceberg, spooled
        )

    def forget_tenant(self, tenant_id: str) -> EraseReceipt:
        """Erase every memory of the tenant from every tier, snapshot and file."""
        check_tenant(tenant_id)
        self._bury(tenant_id, None)
        ids = set(self.hot.ids(tenant_id))
        ids |= {m.id for m in self.spool.memories(tenant_id, 0)}
        try:
            ids |= {m.id for m in self.warm.scan(tenant_id)}
        except WARM_ERRORS as exc:
            raise self._unavailable("warm", exc, _NOT_ERASED) from None
        cold = memory_table(self.lakehouse, "memories")
        if cold.current_snapshot() is not None:
            scan = cold.scan(
                row_filter=EqualTo("tenant_id", tenant_id), selected_fields=("memory_id",)
            )
            ids |= set(scan.to_arrow().column("memory_id").to_pylist())
        spooled = self.spool.erase(tenant_id, None)
        keys = self.hot.delete_tenant_keys(tenant_id)
        entries = self.hot.erase_stream(tenant_id, None)
        points = self.warm.delete_tenant(tenant_id)
        vacuumed = tuple(self.warm.vacuum())
        iceberg = self._erase_iceberg(EqualTo("tenant_id", tenant_id), tenant_id, None)
        rewritten = self.hot.rewrite_persistence()
        self.hot.publish(self._forget_event("forget_tenant", tenant_id, None))
        return EraseReceipt(
            tenant_id,
            tuple(sorted(ids)),
            keys,
            entries,
            rewritten,
            points,
            vacuumed,
            iceberg,
            spooled,
        )

    def _erase_iceberg(
        self, predicate: BooleanExpression, tenant_id: str, memory_id: str | None
    ) -> tuple[TableErase, ...]:
        erased = [
            erase_rows(memory_table(self.lakehouse, spec.name), predicate)
            for spec in (MEMORIES, MEMORY_EVENTS)
        ]
        rejected = memory_table(self.lakehouse, MEMORY_EVENTS_REJECTED.name)
        ids = _rejected_mentioning(rejected, tenant_id, memory_id)
        erased.append(erase_rows(rejected, In("stream_id", ids) if ids else AlwaysFalse()))
        return tuple(erased)

    # -- key rotation ------------------------------------------------------------------------

    def rotate_key(self) -> RotationReport:
        """Re-seal every copy of every memory with ``AURA_MEMORY_KEY``; return what changed.

        Reads accept ``AURA_MEMORY_OLD_KEYS`` (and plaintext); afterwards no tier, stream entry,
        Iceberg snapshot or data file of ``memories`` / ``memory_events`` needs an old key, Qdrant
        local storage is vacuumed and Redis persistence rewritten, so the old keys can be
        dropped. Snapshots other than the ref heads of those tables are expired (their time
        travel ends). Dead letters (``memory_events_rejected``) are kept as received.

        Raises:
            ConfigurationError: no ``AURA_MEMORY_KEY`` is set.
            MemoryKeyError: some copy is sealed with a key that is not configured (nothing
                after that copy is re-sealed; fix the keys and run it again: it is idempotent).
        """
        if not self.cipher.enabled:
            raise ConfigurationError(
                "rotate-key needs the new key in AURA_MEMORY_KEY (and the previous ones in "
                "AURA_MEMORY_OLD_KEYS); nothing was changed"
            )
        self.drain_spool()  # spooled copies join Redis first, and are re-sealed there
        try:
            hot = sum(self.hot.reseal(tenant) for tenant in self.hot.tenants())
            entries = self.hot.reseal_stream()
        except redis.RedisError as exc:
            raise self._unavailable("hot", exc, "the key was not rotated everywhere") from None
        try:
            points = self.warm.scan()
            self.warm.put(points)
        except WARM_ERRORS as exc:
            raise self._unavailable("warm", exc, "the key was not rotated everywhere") from None
        vacuumed = tuple(self.warm.vacuum())
        iceberg = tuple(
            reseal_table(
                memory_table(self.lakehouse, spec.name),
                partial(resealed_rows, cipher=self.cipher),
            )
            for spec in (MEMORIES, MEMORY_EVENTS)
        )
        rewritten = self.hot.rewrite_persistence()
        report = RotationReport(hot, entries, len(points), iceberg, vacuumed, rewritten)
        log.info("memory key rotation: %s", report)
        return report

    @staticmethod
    def _forget_event(op: str, tenant_id: str, memory_id: str | None) -> dict[str, Any]:
        now = int(time.time() * 1000)
        event: dict[str, Any] = {"event_id": str(uuid.uuid4()), "ts_ms": now, "op": op}
        return event | {"tenant_id": tenant_id, "memory_id": memory_id}


class AsyncMemoryStore:
    """The same API as :class:`MemoryStore`, awaitable; calls run on one worker thread.

    One thread keeps the tiers' clients (Qdrant local mode's SQLite connection among them)
    used by a single thread at a time.
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
