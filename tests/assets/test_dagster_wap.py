"""Write-audit-publish through Dagster: blocking checks guard main, branches come from config."""

import dagster as dg
import polars as pl
import pyarrow as pa
from helpers import bad_batch, decisions

from aura_assets.materialize import materialize
from aura_assets.partitions import DAILY
from aura_assets.resources import RESOURCES
from aura_resources.iceberg import IcebergIOManager
from aura_resources.lakehouse import LakehouseResource
from aura_resources.metadata import BRANCH_TAG
from lakehouse import Lakehouse
from lakehouse.table import refs
from quality.checks import build_quality_checks, check_specs

DAY = "2026-11-20"
TABLE = "routing_decisions"


def decisions_asset(batch: pa.Table) -> dg.AssetsDefinition:
    @dg.asset(name=TABLE, partitions_def=DAILY, check_specs=check_specs(TABLE))
    def routing_decisions(
        context: dg.AssetExecutionContext, lakehouse: LakehouseResource
    ) -> dg.MaterializeResult:
        return materialize(context, lakehouse.lakehouse(), batch)

    return routing_decisions


def test_bad_batch_fails_blocking_checks_and_main_is_unchanged(in_aura_env) -> None:  # type: ignore[no-untyped-def]
    lh = Lakehouse(in_aura_env)
    lh.append(TABLE, decisions(3))
    main_before = refs.head(lh.table(TABLE))
    instance = dg.DagsterInstance.ephemeral()

    result = dg.materialize(
        [decisions_asset(bad_batch())],
        partition_key=DAY,
        resources=RESOURCES,
        instance=instance,
        raise_on_error=False,
    )

    assert not result.success  # blocking checks failed with ERROR severity
    table = lh.table(TABLE)
    assert refs.head(table) == main_before
    meta = result.asset_materializations_for_node(TABLE)[0].metadata
    assert meta["iceberg/published"].value is False
    audit_branch = meta["iceberg/audit_branch"].value
    assert refs.head(table, audit_branch) == int(meta["iceberg/snapshot_id"].value)
    assert lh.read(TABLE, branch=audit_branch).num_rows == 4
    failed = {f["expectation"] for f in meta["quality/failed_expectations"].value}
    assert "quality_score_in_range" in failed
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["quality_score_in_range"] is False and checks["decision_id_not_null"] is True
    assert instance.get_run_by_id(result.run_id).tags[BRANCH_TAG] == "main"


def test_good_batch_is_published_with_passing_checks(in_aura_env) -> None:  # type: ignore[no-untyped-def]
    lh = Lakehouse(in_aura_env)
    result = dg.materialize([decisions_asset(decisions(5))], partition_key=DAY, resources=RESOURCES)

    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations())
    meta = result.asset_materializations_for_node(TABLE)[0].metadata
    table = lh.table(TABLE)
    assert refs.head(table) == int(meta["iceberg/snapshot_id"].value)
    assert refs.head(table, meta["iceberg/tag"].value) == refs.head(table)
    assert lh.read(TABLE).num_rows == 5


def test_branch_from_resource_config_leaves_main_alone(in_aura_env) -> None:  # type: ignore[no-untyped-def]
    lh = Lakehouse(in_aura_env)
    lh.append(TABLE, decisions(2))
    main_before = refs.head(lh.table(TABLE))
    instance = dg.DagsterInstance.ephemeral()
    resources = {**RESOURCES, "lakehouse": LakehouseResource(branch="exp-dagster")}

    result = dg.materialize(
        [decisions_asset(decisions(4, start=30))],
        partition_key=DAY,
        resources=resources,
        instance=instance,
    )

    assert result.success
    table = lh.table(TABLE)
    assert refs.head(table) == main_before
    assert lh.read(TABLE, branch="exp-dagster").num_rows == 4  # the day replaced on the branch
    assert instance.get_run_by_id(result.run_id).tags[BRANCH_TAG] == "exp-dagster"


def test_io_manager_path_refuses_a_bad_batch(in_aura_env) -> None:  # type: ignore[no-untyped-def]
    lh = Lakehouse(in_aura_env)
    from datetime import UTC, datetime

    @dg.asset(name="routing_model_daily", partitions_def=DAILY)
    def routing_model_daily() -> pl.DataFrame:
        return pl.DataFrame(
            {
                "day": [datetime(2026, 11, 20, tzinfo=UTC)],
                "chosen_model": ["small"],
                "decisions": [10],
                "cost_usd": [0.1],
                "latency_p50_ms": [1.0],
                "latency_p95_ms": [2.0],
                "quality_mean": [1.5],
                "fallback_rate": [0.0],
            }
        )

    result = dg.materialize(
        [routing_model_daily],
        partition_key=DAY,
        resources={**RESOURCES, "io_manager": IcebergIOManager(lakehouse=LakehouseResource())},
        raise_on_error=False,
    )

    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "quality_mean in [0, 1]" in failure.step_failure_data.user_failure_data.description
    assert lh.read("routing_model_daily").num_rows == 0


def test_standalone_checks_validate_main(in_aura_env) -> None:  # type: ignore[no-untyped-def]
    Lakehouse(in_aura_env).append(TABLE, decisions(3))

    @dg.asset(name=TABLE)
    def routing_decisions() -> None:
        return None

    checks = build_quality_checks([TABLE])
    result = dg.materialize([routing_decisions, *checks], resources=RESOURCES)

    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == len(check_specs(TABLE)) and all(e.passed for e in evaluations)
