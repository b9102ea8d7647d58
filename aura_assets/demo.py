"""The demo's Dagster part: routing runs per day, one topology run, the checkpoint archive run.

Runs are created with the ``aura`` code location's origin (``aura_assets.launch``), so the UI's
Jobs page, the job's Runs tab and the Overview timeline show them like runs launched from the UI.
"""

from collections.abc import Iterator
from datetime import date

from aura_assets.launch import Outcome
from lakehouse.settings import Settings


def run_demo(
    settings: Settings,
    days: list[date],
    checkpoint_day: date | None = None,
    topology_days: list[date] | None = None,
) -> Iterator[str]:
    """Run the demo's jobs in the persistent instance; yield one progress line per run.

    Args:
        settings: The AURA configuration whose instance (``AURA_HOME/dagster``) records the runs.
        days: Days to run ``routing_ingest`` for, in order.
        checkpoint_day: If given, then materialise ``workflow_checkpoints`` for this day
            (archive the hot store's checkpoints of the day into Iceberg, then trim it).
        topology_days: If given, then materialise ``topology_daily`` for these consecutive days
            in one run (workflow runs, signatures, Qdrant index, drift).
    """
    from aura_assets.instance import open_instance
    from aura_assets.launch import launcher

    instance = open_instance(settings)
    try:
        with launcher(instance) as launch:
            for day in days:
                outcome = launch.run("routing_ingest", day.isoformat())
                yield _routing_line(day, outcome)
                if not outcome.success:
                    raise RuntimeError(_failed(outcome))
            if topology_days:
                first, last = topology_days[0].isoformat(), topology_days[-1].isoformat()
                range_tags = {
                    "dagster/asset_partition_range_start": first,
                    "dagster/asset_partition_range_end": last,
                }
                outcome = launch.run("topology_daily", tags=range_tags)
                if not outcome.success:
                    raise RuntimeError(_failed(outcome))
                yield (
                    f"{first}...{last}: topology_daily run {outcome.run_id} succeeded "
                    "(`aura topology drift` shows it)"
                )
            if checkpoint_day is None:
                return
            outcome = launch.run("checkpoint_archive", checkpoint_day.isoformat())
            if not outcome.success:
                raise RuntimeError(_failed(outcome))
            yield _archive_line(checkpoint_day, outcome)
    finally:
        instance.dispose()


def _failed(outcome: Outcome) -> str:
    return (
        f"run {outcome.run_id} of {outcome.job_name} ({outcome.partition}) failed: "
        "`aura ui` shows its logs"
    )


def _routing_line(day: date, outcome: Outcome) -> str:
    meta = outcome.metadata.get("routing_decisions", {})
    rows = meta.get("dagster/row_count", "-")
    changed = "" if meta.get("aura/changed", True) else " (unchanged)"
    return f"{day}: routing_ingest run {outcome.run_id} succeeded: {rows} decisions{changed}"


def _archive_line(day: date, outcome: Outcome) -> str:
    """What the checkpoint archive run did, from its materialisation metadata."""
    from aura_assets.checkpoints.assets import CHECKPOINTS_KEY

    values = outcome.metadata["/".join(CHECKPOINTS_KEY.path)]
    return (
        f"{day}: workflow_checkpoints run {outcome.run_id} succeeded: archived "
        f"{values['rows_added']} checkpoints (archive {values.get('archive/size_ratio', '-')}x "
        f"the raw bytes), trimmed {values.get('hot/trimmed', 0)} hot rows"
    )


def train_router(settings: Settings, days: list[date]) -> Iterator[str]:
    """Build the router's training set for ``days`` and run ``router_retrain`` on them (the
    latest day held out) in the persistent instance; yield one line per run."""
    from aura_assets.instance import open_instance
    from aura_assets.launch import launcher

    instance = open_instance(settings)
    try:
        with launcher(instance) as launch:
            for day in days:
                outcome = launch.run("router_training", day.isoformat())
                if not outcome.success:
                    raise RuntimeError(_failed(outcome))
                yield f"{day}: router_training run {outcome.run_id} succeeded"
            config = {"train_days": len(days) - 1, "heldout_days": 1}
            outcome = launch.run(
                "router_retrain", run_config={"ops": {"router_model": {"config": config}}}
            )
            if not outcome.success:
                raise RuntimeError(_failed(outcome))
    finally:
        instance.dispose()
    meta = {k: v for values in outcome.metadata.values() for k, v in values.items()}
    verdict = "published as champion" if meta.get("published") else "refused"
    yield (
        f"router_retrain run {outcome.run_id} succeeded: candidate "
        f"{meta.get('candidate_version')} {verdict} ({meta.get('reasons')})"
    )
