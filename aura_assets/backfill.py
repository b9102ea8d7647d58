"""Backfills: materialise assets for a range of days, one run per day, in the Dagster instance.

Each day is one run of the selected assets (plus the assets they cannot be split from, such as
the other outputs of a multi-asset), recorded in the instance under ``AURA_HOME`` like the demo's
runs and launched with the code location's origin (:mod:`aura_assets.launch`), so the UI's Runs
and asset pages show them, with the tag ``aura/backfill``. Every AURA asset overwrites or merges
its day by key, so re-running a range changes no row count and no content.
"""

import atexit
import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from uuid import uuid4

from dagster import AssetKey, AssetSelection, Definitions

from lakehouse.exceptions import AuraError, ConfigurationError
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from aura_assets.launch import Launcher

BACKFILL_TAG = "aura/backfill"
MAX_DAYS = 3660


class BackfillError(AuraError):
    """A backfill day could not be run at all (not a failed run: the run never started)."""


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
    parallel: int = 1,
) -> Iterator[DayRun]:
    """Run the assets ``names`` for each day from ``first`` to ``last``.

    Everything is validated before the first run. With ``parallel`` > 1, up to that many days
    run at once, each in its own process (runs of the instance like any other); commits to one
    table still take turns through the table's pool (:mod:`aura_assets.concurrency`). Days are
    started in order and yielded as they finish. A failed day stops the backfill: no later day
    is started (runs already going finish and are yielded), since later days may depend on it.
    """
    from aura_assets.definitions import defs

    days = days_between(first, last)
    check_days(settings, days)
    resolve_selection(defs, names)
    backfill_id = uuid4().hex[:8]
    if parallel <= 1:
        for day in days:
            run = _run_day(settings, tuple(names), day, backfill_id)
            yield run
            if not run.success:
                return
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=parallel, mp_context=context) as pool:
        pending = iter(days)
        running: set[Future[DayRun]] = set()
        failed = False
        while True:
            while not failed and len(running) < parallel:
                following = next(pending, None)
                if following is None:
                    break
                running.add(
                    pool.submit(_run_day_worker, settings, tuple(names), following, backfill_id)
                )
            if not running:
                return
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: f.result().day):
                run = future.result()
                failed = failed or not run.success
                yield run


def _run_day_worker(
    settings: Settings, names: tuple[str, ...], day: date, backfill_id: str
) -> DayRun:
    """:func:`_run_day` in a worker process: an error comes back as one that pickles."""
    try:
        return _run_day(settings, names, day, backfill_id)
    except Exception as exc:
        raise BackfillError(f"{day}: {type(exc).__name__}: {exc}") from None


def _run_day(settings: Settings, names: tuple[str, ...], day: date, backfill_id: str) -> DayRun:
    """One day's run of a backfill, launched with the code location's origin by this process's
    launcher (loaded once per process)."""
    from aura_assets.definitions import defs
    from aura_assets.launch import CLI_TAG

    keys = resolve_selection(defs, names)
    job = defs.resolve_implicit_global_asset_job_def()
    outcome = _launcher(settings).run(
        job.name,
        day.isoformat(),
        tags={BACKFILL_TAG: backfill_id, CLI_TAG: "backfill"},
        asset_selection=keys,
    )
    return DayRun(day, outcome.run_id, outcome.success, backfill_id)


_LAUNCHERS: dict[Settings, "Launcher"] = {}


def _launcher(settings: Settings) -> "Launcher":
    """This process's launcher for ``settings``' instance, opened on first use and kept (the
    code location loads once per process, not once per day); closed when the process exits."""
    if settings not in _LAUNCHERS:
        from aura_assets.instance import open_instance
        from aura_assets.launch import execution_config, launcher

        stack = ExitStack()
        instance = open_instance(settings)
        stack.callback(instance.dispose)
        _LAUNCHERS[settings] = stack.enter_context(
            launcher(instance, execution=execution_config(settings))
        )
        atexit.register(stack.close)
    return _LAUNCHERS[settings]
