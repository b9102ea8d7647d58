"""Build the training set for a day once its routing decisions are materialised."""

from dagster import (
    AssetKey,
    DefaultSensorStatus,
    EventLogEntry,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    asset_sensor,
)

from aura_assets.router.jobs import router_training_job


@asset_sensor(
    asset_key=AssetKey("routing_decisions"),
    job=router_training_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Build the router's training set for each day whose routing_decisions were "
    "materialised (on by default).",
)
def router_training_sensor(
    context: SensorEvaluationContext, asset_event: EventLogEntry
) -> RunRequest | SkipReason:
    """One training-set run per materialisation of a decisions partition."""
    materialization = asset_event.asset_materialization
    if materialization is None or materialization.partition is None:
        return SkipReason("routing_decisions materialised without a partition")
    return RunRequest(
        run_key=f"{materialization.partition}@{asset_event.timestamp}",
        partition_key=materialization.partition,
    )
