"""Compaction: hot → warm past an age or count, warm → cold past an age or size; purge expired.

Each move copies, verifies the copy in the destination, then trims: a crash in between
duplicates a memory across tiers for a while (reads deduplicate by id) and never loses one.
Memories leaving the hot tier are consolidated with their near-duplicates (:mod:`.consolidate`);
tombstoned memories are never copied, and copies made while an erase ran are removed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import redis
from pyiceberg.expressions import In

from lakehouse.exceptions import TierUnavailableError, ValidationError
from lakehouse.memory import consolidate
from lakehouse.memory.cold import WarmSource, erase_rows
from lakehouse.memory.coldindex import INDEX_ERRORS
from lakehouse.memory.model import MAX_AGE, Memory, from_ms
from lakehouse.memory.tiers import MemoryTiers, clock_ms
from lakehouse.memory.warm import WARM_ERRORS

log = logging.getLogger(__name__)


_NEIGHBOURS = 8  # warm points compared with each memory leaving the hot tier (consolidation)


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


class MemoryCompaction(MemoryTiers):
    """``compact``."""

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
        run_id: str | None = None,
    ) -> CompactionReport:
        """Move hot → warm past an age or count, warm → cold past an age or size; purge expired.

        Memories leaving the hot tier are consolidated with their near-duplicates (among
        themselves and in the warm tier; see :mod:`.consolidate`), unless
        ``consolidate_cosine`` is None. Idempotent; each move copies, verifies the copy in
        the destination, then trims. ``run_id`` (e.g. the Dagster run's) is recorded on the
        cold tier's commits.

        Raises:
            TierUnavailableError: Redis or Qdrant does not answer; the moves done before stay
                done, every other memory stays where it was (nothing is trimmed unverified).
        """
        for name, age in (("hot_max_age", hot_max_age), ("warm_max_age", warm_max_age)):
            if not timedelta(0) <= age <= MAX_AGE:
                raise ValidationError(
                    f"{name} must lie between 0 and {MAX_AGE.days} days, got {age}"
                )
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
                run_id,
            )
        except TierUnavailableError:  # already names its tier (a StoreUnavailableError too)
            raise
        except (*WARM_ERRORS, *INDEX_ERRORS) as exc:
            raise self._unavailable("warm", exc, "compaction stopped, nothing was lost") from None
        finally:
            for collection in self._collections:  # other processes may have the shards now
                collection.idle()

    def _compact(
        self,
        now: datetime | None,
        hot_max_age: timedelta,
        hot_max_per_tenant: int | None,
        warm_max_age: timedelta,
        warm_max_points: int | None,
        consolidate_cosine: float | None,
        consolidate_text: float,
        run_id: str | None = None,
    ) -> CompactionReport:
        now_ms = clock_ms(now)
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
        if not self.cold.indexed():  # a new or lost shard: index what the table holds
            self.cold.reindex()
        source = WarmSource(self.warm, self._erased, self.cold.index)
        if warm_max_points is not None:
            points = self.warm.scan()
            excess = len(points) - warm_max_points
            if excess > 0:
                oldest = sorted(points, key=lambda m: (m.created_ms, m.id))[:excess]
                source.extra = {m.id for m in oldest}
        cutoff = now_ms - int(warm_max_age.total_seconds() * 1000)
        moved = self.cold.archive(source, from_ms(cutoff), run_id)  # type: ignore[arg-type]
        warm_to_cold = moved.trim.trimmed if moved.trim else 0
        late = self._erased(source.chosen)
        if late:  # erased while being archived: the erase may have missed the new cold copy
            erase_rows(self.cold.table, In("memory_id", sorted(late)))
            self.warm.delete(sorted(late))
            if self.cold.index is not None:
                self.cold.index.delete(sorted(late))
        expired_cold = self.cold.purge_expired(now_ms)
        # Build the engine's HNSW graphs and vacuum deleted points (blocks: compaction only).
        self.warm.vacuum()
        if self.cold.index is not None:
            self.cold.index.vacuum()
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
