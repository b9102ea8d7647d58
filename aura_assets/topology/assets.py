"""Topology assets: workflow runs from Redis, their signatures, the vector index, daily drift.

Every asset is daily with a single-run backfill policy: a run over a partition range handles
its days in order, each through the library's one path (:mod:`lakehouse.topology.ingest`,
``history``, ``index``, ``drift_reports``), so re-running a range rewrites the same rows.
"""

from datetime import date, timedelta
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    Config,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)

from aura_assets.concurrency import table_pool
from aura_assets.materialize import audited_result, partition_day, snapshot_result
from aura_assets.partitions import DAILY
from aura_assets.streams import ingest_log_line, ingest_metadata, stream_ingest_specs
from aura_resources.lakehouse import LakehouseResource, QdrantResource, RedisResource
from aura_resources.presentation import column_lineage
from lakehouse import Lakehouse
from lakehouse.publish.wap import WapResult
from lakehouse.table.writer import Lineage, WriteResult
from lakehouse.topology import drift_reports, history, index, ingest
from lakehouse.topology.retrieval import COLLECTION, SPEC
from lakehouse.topology.tables import TOPOLOGY_HISTORY
from quality.audit import gx_audit
from quality.checks import check_results, check_specs, quality_metadata
from quality.validate import validate_ref

RUNS = AssetKey("workflow_runs")
REJECTED = AssetKey("workflow_runs_rejected")
HISTORY = AssetKey("topology_history")
INDEX = AssetKey("topology_index")
DRIFT = AssetKey("topology_drift")
DRIFT_TABLE = "drift_reports"
GROUP = "topology"
INGEST_CODE_VERSION = "workflow-ingest-1"
SINGLE_RUN = BackfillPolicy.single_run()
RECENT_DAYS = 14

# topology_history copies a run's identity from workflow_runs and computes the rest (sizes,
# latency, error rate, the persistence signature) from its call graph; computed_at is the clock.
_COPIED = ("run_id", "ts", "tenant_id", "workflow", "status")
HISTORY_SOURCES = {
    f.name: [(RUNS.path[-1], c) for c in ((f.name,) if f.name in _COPIED else ("nodes", "edges"))]
    for f in TOPOLOGY_HISTORY.arrow_schema
    if f.name != "computed_at"
}


def run_days(context: AssetExecutionContext) -> list[date]:
    """The days of the run's partition or partition range, in order."""
    if context.has_partition_key:
        day = partition_day(context.partition_key)
        assert day is not None
        return [day]
    window = context.partition_time_window
    first, end = window.start.date(), window.end.date()
    return [first + timedelta(days=i) for i in range((end - first).days)]


def _lineage(context: AssetExecutionContext, key: AssetKey, day: date) -> Lineage:
    return Lineage(
        asset=key.to_user_string(),
        partition=day.isoformat(),
        run_id=context.run.run_id,
        code_version=context.assets_def.code_versions_by_key.get(key),
    )


def _range(days: list[date]) -> str:
    return days[0].isoformat() if len(days) == 1 else f"{days[0]}...{days[-1]}"


def _audited(
    context: AssetExecutionContext,
    lh: Lakehouse,
    key: AssetKey,
    table: str,
    waps: list[tuple[date, WapResult | None]],
    stats: dict[str, Any],
) -> MaterializeResult:
    """One result for the run: a failed day's audit if any, else the last write's.

    When no day wrote anything new, the last day of the target is audited as it stands so the
    blocking checks still report.
    """
    written = [(d, w) for d, w in waps if w is not None]
    failed = [(d, w) for d, w in written if not w.published]
    stats = {**stats, "partitions": _range([d for d, _ in waps])}
    if failed or written:
        day, wap = failed[0] if failed else written[-1]
        assert wap is not None
        return audited_result(context, key, wap, None, day, stats, lakehouse=lh)
    day = waps[-1][0]
    audit = validate_ref(lh, table, lh.settings.branch, day=day, run_id=context.run.run_id)
    declared = {s.name for s in context.assets_def.check_specs if s.asset_key == key}
    checks: list[AssetCheckResult] = [
        r for r in check_results(key, audit) if r.check_name in declared
    ]
    result = _current(lh, key, table, None, day, {**stats, **quality_metadata(audit)})
    return MaterializeResult(
        asset_key=key,
        metadata=result.metadata,
        data_version=result.data_version,
        check_results=checks,
    )


