"""Routing assets: ingestion of router decisions and a daily per-model summary."""

from datetime import date
from typing import Any

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    asset,
    multi_asset,
)

from aura_assets.concurrency import table_pool
from aura_assets.materialize import (
    audited_result,
    lineage_of,
    materialize,
    partition_day,
    snapshot_result,
)
from aura_assets.partitions import DAILY, FOLLOW_UPSTREAM
from aura_assets.streams import (
    dead_letter_check,
    ingest_log_line,
    ingest_metadata,
    stream_ingest_specs,
)
from aura_resources.lakehouse import LakehouseResource, RedisResource
from aura_resources.presentation import column_lineage
from lakehouse import Lakehouse, routing
from lakehouse.publish.wap import WapResult
from lakehouse.table import refs
from lakehouse.table.writer import WriteResult
from quality.audit import gx_audit
from quality.checks import (
    DEAD_LETTER_CHECK,
    check_results,
    check_specs,
    dead_letter_check_spec,
    quality_metadata,
)
from quality.validate import validate_ref

DECISIONS = AssetKey("routing_decisions")
REJECTED = AssetKey("routing_decisions_rejected")
DAILY_SUMMARY = AssetKey("routing_model_daily")
INGEST_CODE_VERSION = "routing-ingest-2"


@multi_asset(
    pool=table_pool("routing_decisions"),
    specs=stream_ingest_specs(
        DECISIONS,
        REJECTED,
        description="One row per model-router decision, ingested from the Redis Stream "
        "`aura:events:routing` and deduplicated on decision_id; written to an audit branch "
        "and published to the target branch only when its expectations pass.",
        rejected_description="Dead letters: routing events that failed validation, with the raw "
        "payload and the reason.",
        code_version=INGEST_CODE_VERSION,
        group="routing",
        owner="team:routing",
    ),
    check_specs=[*check_specs(DECISIONS), dead_letter_check_spec(DECISIONS)],
    can_subset=True,
)
def routing_decisions(
    context: AssetExecutionContext, lakehouse: LakehouseResource, redis: RedisResource
):
    """Drain the routing stream into the day's partition through write-audit-publish.

    Decisions are acknowledged only once published; a failed audit keeps them pending in the
    stream (and on the audit branch for inspection). Dead letters are recorded whenever
    malformed entries are seen, even when only ``routing_decisions`` is selected.
    """
    lh = lakehouse.lakehouse()
    day = partition_day(context.partition_key)
    assert day is not None  # the asset is daily partitioned
    report = routing.ingest_day(
        lh, redis.client(), day, audit=gx_audit, lineage=lineage_of(context, DECISIONS)
    )
    context.log.info(ingest_log_line(report, "decisions"))
    stats = ingest_metadata([report], "decisions")
    if DECISIONS in context.selected_asset_keys:
        yield _decisions_result(context, lh, report.wap, day, stats)
        if any(k.name == DEAD_LETTER_CHECK for k in context.selected_asset_check_keys):
            yield dead_letter_check(context, DECISIONS, report.read, report.rejected)
    if REJECTED in context.selected_asset_keys:
        # Dead letters are partitioned by the day they were rejected (a malformed event has no
        # trustworthy event day), so the count shown is the whole table's.
        yield _current(
            lh,
            REJECTED,
            report.rejected_write,
            None,
            {"rejected": report.rejected, "partition": day.isoformat()},
        )


def _decisions_result(
    context: AssetExecutionContext,
    lh: Lakehouse,
    wap: WapResult | None,
    day: date,
    stats: dict[str, Any],
) -> MaterializeResult:
    """The audited write's result; with nothing new, the target's day is audited as it is."""
    if wap is not None:
        return audited_result(context, DECISIONS, wap, None, day, stats, lakehouse=lh)
    audit = validate_ref(
        lh, DECISIONS.path[-1], lh.settings.branch, day=day, run_id=context.run.run_id
    )
    declared = {s.name for s in context.assets_def.check_specs}
    checks: list[AssetCheckResult] = [
        r for r in check_results(DECISIONS, audit) if r.check_name in declared
    ]
    result = _current(lh, DECISIONS, None, day, {**stats, **quality_metadata(audit)})
    return MaterializeResult(
        asset_key=DECISIONS,
        metadata=result.metadata,
        data_version=result.data_version,
        check_results=checks,
        tags=result.tags,
    )


def _current(
    lh: Lakehouse,
    key: AssetKey,
    write: WriteResult | None,
    day: date | None,
    extra: dict[str, Any],
) -> MaterializeResult:
    """Report the write, or the table's current head when this run had nothing to add."""
    if write is None:
        write = WriteResult(key.path[-1], lh.settings.branch, 0, _head(lh, key), "none")
    return snapshot_result(key, write, None, day, extra, lakehouse=lh)


def _head(lh: Lakehouse, key: AssetKey) -> int | None:
    """The snapshot at the head of the resource's branch."""
    return refs.head(lh.table(key.path[-1]), lh.settings.branch)


@asset(
    pool=table_pool("routing_model_daily"),
    partitions_def=DAILY,
    code_version="routing-model-daily-1",
    group_name="routing",
    owners=["team:routing"],
    kinds={"iceberg", "polars"},
    deps=[DECISIONS],
    automation_condition=FOLLOW_UPSTREAM,
    check_specs=check_specs(DAILY_SUMMARY),
    description="Per day and chosen model: decisions, cost, latency percentiles, quality and "
    "fallback rate. The router-retraining and drift work reads this.",
)
def routing_model_daily(
    context: AssetExecutionContext, lakehouse: LakehouseResource
) -> MaterializeResult:
    lh = lakehouse.lakehouse()
    day = partition_day(context.partition_key)
    decisions = pl.from_arrow(lh.read("routing_decisions", day=day))
    summary = summarize_models(decisions)  # type: ignore[arg-type]
    return materialize(context, lh, summary, extra_metadata=column_lineage(SUMMARY_SOURCES))


# Each column of routing_model_daily and the routing_decisions columns summarize_models reads.
SUMMARY_SOURCES = {
    name: [("routing_decisions", c) for c in columns]
    for name, columns in {
        "day": ["ts"],
        "chosen_model": ["chosen_model"],
        "decisions": ["decision_id"],
        "cost_usd": ["cost_usd"],
        "latency_p50_ms": ["latency_ms"],
        "latency_p95_ms": ["latency_ms"],
        "quality_mean": ["quality_score"],
        "fallback_rate": ["fallback_used"],
    }.items()
}


def summarize_models(decisions: pl.DataFrame) -> pl.DataFrame:
    """Aggregate decisions per (day, chosen model)."""
    return (
        decisions.group_by(pl.col("ts").dt.truncate("1d").alias("day"), "chosen_model")
        .agg(
            pl.len().cast(pl.Int64).alias("decisions"),
            pl.col("cost_usd").sum().alias("cost_usd"),
            pl.col("latency_ms").quantile(0.5).alias("latency_p50_ms"),
            pl.col("latency_ms").quantile(0.95).alias("latency_p95_ms"),
            pl.col("quality_score").mean().alias("quality_mean"),
            pl.col("fallback_used").mean().alias("fallback_rate"),
        )
        .sort("day", "chosen_model")
    )
