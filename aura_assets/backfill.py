"""Backfills: materialise assets for a range of days, one run per day, in the Dagster instance.

Each day is one run of the selected assets (plus the assets they cannot be split from, such as
the other outputs of a multi-asset), recorded in the instance under ``AURA_HOME`` like the demo's
runs and launched with the code location's origin (:mod:`aura_assets.launch`), so the UI's Runs
and asset pages show them, with the tag ``aura/backfill``. Every AURA asset overwrites or merges
its day by key, so re-running a range changes no row count and no content.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

from dagster import AssetKey, AssetSelection, Definitions

from lakehouse.exceptions import ConfigurationError
from lakehouse.settings import Settings

BACKFILL_TAG = "aura/backfill"
MAX_DAYS = 3660


@dataclass(frozen=True)
class DayRun:
    """One day's run of a backfill."""

    day: date
    run_id: str
    success: bool
    backfill_id: str
    """The value of the runs' ``aura/backfill`` tag (one per backfill)."""


def days_between(first: date, last: date) -> list[date]:
    """Every day from ``first`` to ``last``, both included."""
    if last < first:
        raise ConfigurationError(f"--to {last} is before --from {first}; swap them")
    count = (last - first).days + 1
    if count > MAX_DAYS:
        raise ConfigurationError(f"{count} days is more than {MAX_DAYS}; backfill in parts")
    return [first + timedelta(days=i) for i in range(count)]


def resolve_selection(defs: Definitions, names: Sequence[str]) -> list[AssetKey]:
    """The asset keys to run for ``names``, with the multi-asset outputs they require.

    Raises:
        ConfigurationError: a name is not an asset of the code location, or not daily partitioned.
    """
    graph = defs.resolve_asset_graph()
    known = {key.to_user_string(): key for key in graph.get_all_asset_keys()}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigurationError(
            f"unknown asset(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    selected = AssetSelection.assets(*(known[n] for n in names)).required_multi_asset_neighbors()
    keys = sorted(selected.resolve(graph), key=lambda k: k.to_user_string())
    unpartitioned = [k.to_user_string() for k in keys if graph.get(k).partitions_def is None]
    if unpartitioned:
        raise ConfigurationError(
            f"{', '.join(unpartitioned)} has no daily partitions; materialise it without a range"
        )
    return keys


def check_days(settings: Settings, days: Sequence[date]) -> None:
    """Refuse days outside the partitions (before AURA_PARTITIONS_START, or after today)."""
    start, today = settings.partitions_start, datetime.now(UTC).date()
    outside = [d for d in days if d < start or d > today]
    if outside:
        raise ConfigurationError(
            f"{outside[0]} is outside the daily partitions ({start} .. {today}); "
            "set AURA_PARTITIONS_START earlier to backfill older days"
        )


def backfill(
    settings: Settings,
    names: Sequence[str],
    first: date,
    last: date,
) -> Iterator[DayRun]:
    """Run the assets ``names`` for each day from ``first`` to ``last``, in order.

    Everything is validated before the first run. A failed day stops the backfill (its run is
    yielded with ``success=False``): later days may depend on it.
    """
    from aura_assets.definitions import defs
    from aura_assets.instance import open_instance
    from aura_assets.launch import CLI_TAG, launcher

    days = days_between(first, last)
    check_days(settings, days)
    keys = resolve_selection(defs, names)
    job = defs.resolve_implicit_global_asset_job_def()
    backfill_id = uuid4().hex[:8]
    instance = open_instance(settings)
    try:
        with launcher(instance) as launch:
            for day in days:
                outcome = launch.run(
                    job.name,
                    day.isoformat(),
                    tags={BACKFILL_TAG: backfill_id, CLI_TAG: "backfill"},
                    asset_selection=keys,
                )
                run = DayRun(day, outcome.run_id, outcome.success, backfill_id)
                yield run
                if not run.success:
                    return
    finally:
        instance.dispose()
