"""Routing in Dagster: assets materialise in-process, the IO manager round-trips."""

from __future__ import annotations

from datetime import UTC, date, datetime

import dagster as dg
import polars as pl
import pyarrow as pa
from helpers import decision, payload

from aura_assets.definitions import defs
from aura_assets.partitions import DAILY
from aura_assets.resources import RESOURCES
from aura_assets.routing.sensors import routing_stream_sensor
from lakehouse import Lakehouse
from lakehouse.simulate.routing import publish
from lakehouse.table import registry

DAY = "2026-11-20"


def test_job_materialises_partition_with_snapshot_as_data_version(
    in_aura_env, redis_client
) -> None:  # type: ignore[no-untyped-def]
    publish(redis_client, [payload(decision(i)) for i in range(30)] + ["{broken"])
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def("routing_ingest").execute_in_process(
        partition_key=DAY, instance=instance
    )
    assert result.success

    lh = Lakehouse(in_aura_env)
    head = lh.table("routing_decisions").current_snapshot()
    assert head.summary.additional_properties["aura.run-id"] == result.run_id
    assert head.summary.additional_properties["aura.partition"] == DAY

    event = instance.get_latest_materialization_event(dg.AssetKey("routing_decisions"))
    materialization = event.asset_materialization
    assert materialization.tags["dagster/data_version"] == str(head.snapshot_id)
    assert materialization.metadata["iceberg/snapshot_id"].value == str(head.snapshot_id)
    assert materialization.metadata["stream/rejected"].value == 1
    assert materialization.metadata["iceberg/published"].value is True
    checks = result.get_asset_check_evaluations()
    assert {c.asset_key.to_user_string() for c in checks} == {
        "routing_decisions",
        "routing_model_daily",
    }
    assert checks and all(c.passed for c in checks)
    # The publish fast-forwarded main and tagged the snapshot with the run.
    tags = [
        n
        for n, r in lh.table("routing_decisions").metadata.refs.items()
        if r.snapshot_ref_type == "tag"
    ]
    assert any(result.run_id in t for t in tags)
    assert lh.read("routing_decisions_rejected").num_rows == 1

    summary = lh.read("routing_model_daily", day=date(2026, 11, 20)).to_pylist()
    assert sum(r["decisions"] for r in summary) == 30
    daily = instance.get_latest_materialization_event(dg.AssetKey("routing_model_daily"))
    assert "preview" in daily.asset_materialization.metadata

    # Re-running the partition is idempotent: same rows, same summary.
    assert (
        defs.resolve_job_def("routing_ingest")
        .execute_in_process(partition_key=DAY, instance=instance)
        .success
    )
    assert lh.info("routing_decisions").rows == 30
    assert sum(r["decisions"] for r in lh.read("routing_model_daily").to_pylist()) == 30


def test_io_manager_round_trips_polars_and_arrow(in_aura_env) -> None:  # type: ignore[no-untyped-def]
    from pyiceberg.schema import Schema
    from pyiceberg.types import DoubleType, NestedField, StringType, TimestamptzType

    from lakehouse.table.registry import TableSpec, register

    register(
        TableSpec(
            name="io_probe",
            schema=Schema(
                NestedField(1, "ts", TimestamptzType(), required=True),
                NestedField(2, "model", StringType(), required=True),
                NestedField(3, "score", DoubleType(), required=False),
            ),
            time_column="ts",
            key=("ts", "model"),
            description="IO manager test table",
        )
    )

    @dg.asset(partitions_def=DAILY)
    def io_probe() -> pl.DataFrame:
        noon = datetime(2026, 11, 20, 12, tzinfo=UTC)
        return pl.DataFrame({"ts": [noon, noon], "model": ["a", "b"], "score": [0.5, 0.7]})

    @dg.asset(partitions_def=DAILY)
    def io_probe_reader(io_probe: pa.Table) -> None:
        assert io_probe.num_rows == 2
        assert sorted(io_probe.column("model").to_pylist()) == ["a", "b"]

    for _ in range(2):  # the second run overwrites the partition, never duplicates it
        result = dg.materialize([io_probe, io_probe_reader], partition_key=DAY, resources=RESOURCES)
        assert result.success
    meta = result.asset_materializations_for_node("io_probe")[0].metadata
    assert meta["dagster/row_count"].value == 2 and meta["iceberg/table"].value == "aura.io_probe"
    assert Lakehouse(in_aura_env).read("io_probe").num_rows == 2
    registry._REGISTRY.pop("io_probe")


def test_io_manager_refuses_unknown_output_types(in_aura_env) -> None:  # type: ignore[no-untyped-def]
    @dg.asset(partitions_def=DAILY)
    def routing_model_daily() -> dict:
        return {"not": "a table"}

    result = dg.materialize(
        [routing_model_daily], partition_key=DAY, resources=RESOURCES, raise_on_error=False
    )
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert (
        "return a pyarrow.Table or a polars.DataFrame"
        in failure.step_failure_data.error.to_string()
    )


def test_sensor_requests_one_run_per_backlog_day(in_aura_env, redis_client) -> None:  # type: ignore[no-untyped-def]
    with dg.build_sensor_context(resources=RESOURCES) as context:
        assert isinstance(routing_stream_sensor(context), dg.SkipReason)
    publish(redis_client, [payload(decision(1)), payload(decision(2, date(2026, 11, 21)))])
    with dg.build_sensor_context(resources=RESOURCES) as context:
        result = routing_stream_sensor(context)
    assert sorted(r.partition_key for r in result.run_requests) == ["2026-11-20", "2026-11-21"]


def test_selecting_only_routing_decisions_still_records_dead_letters(
    in_aura_env, redis_client
) -> None:  # type: ignore[no-untyped-def]
    from aura_assets.routing.assets import routing_decisions

    publish(redis_client, [payload(decision(i)) for i in range(4)] + ["[]"])
    result = dg.materialize(
        [routing_decisions],
        selection=["routing_decisions"],
        partition_key=DAY,
        resources=RESOURCES,
    )
    events = result.get_asset_materialization_events()
    assert [e.asset_key.to_user_string() for e in events] == ["routing_decisions"]
    lh = Lakehouse(in_aura_env)
    assert lh.info("routing_decisions").rows == 4
    assert lh.info("routing_decisions_rejected").rows == 1


def test_schedules_run_the_day_that_has_just_closed() -> None:
    at = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
    for name, job in (
        ("routing_ingest_schedule", "routing_ingest"),
        ("checkpoint_archive_schedule", "checkpoint_archive"),
    ):
        schedule = defs.resolve_schedule_def(name)
        assert schedule.job_name == job
        with dg.build_schedule_context(
            scheduled_execution_time=at, repository_def=defs.get_repository_def()
        ) as context:
            [request] = schedule.evaluate_tick(context).run_requests
        assert request.partition_key == "2026-11-30" and request.run_key == "2026-11-30"


def test_daily_summary_follows_its_upstream_by_automation() -> None:
    from aura_assets.partitions import FOLLOW_UPSTREAM

    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("routing_model_daily")).automation_condition == FOLLOW_UPSTREAM
    assert DAILY.start.date() <= date(2026, 11, 20)  # the tests' and the demo's days are in range