def _current(
    lh: Lakehouse,
    key: AssetKey,
    table: str,
    write: WriteResult | None,
    day: date,
    extra: dict[str, Any],
) -> MaterializeResult:
    """Report the write, or the table's current head when this run had nothing to add."""
    if write is None:
        info = lh.info(table)
        write = WriteResult(info.name, lh.settings.branch, 0, info.snapshot_id, "none")
    return snapshot_result(key, write, None, day, extra, lakehouse=lh)


@multi_asset(
    pool=table_pool("workflow_runs"),
    specs=stream_ingest_specs(
        RUNS,
        REJECTED,
        description="One row per agent workflow run, ingested exactly once from the Redis "
        "Stream `aura:events:workflows` (keyed on run_id), published through "
        "write-audit-publish.",
        rejected_description="Dead letters: workflow-trace events that broke the contract, "
        "with the raw payload and the reason.",
        code_version=INGEST_CODE_VERSION,
        group=GROUP,
        owner="team:topology",
    ),
    check_specs=check_specs(RUNS),
    can_subset=True,
    backfill_policy=SINGLE_RUN,
)
def workflow_runs(
    context: AssetExecutionContext, lakehouse: LakehouseResource, redis: RedisResource
):
    """Drain the workflows stream, day by day, into ``workflow_runs`` (audited)."""
    lh = lakehouse.lakehouse()
    client = redis.client()
    days = run_days(context)
    reports = [
        ingest.ingest_day(lh, client, d, audit=gx_audit, lineage=_lineage(context, RUNS, d))
        for d in days
    ]
    for r in reports:
        context.log.info(ingest_log_line(r, "runs"))
    stats = ingest_metadata(reports, "runs")
    if RUNS in context.selected_asset_keys:
        yield _audited(context, lh, RUNS, RUNS.path[-1], [(r.day, r.wap) for r in reports], stats)
    if REJECTED in context.selected_asset_keys:
        writes = [r.rejected_write for r in reports if r.rejected_write is not None]
        yield _current(
            lh,
            REJECTED,
            REJECTED.path[-1],
            writes[-1] if writes else None,
            days[-1],
            {"rejected": stats["stream/rejected"], "partitions": _range(days)},
        )


@asset(
    pool=table_pool("topology_history"),
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
    code_version="topology-history-1",
    group_name=GROUP,
    owners=["team:topology"],
    kinds={"iceberg", "gudhi"},
    deps=[RUNS],
    check_specs=check_specs(HISTORY),
    description="One row per workflow run: persistent homology (gudhi) of its call graph "
    "filtered by 1/(1+calls): H0/H1 diagrams, Betti numbers, entropy, landscape norms, "
    "bottleneck score and agents, persistence images and Betti curves.",
)
def topology_history(
    context: AssetExecutionContext, lakehouse: LakehouseResource
) -> MaterializeResult:
    lh = lakehouse.lakehouse()
    days = run_days(context)
    waps: list[tuple[date, WapResult | None]] = [
        (d, history.history_day(lh, d, audit=gx_audit, lineage=_lineage(context, HISTORY, d)))
        for d in days
    ]
    rows = sum(w.write.rows for _, w in waps if w is not None)
    stats = {"runs": rows, **column_lineage(HISTORY_SOURCES)}
    return _audited(context, lh, HISTORY, HISTORY.path[-1], waps, stats)


