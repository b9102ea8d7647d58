"""Routing assets: ingestion of router decisions and a daily per-model summary."""

import polars as pl
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    MaterializeResult,
    asset,
    multi_asset,
)

from aura_assets.partitions import DAILY
from aura_resources.iceberg import lineage_of, materialize, partition_day, snapshot_result
from aura_resources.lakehouse import LakehouseResource, RedisResource
from lakehouse import routing
from lakehouse.writer import WriteResult

DECISIONS = AssetKey("routing_decisions")
REJECTED = AssetKey("routing_decisions_rejected")
INGEST_CODE_VERSION = "routing-ingest-1"


@multi_asset(
    specs=[
        AssetSpec(
            DECISIONS,
            description="One row per model-router decision, ingested from the Redis Stream "
            "`aura:events:routing` and deduplicated on decision_id.",
            code_version=INGEST_CODE_VERSION,
            partitions_def=DAILY,
            group_name="routing",
            kinds={"iceberg", "redis"},
            metadata={"iceberg/table": "aura.routing_decisions"},
        ),
        AssetSpec(
            REJECTED,
            description="Dead letters: routing events that failed validation, with the raw "
            "payload and the reason.",
            code_version=INGEST_CODE_VERSION,
            partitions_def=DAILY,
            group_name="routing",
            kinds={"iceberg"},
            metadata={"iceberg/table": "aura.routing_decisions_rejected"},
        ),
    ],
    can_subset=True,
)
def routing_decisions(
    context: AssetExecutionContext, lakehouse: LakehouseResource, redis: RedisResource
):  # type: ignore[no-untyped-def]
    """Drain the routing stream into the day's partition; acknowledge after the commit.

    Dead letters are recorded whenever malformed entries are seen, even when only
    ``routing_decisions`` is selected: an entry is acknowledged only once it is stored somewhere.
    """
    lh = lakehouse.lakehouse()
    day = partition_day(context.partition_key)
    assert day is not None  # the asset is daily partitioned
    report = routing.ingest_day(lh, redis.client(), day, lineage=lineage_of(context, DECISIONS))
    context.log.info(
        f"{day}: read {report.read} entries, {report.new_decisions} new decisions, "
        f"{report.duplicates} duplicates, {report.rejected} rejected, {report.deferred} of "
        "other days left pending"
    )
    stats = {
        "stream/entries_read": report.read,
        "stream/new_decisions": report.new_decisions,
        "stream/duplicates": report.duplicates,
        "stream/rejected": report.rejected,
        "stream/deferred_other_days": report.deferred,
    }
    if DECISIONS in context.selected_asset_keys:
        yield _result(lh, DECISIONS, report.decisions_write, day, stats)
    if REJECTED in context.selected_asset_keys:
        yield _result(lh, REJECTED, report.rejected_write, day, {"rejected": report.rejected})


def _result(lh, key: AssetKey, write: WriteResult | None, day, extra: dict) -> MaterializeResult:  # type: ignore[no-untyped-def]
    """Report the write, or the table's current head when this run had nothing to add."""
    if write is None:
        info = lh.info(key.path[-1])
        write = WriteResult(info.name, lh.settings.branch, 0, info.snapshot_id, "none")
    return snapshot_result(key, write, None, day, extra)


@asset(
    partitions_def=DAILY,
    code_version="routing-model-daily-1",
    group_name="routing",
    kinds={"iceberg", "polars"},
    deps=[DECISIONS],
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
    return materialize(context, lh, summary)


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
