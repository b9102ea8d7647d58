"""Runs on a branch read that branch: the routing pipeline and the router retrain on ``exp-1``.

A run with ``AURA_BRANCH=exp-1`` writes to exp-1, so it must read exp-1 too: the daily summary of
a day ingested on the branch counts the branch's decisions, the training set is built from them,
and the retrain trains and publishes there. Main stays exactly as it was. A table the branch does
not have yet is read from main, and the run's materialisation says so.
"""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import pytest

from aura_assets.definitions import defs
from aura_resources.presentation import READ_FROM_MAIN_KEY
from lakehouse import Lakehouse
from lakehouse.settings import Settings
from lakehouse.simulate.routing import RoutingWorkload, publish, routing_events, simulate_day
from lakehouse.table import refs
from lakehouse.table.registry import all_specs

START = date(2026, 11, 1)
DAYS = [START + timedelta(days=i) for i in range(5)]
BRANCH = "exp-1"
PER_DAY = 800


def _main_heads(lh: Lakehouse) -> dict[str, int | None]:
    """Main's head of every data table; an empty root (made so a branch can start) counts as none.

    Bookkeeping tables (``quality_results``, ``experiments``) are written on main whatever the
    branch, by design: they record what happens on every branch.
    """
    heads: dict[str, int | None] = {}
    for spec in all_specs():
        if spec.bookkeeping:
            continue
        table = lh.table(spec.name)
        head = refs.head(table)
        snapshot = table.snapshot_by_id(head) if head is not None else None
        root = snapshot is not None and (snapshot.summary or {}).get(refs.ROOT_PROPERTY) == "true"
        heads[spec.name] = None if root else head
    return heads


def _days(rows) -> set[date]:  # type: ignore[no-untyped-def]
    return {ts.date() for ts in rows.column("ts").to_pylist()}


def _range(first: date, last: date) -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": first.isoformat(),
        "dagster/asset_partition_range_end": last.isoformat(),
    }


def _metadata(instance: dg.DagsterInstance, key: str) -> dict:  # type: ignore[type-arg]
    event = instance.get_latest_materialization_event(dg.AssetKey(key))
    assert event is not None and event.asset_materialization is not None
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