@asset(
    pool=f"qdrant/{COLLECTION}",
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
    code_version="topology-index-3",
    group_name=GROUP,
    owners=["team:topology"],
    kinds={"qdrant"},
    deps=[HISTORY],
    description=f"The vector collection `{COLLECTION}` (a Qdrant Edge shard in AURA_HOME, or "
    "the Qdrant server of AURA_QDRANT_URL): one point per run of topology_history (named "
    "vectors `image` and `betti`, tenant in the payload), replaced day by day, then optimized "
    "(the HNSW graph is built here, where it blocks nobody); "
    "`lakehouse.topology.index.rebuild_index` rebuilds it from the table.",
)
def topology_index(
    context: AssetExecutionContext, lakehouse: LakehouseResource, qdrant: QdrantResource
) -> MaterializeResult:
    lh = lakehouse.lakehouse()
    store = qdrant.store(SPEC)
    try:
        reports = [index.index_day(lh, store, d) for d in run_days(context)]
        optimized = store.optimize()
    finally:
        store.close()  # an Edge shard stays locked until closed
    last = reports[-1]
    return MaterializeResult(
        metadata={
            "qdrant/collection": COLLECTION,
            "qdrant/engine": "Qdrant server" if qdrant.settings().qdrant_url else "Qdrant Edge",
            "qdrant/points": last.points,
            "qdrant/optimized": optimized,
            "qdrant/indexed": sum(r.indexed for r in reports),
            "qdrant/removed_stale": sum(r.removed for r in reports),
            "iceberg/history_snapshot_id": str(last.history_snapshot_id),
            "partitions": _range([r.day for r in reports]),
        },
        data_version=DataVersion(f"{last.history_snapshot_id}:{last.points}"),
    )


class DriftConfig(Config):
    """How the daily drift test is run."""

    reference_days: int = drift_reports.DEFAULT_REFERENCE_DAYS
    seed: int = 0
    alpha: float = 0.01
    n_permutations: int = 999


@asset(
    pool=table_pool(DRIFT_TABLE),
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
    code_version="topology-drift-1",
    group_name=GROUP,
    owners=["team:topology"],
    kinds={"iceberg", "gudhi"},
    deps=[HISTORY, RUNS],
    check_specs=check_specs(DRIFT, table=DRIFT_TABLE),
    metadata={"iceberg/table": f"aura.{DRIFT_TABLE}"},
    description="Daily drift of workflow shape: a seeded permutation test on diagram distances "
    "of the day's runs against the reference window, next to a KS baseline on node count, edge "
    "count, mean latency and error rate. Rows in aura.drift_reports; `drift_sensor` requests a "
    "router retraining for each flagged day.",
)
def topology_drift(
    context: AssetExecutionContext, lakehouse: LakehouseResource, config: DriftConfig
) -> MaterializeResult:
    lh = lakehouse.lakehouse()
    results = [
        drift_reports.drift_day(
            lh,
            d,
            audit=gx_audit,
            reference_days=config.reference_days,
            seed=config.seed,
            alpha=config.alpha,
            n_permutations=config.n_permutations,
            lineage=_lineage(context, DRIFT, d),
        )
        for d in run_days(context)
    ]
    flagged = {
        r.day.isoformat(): r.topology.p_value
        for r in results
        if r.topology is not None and r.topology.drifted
    }
    for r in results:
        if r.reason:
            context.log.info(f"{r.day}: no drift test ({r.reason})")
    last = results[-1]
    stats: dict[str, Any] = {
        "drift/flagged_days": MetadataValue.json(flagged),
        "drift/p_values": MetadataValue.md(recent_p_values(lh, last.day)),
        "drift/reference_days": config.reference_days,
    }
    if last.topology is not None:
        stats["drift/topology_p_value"] = last.topology.p_value
    if last.scalar is not None:
        stats["drift/scalar_p_value"] = last.scalar.p_value
    return _audited(context, lh, DRIFT, DRIFT_TABLE, [(r.day, r.wap) for r in results], stats)


def recent_p_values(lh: Lakehouse, day: date, days: int = RECENT_DAYS) -> str:
    """A markdown table of both detectors' p-values over the ``days`` up to ``day``."""
    from datetime import UTC, datetime

    start = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(days=days - 1)
    rows = lh.read(DRIFT_TABLE, window=(start, start + timedelta(days=days))).to_pylist()
    by_day: dict[date, dict[str, Any]] = {}
    for r in rows:
        by_day.setdefault(r["day"].date(), {})[r["detector"]] = r
    lines = ["| day | topology p | scalar p | drift |", "|---|---|---|---|"]
    for d in sorted(by_day):
        t, s = by_day[d].get("topology"), by_day[d].get("scalar")
        lines.append(
            f"| {d} | {_p(t)} | {_p(s)} | "
            f"{'**topology**' if t and t['drift'] else ''}{' scalar' if s and s['drift'] else ''} |"
        )
    return "\n".join(lines)


def _p(row: dict[str, Any] | None) -> str:
    return "-" if row is None else f"{row['p_value']:.4f}"
