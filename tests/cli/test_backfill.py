"""``aura backfill``: one run per day in the Dagster instance; re-running changes nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from click.testing import CliRunner
from dagster import RunsFilter
from helpers import decision, payload

from aura_assets.backfill import BACKFILL_TAG
from aura_assets.cli import main
from aura_assets.instance import open_instance
from lakehouse import Lakehouse
from lakehouse.simulate.routing import publish

DAYS = (date(2026, 11, 20), date(2026, 11, 21))
ARGS = [
    "backfill",
    "routing_decisions",
    "routing_model_daily",
    "--from",
    "2026-11-20",
    "--to",
    "2026-11-21",
]


def _state(lh: Lakehouse) -> dict[str, object]:
    """Row counts and every row (sorted) of the backfilled tables."""
    state: dict[str, object] = {}
    for table, key in (("routing_decisions", "decision_id"), ("routing_model_daily", "day")):
        data = lh.read(table)
        state[f"{table}.rows"] = data.num_rows
        rows = data.to_pylist()
        state[table] = sorted(rows, key=lambda r: (str(r[key]), str(r.get("chosen_model"))))
    return state


def _backfill_id(output: str) -> str:
    return output.rsplit(f"{BACKFILL_TAG}=", 1)[1].split(")")[0]


@pytest.mark.slow
def test_backfill_runs_each_day_and_a_rerun_changes_nothing(in_aura_env, redis_client) -> None:  # type: ignore[no-untyped-def]
    publish(redis_client, [payload(decision(i, day)) for day in DAYS for i in range(25)])
    runner = CliRunner()
    done = runner.invoke(main, ARGS)
    assert done.exit_code == 0, done.output
    assert "backfilled routing_decisions, routing_model_daily for 2 day(s)" in done.output

    lh = Lakehouse(in_aura_env)
    first = _state(lh)
    assert first["routing_decisions.rows"] == 50
    assert sum(r["decisions"] for r in first["routing_model_daily"]) == 50  # type: ignore[attr-defined]

    instance = open_instance(in_aura_env)
    runs = instance.get_runs(RunsFilter(tags={BACKFILL_TAG: _backfill_id(done.output)}))
    assert sorted(r.tags["dagster/partition"] for r in runs) == ["2026-11-20", "2026-11-21"]
    assert all(r.is_success for r in runs)

    again = runner.invoke(main, ARGS)
    assert again.exit_code == 0, again.output
    assert _state(lh) == first
    rerun = instance.get_runs(RunsFilter(tags={BACKFILL_TAG: _backfill_id(again.output)}))
    assert len(rerun) == 2 and all(r.is_success for r in rerun)
    instance.dispose()


def test_bad_ranges_and_assets_are_refused_before_any_run(in_aura_env) -> None:  # type: ignore[no-untyped-def]
    instance = open_instance(in_aura_env)
    started = datetime.now(UTC)
    runner = CliRunner()
    cases = {
        ("nope", "--from", "2026-11-20", "--to", "2026-11-21"): "unknown asset(s) nope",
        ("routing_decisions", "--from", "2026-11-21", "--to", "2026-11-20"): "before --from",
        ("routing_decisions", "--from", "2020-01-01", "--to", "2020-01-02"): (
            "AURA_PARTITIONS_START"
        ),
    }
    for args, message in cases.items():
        done = runner.invoke(main, ["backfill", *args])
        assert done.exit_code == 1 and message in done.output, done.output
        assert "Traceback" not in done.output
    # (Postgres storage on the server pass is shared: look only for runs of a backfill.)
    recent = instance.get_runs(RunsFilter(created_after=started))
    assert not [r for r in recent if BACKFILL_TAG in r.tags]
    instance.dispose()
