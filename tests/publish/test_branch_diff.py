"""``aura branch diff`` shows which days each table holds on the branch, and what is incomplete.

The case it exists for: decisions of a new day written to an experiment branch without their
daily summary. A publish would put the decisions on main without the aggregate; the diff says
so before anyone publishes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pyarrow as pa
from click.testing import CliRunner
from helpers import day_decisions, objstore_env

from aura_assets.cli import main
from aura_assets.routing.assets import summarize_models
from lakehouse import Lakehouse, Settings
from lakehouse.publish import experiments

DECISIONS, DAILY = "routing_decisions", "routing_model_daily"
D1, D2 = datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC)


def _summary(decisions: pa.Table) -> pa.Table:
    frame = pl.from_arrow(decisions)
    assert isinstance(frame, pl.DataFrame)
    return summarize_models(frame).to_arrow()


def _write_day(lh: Lakehouse, day: datetime, n: int, start: int = 0) -> None:
    rows = day_decisions(n, day, start=start)
    lh.overwrite_day(DECISIONS, rows, day.date())
    lh.overwrite_day(DAILY, _summary(rows), day.date())


def _diff(settings: Settings, name: str) -> str:
    env = {
        "AURA_HOME": str(settings.home),
        "AURA_CATALOG_URI": settings.catalog_uri,
        "AURA_CATALOG_NAME": settings.catalog_name,
        "AURA_WAREHOUSE": settings.warehouse,
        **objstore_env(),  # the REST catalog's credential and the S3 keys on that pass
    }
    result = CliRunner(env=env).invoke(main, ["branch", "diff", name, "--no-metrics"])
    assert result.exit_code == 0, result.output
    return result.output


def test_diff_shows_each_tables_days_and_names_an_incomplete_table(
    lakehouse: Lakehouse, settings: Settings
) -> None:
    _write_day(lakehouse, D1, 5)
    experiments.create(lakehouse, "exp-1", tables=[DECISIONS, DAILY])
    on_branch = Lakehouse(settings.with_overrides(branch="exp-1"))
    new_day = day_decisions(7, D2, start=100)
    on_branch.overwrite_day(DECISIONS, new_day, D2.date())
    # The summary is rewritten for the old day only: the new day has decisions, no aggregate.
    on_branch.overwrite_day(DAILY, _summary(day_decisions(5, D1)), D1.date())

    diffs = {d.table: d for d in experiments.diff(lakehouse, "exp-1", metrics=False)}
    assert diffs[DECISIONS].main_days == (date(2026, 11, 20),)
    assert diffs[DECISIONS].branch_days == (date(2026, 11, 20), date(2026, 11, 21))
    assert diffs[DECISIONS].days_only_on_branch == (date(2026, 11, 21),)
    assert diffs[DAILY].branch_days == (date(2026, 11, 20),)
    shown = _diff(settings, "exp-1")
    assert "2026-11-20..2026-11-21" in shown
    assert "incomplete: routing_model_daily on exp-1 lacks 2026-11-21" in shown
    assert "incomplete: routing_decisions" not in shown

    on_branch.overwrite_day(DAILY, _summary(new_day), D2.date())
    assert "incomplete" not in _diff(settings, "exp-1")


def test_unpartitioned_tables_show_no_days(lakehouse: Lakehouse) -> None:
    experiments.create(lakehouse, "exp-2", tables=["router_models"])
    (found,) = experiments.diff(lakehouse, "exp-2", metrics=False)
    assert found.branch_days is None and found.days_only_on_branch == ()
    assert experiments.day_ranges([]) == "none"
    days = [date(2026, 11, d) for d in (1, 2, 3, 7)]
    assert experiments.day_ranges(days) == "2026-11-01..2026-11-03, 2026-11-07"
