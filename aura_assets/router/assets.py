"""Router assets: the daily training set, and the gated retraining with its evaluation.

``router_model`` and ``router_evaluation`` are one step: :func:`lakehouse.router.retrain`
trains a candidate, writes it to an audit branch of ``router_models``, evaluates it (the audit)
and publishes it as champion only if it wins; the evaluation is recorded either way.
"""

from datetime import date, timedelta
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    BackfillPolicy,
    Config,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)

from aura_assets.concurrency import table_pool
from aura_assets.materialize import audited_result, lineage_of
from aura_assets.partitions import DAILY
from aura_resources.lakehouse import LakehouseResource
from aura_resources.presentation import branch_tags, column_lineage, read_metadata
from lakehouse import router
from lakehouse.publish.wap import write_audit_publish
from lakehouse.router.tables import ROUTER_TRAINING_SET
from quality.audit import gx_audit
from quality.checks import check_specs

DECISIONS = AssetKey("routing_decisions")
TRAINING = AssetKey("router_training_set")
MODEL = AssetKey("router_model")
EVALUATION = AssetKey("router_evaluation")

# The features lakehouse.router.features.training_set computes; other columns are copied as is.
_FEATURES = {
    "log_prompt_tokens": ["prompt_tokens"],
    "tod_sin": ["ts"],
    "tod_cos": ["ts"],
    "n_candidates": ["candidate_models"],
}
TRAINING_SOURCES = {
    f.name: [("routing_decisions", c) for c in _FEATURES.get(f.name, [f.name])]
    for f in ROUTER_TRAINING_SET.arrow_schema
}


@asset(
    pool=table_pool("router_training_set"),
    key=TRAINING,
    partitions_def=DAILY,
    backfill_policy=BackfillPolicy.single_run(),
    code_version="router-training-set-1",
    group_name="router",
    owners=["team:routing"],
    kinds={"iceberg", "polars"},
    deps=[DECISIONS],
    check_specs=check_specs(TRAINING),
    description="Features of each routing decision (task, tokens, tenant, candidates, time of "
    "day) with the observed cost, latency, quality and logged propensity of the chosen model. "
    "Each day is overwritten whole, so re-running a day changes nothing.",
    metadata={"iceberg/table": "aura.router_training_set"},
)
def router_training_set(
    context: AssetExecutionContext, lakehouse: LakehouseResource
) -> MaterializeResult:
    lh = lakehouse.lakehouse()
    window = context.partition_time_window
    days = [
        window.start.date() + timedelta(days=i) for i in range((window.end - window.start).days)
    ]
    lineage = lineage_of(context, TRAINING)
    waps = []
    for day in days:
        rows = router.training_day(lh, day)
        waps.append(
            write_audit_publish(
                lh, "router_training_set", rows, audit=gx_audit, day=day, lineage=lineage
            )
        )
    failed = [d for d, w in zip(days, waps, strict=True) if not w.published]
    if failed and len(days) > 1:
        raise Failure(description=f"audit failed for {failed}; those days are unchanged")
    extra = {
        "days": len(days),
        "rows_total": sum(w.write.rows for w in waps),
        **column_lineage(TRAINING_SOURCES),
    }
    last_day: date = days[-1]
    return audited_result(context, TRAINING, waps[-1], None, last_day, extra, lakehouse=lh)


class RetrainConfig(Config):
    """How many of the latest training-set days to train on and to hold out."""

    train_days: int = 3
    heldout_days: int = 1
    quality_floor: float = router.QUALITY_FLOOR
    threshold: float = router.DEFAULT_THRESHOLD


@multi_asset(
    pool=table_pool("router_models"),
    specs=[
        AssetSpec(
            MODEL,
            description="The learned router's versions (aura.router_models): a candidate trained "
            "on the latest days is written to an audit branch, evaluated there, and published "
            "as champion (the previous one retired) only if it beats it.",
            code_version="router-model-1",
            group_name="router",
            owners=["team:routing"],
            kinds={"iceberg", "scikitlearn"},
            deps=[TRAINING],
            metadata={"iceberg/table": "aura.router_models"},
        ),
        AssetSpec(
            EVALUATION,
            description="Off-policy evaluation (doubly robust, bootstrap intervals) of the "
            "candidate on held-out days against always-strongest, always-cheapest and the "
            "champion; the cost/quality curve over the policy's threshold and APGR.",
            code_version="router-model-1",
            group_name="router",
            owners=["team:routing"],
            kinds={"iceberg"},
            deps=[TRAINING],
            metadata={"iceberg/table": "aura.router_evaluations"},
        ),
    ],
    can_subset=False,
)
def router_model(
    context: AssetExecutionContext, config: RetrainConfig, lakehouse: LakehouseResource
):
    """Gated retraining: train, audit by evaluation, publish only a winner."""
    lh = lakehouse.lakehouse()
    train_days, heldout = router.split_days(lh, config.train_days, config.heldout_days)
    result = router.retrain(
        lh,
        train_days,
        heldout,
        lineage=lineage_of(context, MODEL),
        quality_floor=config.quality_floor,
        threshold=config.threshold,
    )
    context.log.info(
        f"candidate {result.candidate.version} "
        f"{'published as champion' if result.published else 'refused'}: "
        + "; ".join(result.decision.reasons)
    )
    models = lh.info("router_models")
    champion = router.champion_row(lh)
    yield MaterializeResult(
        asset_key=MODEL,
        metadata={
            "candidate_version": result.candidate.version,
            "champion_version": champion["version"] if champion else "",
            "published": result.published,
            "audit_branch": result.audit_branch,
            "reasons": "; ".join(result.decision.reasons),
            "train_days": ", ".join(d.isoformat() for d in train_days),
            "heldout_days": ", ".join(d.isoformat() for d in heldout),
            "iceberg/snapshot_id": str(models.snapshot_id),
            "dagster/row_count": models.rows,
            **read_metadata(lh),
        },
        data_version=DataVersion(str(models.snapshot_id)),
        tags=branch_tags(lh.settings.branch),
    )
    evaluations = lh.info("router_evaluations")
    yield MaterializeResult(
        asset_key=EVALUATION,
        metadata={
            **_figures(router.summary(result.evaluation)),
            "evaluation_id": result.evaluation_id,
            "decision": "promoted" if result.published else "refused",
            "curve": MetadataValue.md(router.curve_markdown(result.evaluation)),
            "iceberg/snapshot_id": str(evaluations.snapshot_id),
            **read_metadata(lh),
        },
        data_version=DataVersion(str(evaluations.snapshot_id)),
        tags=branch_tags(lh.settings.branch),
    )


def _figures(summary: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in summary.items():
        if value is None:
            out[key] = ""
        elif isinstance(value, float):
            out[key] = MetadataValue.float(round(value, 6))
        else:
            out[key] = value
    return out