@pytest.mark.slow
def test_routing_pipeline_and_retrain_on_a_branch_leave_main_untouched(
    in_aura_env: Settings,
    redis_client,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    main = Lakehouse(in_aura_env)
    workload = RoutingWorkload(start=START, per_day=PER_DAY, seed=4)
    for day in DAYS[:4]:
        main.append("routing_decisions", simulate_day(workload, day)[0])
    before = _main_heads(main)

    # The fifth day arrives on the stream while runs write to exp-1.
    monkeypatch.setenv("AURA_BRANCH", BRANCH)
    day5 = RoutingWorkload(start=DAYS[4], days=1, per_day=PER_DAY, seed=5)
    publish(redis_client, routing_events(day5))
    instance = dg.DagsterInstance.ephemeral()
    ingest = defs.resolve_job_def("routing_ingest").execute_in_process(
        partition_key=DAYS[4].isoformat(), instance=instance
    )
    assert ingest.success
    training = defs.resolve_job_def("router_training").execute_in_process(
        instance=instance, tags=_range(DAYS[1], DAYS[4])
    )
    assert training.success
    retrain = defs.resolve_job_def("router_retrain").execute_in_process(instance=instance)
    assert retrain.success

    # Main is exactly as it was: no table moved.
    assert _main_heads(main) == before
    assert main.read("routing_decisions").num_rows == 4 * PER_DAY

    # The branch is complete: decisions, their summary, the training set and the model.
    branch = Lakehouse(Settings.from_env())
    assert branch.settings.branch == BRANCH
    assert _days(branch.read("routing_decisions")) == set(DAYS)
    summary = branch.read("routing_model_daily", day=DAYS[4]).to_pylist()
    assert sum(r["decisions"] for r in summary) == PER_DAY
    assert _days(branch.read("router_training_set")) == set(DAYS[1:])
    assert branch.read("router_training_set", day=DAYS[4]).num_rows == PER_DAY
    model = _metadata(instance, "router_model")
    assert model["published"] is True
    champions = [r for r in branch.read("router_models").to_pylist() if r["status"] == "champion"]
    assert [r["version"] for r in champions] == [model["candidate_version"]]
    assert branch.read("router_evaluations").num_rows > 0

    # Reads of tables the branch did not have yet came from main, and the run says which.
    assert "router_models" in model[READ_FROM_MAIN_KEY]
    daily = _metadata(instance, "routing_model_daily")
    assert READ_FROM_MAIN_KEY not in daily
    # Derived tables carry column lineage to the decisions they are computed from.
    assert "latency_p95_ms" in daily["dagster/column_lineage"].deps_by_column
    training_meta = _metadata(instance, "router_training_set")
    assert "tod_sin" in training_meta["dagster/column_lineage"].deps_by_column


def test_a_read_falls_back_to_main_only_for_tables_the_branch_lacks(
    in_aura_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    main = Lakehouse(in_aura_env)
    workload = RoutingWorkload(start=START, per_day=20, seed=1)
    main.append("routing_decisions", simulate_day(workload, START)[0])
    monkeypatch.setenv("AURA_BRANCH", BRANCH)
    branch = Lakehouse(Settings.from_env())
    assert branch.read("routing_decisions").num_rows == 20  # not on exp-1 yet: main's rows
    assert branch.fallbacks == {"routing_decisions": BRANCH}

    branch.append("routing_decisions", simulate_day(workload, DAYS[1])[0])
    fresh = Lakehouse(Settings.from_env())
    assert fresh.read("routing_decisions").num_rows == 40  # exp-1 now has the table
    assert fresh.fallbacks == {}
    assert main.read("routing_decisions").num_rows == 20


@pytest.mark.slow
def test_backfill_on_a_branch_summarises_the_branchs_decisions(
    in_aura_env: Settings,
    redis_client,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The reported case: `AURA_BRANCH=exp-1 aura backfill routing_decisions routing_model_daily`
    wrote 500 decisions to exp-1 and a summary of 0 rows."""
    from click.testing import CliRunner
    from helpers import decision, payload

    from aura_assets.cli import main

    day = date(2026, 11, 20)
    publish(redis_client, (payload(decision(i, day)) for i in range(50)))
    monkeypatch.setenv("AURA_BRANCH", BRANCH)
    args = ["backfill", "routing_decisions", "routing_model_daily", "--from", str(day)]
    done = CliRunner().invoke(main, [*args, "--to", str(day)])
    assert done.exit_code == 0, done.output

    branch = Lakehouse(Settings.from_env())
    assert branch.read("routing_decisions", day=day).num_rows == 50
    assert sum(r["decisions"] for r in branch.read("routing_model_daily").to_pylist()) == 50
    main_lh = Lakehouse(in_aura_env)
    assert main_lh.read("routing_decisions").num_rows == 0
    assert main_lh.read("routing_model_daily").num_rows == 0


def test_duckdb_resource_on_a_branch_shows_the_branch(in_aura_env: Settings) -> None:
    from aura_resources import DuckDBResource

    main = Lakehouse(in_aura_env)
    workload = RoutingWorkload(start=START, per_day=20, seed=1)
    main.append("routing_decisions", simulate_day(workload, START)[0])
    Lakehouse(in_aura_env.with_overrides(branch=BRANCH)).append(
        "routing_decisions", simulate_day(workload, DAYS[1])[0]
    )
    session = DuckDBResource(branch=BRANCH).connect()
    try:
        counted = session.arrow("SELECT count(*) AS n FROM routing_decisions")
        assert counted.column("n").to_pylist() == [40]
    finally:
        session.close()
    main_session = DuckDBResource().connect()
    try:
        counted = main_session.arrow("SELECT count(*) AS n FROM routing_decisions")
        assert counted.column("n").to_pylist() == [20]
    finally:
        main_session.close()
