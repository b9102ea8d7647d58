"""Reads: ``get``, one ranking over every tier (``search``), shape search and tier statistics.

A tier that does not answer is skipped with a warning (``get`` falls through to the next tier,
``search`` names it in :attr:`SearchResults.unavailable`); every record read back is checked
against the caller's tenant, and an expired memory is absent from every read.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
import redis

from lakehouse.exceptions import StoreUnavailableError, ValidationError
from lakehouse.memory import shape
from lakehouse.memory.coldindex import INDEX_ERRORS
from lakehouse.memory.model import (
    MAX_K,
    Memory,
    SearchHit,
    check_filters,
    normalise,
    parse_id,
    score,
    to_ms,
)
from lakehouse.memory.shape import Shape, ShapeHit
from lakehouse.memory.tiers import DOWN, TIERS, MemoryTiers, clock_ms
from lakehouse.memory.warm import WARM_ERRORS
from lakehouse.table.tenants import check_tenant

log = logging.getLogger(__name__)
_INDEX_DOWN: tuple[type[Exception], ...] = (*INDEX_ERRORS, StoreUnavailableError)


class SearchResults(list[SearchHit]):
    """The hits of a search, best first, and the tiers that did not answer (skipped)."""

    def __init__(self, hits: Sequence[SearchHit] = (), unavailable: Sequence[str] = ()) -> None:
        super().__init__(hits)
        self.unavailable: tuple[str, ...] = tuple(unavailable)


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


class MemoryReads(MemoryTiers):
    """``get``, ``search``, ``search_by_shape`` and ``stats``."""

    def get(self, tenant_id: str, memory_id: str, *, now: datetime | None = None) -> Memory | None:
        """The tenant's memory with this id from the hottest tier holding it, or None."""
        check_tenant(tenant_id)
        mid = parse_id(memory_id)
        if mid is None:
            return None
        now_ms = clock_ms(now)
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
        Only memories with a positive similarity are hits: a query that shares nothing with a
        memory (cosine 0 or less: for the hashing embedder, not one character 3-gram) does
        not return it at score 0, so a one-letter query may return nothing.

        Raises:
            ValidationError: ``k`` above :data:`~lakehouse.memory.model.MAX_K`, an unknown tier
                or a filter that is not a plain key and scalar.
        """
        check_tenant(tenant_id)
        if k <= 0:
            return SearchResults()
        if k > MAX_K:
            raise ValidationError(f"k is {k}; a search returns at most {MAX_K} memories")
        unknown = set(tiers) - set(TIERS)
        if unknown:
            raise ValidationError(f"unknown tier(s) {sorted(unknown)}; tiers are {TIERS}")
        flt = check_filters(filters)
        vec = normalise(self.embedder.embed(query) if isinstance(query, str) else query, self.dim)
        now_ms = clock_ms(now)
        pool = max(k * 4, 20)
        candidates: dict[str, tuple[Memory, float]] = {}
        stubs: set[str] = set()  # cold candidates without content yet (see ColdTier.fetch)
        skipped: list[str] = []
        self._drain_quietly()
        for tier in TIERS:
            if tier not in tiers:
                continue
            try:
                found = self._tier_search(tier, tenant_id, vec, pool, flt, now_ms)
            except DOWN as exc:
                self._skip(tier, exc, skipped)
                found = []
            if tier == "hot":  # with what Redis will hold once the spool is replayed
                found += _ranked(self.spool.memories(tenant_id, now_ms, flt), vec, pool)
            for memory, sim in found:
                if memory.id not in candidates and tier == "cold" and not flt:
                    stubs.add(memory.id)
                candidates.setdefault(memory.id, (memory, sim))
        access: dict[str, int] = {}
        if "hot" not in skipped:
            try:
                access = self.hot.access_times(tenant_id, list(candidates))
            except redis.RedisError as exc:
                self._skip("hot", exc, skipped)
        hits = []
        for mid, (memory, sim) in candidates.items():
            if sim <= 0.0:  # shares nothing with the query: not a hit
                continue
            if mid in access:
                memory = Memory(**{**memory.__dict__, "last_access_ms": access[mid]})
            hits.append(SearchHit(memory, score(sim, memory, now_ms, self.half_life), sim))
        hits.sort(
            key=lambda h: (-h.score, -(h.memory.last_access_ms or h.memory.created_ms), h.memory.id)
        )
        top = self._whole(tenant_id, hits, k, stubs, now_ms)
        top = self._with_vectors(top, skipped)
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
        if tier == "warm":  # vectors read for the top k only (_whole)
            return self.warm.search(tenant_id, vec, pool, flt, now_ms, vectors=False)
        if tier == "cold":  # unfiltered: ranking stubs, the top ones read whole by _whole
            if flt:
                return self.cold.search(tenant_id, vec, pool, flt, now_ms)
            try:
                return self.cold.candidates(tenant_id, vec, pool, now_ms)
            except _INDEX_DOWN as exc:  # the table still answers
                log.warning(
                    "the cold tier's vector index does not answer (%s); cold memories are "
                    "ranked by reading the table instead",
                    exc,
                )
                return self.cold.scan_search(tenant_id, vec, pool, now_ms)
        return self.hot.search(tenant_id, vec, pool, flt, now_ms)

    def _whole(
        self, tenant_id: str, hits: list[SearchHit], k: int, stubs: set[str], now_ms: int
    ) -> list[SearchHit]:
        """The best ``k`` of ranked ``hits`` with every cold stub read whole (by id).

        A stub whose row is gone by now (erased or moved meanwhile) is dropped and the next
        hit takes its place: the order of the others is the ranking's.
        """
        out: list[SearchHit] = []
        at = 0
        while len(out) < k and at < len(hits):
            batch = hits[at : at + k - len(out)]
            at += len(batch)
            wanted = [h.memory for h in batch if h.memory.id in stubs]
            whole = self.cold.fetch(tenant_id, wanted, now_ms) if wanted else {}
            for hit in batch:
                if hit.memory.id in stubs:
                    row = whole.get(hit.memory.id)
                    if row is None:
                        continue
                    memory = replace(row, last_access_ms=hit.memory.last_access_ms)
                    hit = SearchHit(memory, hit.score, hit.similarity)
                out.append(hit)
        return out

    def _with_vectors(self, hits: list[SearchHit], skipped: list[str]) -> list[SearchHit]:
        """``hits`` with the vectors of warm memories, which the warm search leaves out.

        Should the warm tier stop answering in between, its hits are dropped and the tier is
        named unavailable, as if it had not answered the search.
        """
        bare = [h.memory.id for h in hits if not len(h.memory.vector)]
        if not bare:
            return hits
        try:
            vectors = self.warm.vectors(bare)
        except WARM_ERRORS as exc:
            self._skip("warm", exc, skipped)
            vectors = {}
        out = []
        for hit in hits:
            if not len(hit.memory.vector):
                if hit.memory.id not in vectors:
                    continue
                memory = replace(hit.memory, vector=vectors[hit.memory.id])
                hit = SearchHit(memory, hit.score, hit.similarity)
            out.append(hit)
        return out

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
        now_ms = clock_ms(now)
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
        try:  # the index opened once: an embedded shard's open takes its lock
            with shape.runs_index(self.settings, self.qdrant) as index:
                target = shape.query_diagrams(index, tenant_id, query)
                return shape.rank_by_shape(index, tenant_id, target, list(found.values()), k)
        except (*WARM_ERRORS, *INDEX_ERRORS) as exc:
            raise self._unavailable("warm", exc, "no shape search (the topology index)") from None

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
