"""Concurrency by design: a backfill with 4 runs at once, pools per table, no stuck slot."""

from __future__ import annotations

import sys
from datetime import date, timedelta

import pytest
from click.testing import CliRunner
from dagster import DagsterEventType, RunsFilter
from helpers import decision, payload

from aura_assets.backfill import BACKFILL_TAG
from aura_assets.cli import main
from aura_assets.concurrency import PID_TAG, table_pool
from aura_assets.definitions import defs
from aura_assets.instance import open_instance
from lakehouse import Lakehouse
from lakehouse.simulate.routing import publish
from lakehouse.simulate.traces import publish_workflow_events, simulate_workflow_events

FIRST = date(2026, 11, 2)
# Three waves of 4 runs at once, each contending for every table's pool; the 30-day size is
# `python -m bench backfill`'s.
DAYS = 12
ASSETS = ["routing_decisions", "routing_model_daily", "workflow_runs", "topology_history"]


def test_every_asset_that_commits_to_a_table_runs_in_that_tables_pool() -> None:
    pools = {a.op.name: a.op.pool for a in defs.assets if getattr(a, "op", None) is not None}
    assert pools["routing_decisions"] == table_pool("routing_decisions")
    assert pools["routing_model_daily"] == table_pool("routing_model_daily")
    assert pools["workflow_runs"] == table_pool("workflow_runs")
    assert pools["topology_drift"] == table_pool("drift_reports")
    assert all(pools.values()), {k: v for k, v in pools.items() if not v}


@pytest.mark.slow
def test_a_12_day_backfill_with_4_runs_at_once_has_no_failed_run(in_aura_env, redis_client):  # type: ignore[no-untyped-def]
    days = [FIRST + timedelta(days=i) for i in range(DAYS)]
    publish(redis_client, [payload(decision(i, day)) for day in days for i in range(6)])
    publish_workflow_events(redis_client, list(simulate_workflow_events(FIRST, DAYS, 2, seed=7)))

    last = days[-1].isoformat()
    args = ["backfill", *ASSETS, "--from", FIRST.isoformat(), "--to", last, "--parallel", "4"]
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 0, done.output

    backfill_id = done.output.rsplit(f"{BACKFILL_TAG}=", 1)[1].split(")")[0]
    instance = open_instance(in_aura_env)
    runs = instance.get_runs(RunsFilter(tags={BACKFILL_TAG: backfill_id}))
    assert len(runs) == DAYS and all(r.is_success for r in runs)
    assert len({r.tags[PID_TAG] for r in runs}) > 1  # the days really ran in several processes

    lh = Lakehouse(in_aura_env)
    assert lh.read("routing_decisions").num_rows == DAYS * 6
    assert sum(lh.read("routing_model_daily").column("decisions").to_pylist()) == DAYS * 6
    assert lh.read("workflow_runs").num_rows == DAYS * 2
    assert lh.read("topology_history").num_rows == DAYS * 2
    # Commits took turns: steps waited for their table's slot (reported, not asserted: it
    # depends on timing).
    waits = sum(
        "blocked by limit for pool" in (event.message or "")
        for r in runs
        for event in instance.all_logs(r.run_id, of_type=DagsterEventType.ENGINE_EVENT)
    )
    sys.stderr.write(f"{DAYS}-day backfill, 4 runs at once: {len(runs)} runs, {waits} pool waits\n")
