"""The demo's Dagster part: routing runs for each day, then the day's checkpoint archive run."""

from collections.abc import Iterator
from datetime import date
from typing import TYPE_CHECKING

from lakehouse.settings import Settings

if TYPE_CHECKING:
    from dagster import ExecuteInProcessResult

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def run_demo(
    settings: Settings, days: list[date], checkpoint_day: date | None = None
) -> Iterator[str]:
    """Run the demo's jobs in the persistent instance; yield one progress line per run.

    Args:
        settings: The AURA configuration whose instance (``AURA_HOME/dagster``) records the runs.
        days: Days to run ``routing_ingest`` for, in order.
        checkpoint_day: If given, then materialise ``workflow_checkpoints`` for this day
            (archive the hot store's checkpoints of the day into Iceberg, then trim it).
    """
    from aura_assets.definitions import defs
    from aura_assets.instance import open_instance

    instance = open_instance(settings)
    job = defs.resolve_job_def("routing_ingest")
    for day in days:
        result = job.execute_in_process(
            partition_key=day.isoformat(),
            instance=instance,
            run_config=QUIET,
            raise_on_error=True,
        )
        yield f"{day}: run {result.run_id} {'succeeded' if result.success else 'FAILED'}"
    if checkpoint_day is None:
        return
    result = defs.resolve_job_def("checkpoint_archive").execute_in_process(
        partition_key=checkpoint_day.isoformat(),
        instance=instance,
        run_config=QUIET,
        raise_on_error=True,
    )
    yield _archive_line(checkpoint_day, result)


def _archive_line(day: date, result: "ExecuteInProcessResult") -> str:
    """What the checkpoint archive run did, from its materialisation metadata."""
    from aura_assets.checkpoints.assets import CHECKPOINTS_KEY

    events = result.asset_materializations_for_node(CHECKPOINTS_KEY.path[-1])
    meta = next(e.metadata for e in events if e.asset_key == CHECKPOINTS_KEY)
    values = {k: getattr(v, "value", v) for k, v in meta.items()}
    return (
        f"{day}: workflow_checkpoints run {result.run_id} "
        f"{'succeeded' if result.success else 'FAILED'}: archived {values['rows_added']} "
        f"checkpoints (archive {values.get('archive/size_ratio', '-')}x the raw bytes), "
        f"trimmed {values.get('hot/trimmed', 0)} hot rows"
    )


def train_router(settings: Settings, days: list[date]) -> Iterator[str]:
    """Build the router's training set for ``days`` and run ``router_retrain`` on them (the
    latest day held out) in the persistent instance; yield one line per run."""
    from aura_assets.definitions import defs
    from aura_assets.instance import open_instance

    instance = open_instance(settings)
    training = defs.resolve_job_def("router_training")
    for day in days:
        result = training.execute_in_process(
            partition_key=day.isoformat(), instance=instance, run_config=QUIET
        )
        yield f"{day}: router_training run {result.run_id} " + (
            "succeeded" if result.success else "FAILED"
        )
    config = {"train_days": len(days) - 1, "heldout_days": 1}
    result = defs.resolve_job_def("router_retrain").execute_in_process(
        instance=instance,
        run_config={**QUIET, "ops": {"router_model": {"config": config}}},
        raise_on_error=True,
    )
    meta = {
        k: getattr(v, "value", v)
        for e in result.get_asset_materialization_events()
        for k, v in e.step_materialization_data.materialization.metadata.items()
    }
    verdict = "published as champion" if meta.get("published") else "refused"
    yield (
        f"router_retrain run {result.run_id} succeeded: candidate {meta.get('candidate_version')} "
        f"{verdict} ({meta.get('reasons')})"
    )
