"""Memory assets: the event log from the stream, and the warm index / cold archive compaction.

No memory content reaches Dagster: previews show ids, tenants, ops and times only, and run
metadata holds counts. So an erase (``aura memory forget``) has nothing to remove from the run
storage.
"""

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    Config,
    MaterializeResult,
    multi_asset,
)
from pydantic import Field

from aura_assets.concurrency import table_pool
from aura_assets.materialize import audited_result, lineage_of, partition_day, snapshot_result
from aura_assets.streams import (
    dead_letter_check,
    ingest_log_line,
    ingest_metadata,
    stream_ingest_specs,
)
from aura_resources.lakehouse import LakehouseResource, QdrantResource, RedisResource
from lakehouse.memory import MemoryStore, TierStats, ingest_memory_events
from lakehouse.table.writer import WriteResult
from quality.audit import gx_audit
from quality.checks import DEAD_LETTER_CHECK, check_specs, dead_letter_check_spec

EVENTS = AssetKey("memory_events")
REJECTED = AssetKey("memory_events_rejected")
WARM = AssetKey("memory_warm_index")
COLD = AssetKey("memory_cold_archive")
INGEST_CODE_VERSION = "memory-ingest-1"
COMPACTION_CODE_VERSION = "memory-compaction-1"

# Columns a preview may show: never content, metadata or signature.
PREVIEW_COLUMNS = ("event_id", "ts", "tenant_id", "op", "memory_id")


def safe_preview(rows: pa.Table, columns: tuple[str, ...] = PREVIEW_COLUMNS) -> pa.Table:
    """The rows without any column that can hold memory text."""
    return rows.select([c for c in columns if c in rows.column_names])


@multi_asset(
    pool=table_pool("memory_events"),
    specs=stream_ingest_specs(
        EVENTS,
        REJECTED,
        description="Every memory write (store, forget, forget_tenant) from the Redis Stream "
        "`aura:events:memory`, exactly once (keyed on event_id), written to an audit branch "
        "and published when its expectations pass. Erased memories leave no row.",
        rejected_description="Dead letters: memory events that failed validation, with the reason.",
        code_version=INGEST_CODE_VERSION,
        group="memory",
        owner="team:agents",
    ),
    check_specs=[*check_specs(EVENTS), dead_letter_check_spec(EVENTS)],
    can_subset=True,
)
def memory_events_ingest(
    context: AssetExecutionContext, lakehouse: LakehouseResource, redis: RedisResource
):
    """Drain the memory stream's events of the day through write-audit-publish."""
    lh = lakehouse.lakehouse()
    day = partition_day(context.partition_key)
    assert day is not None  # daily partitioned
    report = ingest_memory_events(
        lh, redis.client(), day, audit=gx_audit, lineage=lineage_of(context, EVENTS)
    )
    context.log.info(ingest_log_line(report, "events"))
    stats = ingest_metadata([report], "events")
    if EVENTS in context.selected_asset_keys:
        if report.wap is not None:
            yield audited_result(context, EVENTS, report.wap, safe_preview(report.rows), day, stats)
        else:
            yield _current(lh, EVENTS, None, day, stats)
        if any(k.name == DEAD_LETTER_CHECK for k in context.selected_asset_check_keys):
            yield dead_letter_check(context, EVENTS, report.read, report.rejected)
    if REJECTED in context.selected_asset_keys:
        yield _current(lh, REJECTED, report.rejected_write, day, {"rejected": report.rejected})


def _current(
    lh: Any, key: AssetKey, write: WriteResult | None, day: Any, extra: dict[str, Any]
) -> MaterializeResult:
    """Report the write, or the table's current head when this run had nothing to add."""
    if write is None:
        info = lh.info(key.path[-1])
        write = WriteResult(info.name, lh.settings.branch, 0, info.snapshot_id, "none")
    return snapshot_result(key, write, None, day, extra)


class MemoryCompactionConfig(Config):
    """When memories move between tiers."""

    hot_max_age_minutes: int = Field(
        default=60, ge=0, description="Hot memories older than this move to the warm tier."
    )
    warm_max_age_days: int = Field(
        default=30, ge=0, description="Warm memories older than this move to the cold tier."
    )


def tier_metadata(prefix: str, stats: TierStats) -> dict[str, Any]:
    """Per-tier counts and times, for run metadata and the compaction sensor."""
    return {f"{prefix}/{name}": value for name, value in asdict(stats).items() if value is not None}


@multi_asset(
    pool=table_pool("memories"),
    specs=[
        AssetSpec(
            WARM,
            description="The Qdrant collection `aura_memory`: memories moved out of the hot "
            "tier (Redis) past an age or a per-tenant count, searchable by meaning.",
            code_version=COMPACTION_CODE_VERSION,
            group_name="memory",
            owners=["team:agents"],
            kinds={"qdrant", "redis"},
        ),
        AssetSpec(
            COLD,
            description="The Iceberg table `memories`: warm memories past retention, copied "
            "into their day partitions, verified, then trimmed from Qdrant "
            "(lakehouse.ingest.tiering).",
            code_version=COMPACTION_CODE_VERSION,
            group_name="memory",
            owners=["team:agents"],
            kinds={"iceberg", "qdrant"},
            deps=[WARM],
            metadata={"iceberg/table": "aura.memories"},
        ),
    ],
    can_subset=False,
)
def memory_tiers(
    context: AssetExecutionContext,
    config: MemoryCompactionConfig,
    lakehouse: LakehouseResource,
    redis: RedisResource,
    qdrant: QdrantResource,
):
    """Move hot → warm → cold, purge expired memories; metadata gives each tier before/after."""
    settings = lakehouse.settings()
    qclient = qdrant.client()
    mem = MemoryStore(settings, redis_client=redis.client(), qdrant_client=qclient)
    try:
        before = mem.stats()
        report = mem.compact(
            now=datetime.now(UTC),
            hot_max_age=timedelta(minutes=config.hot_max_age_minutes),
            warm_max_age=timedelta(days=config.warm_max_age_days),
            run_id=context.run.run_id,
        )
        after = mem.stats()
    finally:
        mem.close()
        if qclient is not None:
            qclient.close()
    moved = {
        "moved/hot_to_warm": report.hot_to_warm,
        "moved/warm_to_cold": report.warm_to_cold,
        "purged/expired_hot": report.expired_hot,
        "purged/expired_warm": report.expired_warm,
        "purged/expired_cold": report.expired_cold,
        "consolidated/hot": report.consolidated_hot,
        "consolidated/warm": report.consolidated_warm,
        "spool/replayed": report.spool_replayed,
        "tenants": len(report.tenants),
    }
    context.log.info(f"memory compaction: {moved}")
    counts = {**tier_metadata("before", before), **tier_metadata("after", after), **moved}
    yield MaterializeResult(asset_key=WARM, metadata={"dagster/row_count": after.warm, **counts})
    lh = lakehouse.lakehouse()
    info = lh.info("memories")
    write = WriteResult(
        info.name, lh.settings.branch, report.warm_to_cold, info.snapshot_id, "merge"
    )
    yield snapshot_result(COLD, write, None, None, {**counts, "cold/rows": after.cold})
