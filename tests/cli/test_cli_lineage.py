"""CLI commands that materialise launch Dagster runs of the code location: UI and tables agree.

``aura router train``, ``aura backfill``, ``aura memory compact``, ``aura checkpoints archive``
and ``aura maintain`` write through runs created with the location's origin (the runs the UI
lists), so every snapshot they commit names a Dagster run of the instance, and the UI's
``router_model`` shows the champion the table holds.
A refused request writes nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from click.testing import CliRunner
from dagster import AssetKey, RunsFilter
from helpers import decision, payload

from aura_assets.cli import main
from aura_assets.instance import open_instance
from aura_assets.launch import CLI_TAG
from lakehouse import Lakehouse, Settings
from lakehouse import router as registry
from lakehouse.simulate.routing import RoutingWorkload, publish, simulate_day

START = date(2026, 11, 1)


def _snapshots(lh: Lakehouse, table: str) -> list[dict[str, str]]:
    """The aura.* summary properties of every snapshot of ``table``, oldest first."""
    found = sorted(lh.table(table).metadata.snapshots, key=lambda s: s.sequence_number)
    return [dict((s.summary or {}).additional_properties) for s in found]


def _aura(*args: str) -> str:
    done = CliRunner().invoke(main, list(args))
    assert done.exit_code == 0, done.output
    return done.output


@pytest.mark.slow
def test_router_train_runs_in_dagster_and_a_refused_request_writes_nothing(
    in_aura_env: Settings,
) -> None:
    lh = Lakehouse(in_aura_env)
    workload = RoutingWorkload(start=START, per_day=800, seed=4)
    for i in range(4):
        lh.append("routing_decisions", simulate_day(workload, START + timedelta(days=i))[0])

    refused = CliRunner().invoke(main, ["router", "train", "--train-days", "366"])
    assert refused.exit_code == 1 and "nothing was written" in refused.output, refused.output
    for table in ("router_training_set", "router_models", "router_evaluations"):
        assert _snapshots(lh, table) == [], table

    shown = _aura("router", "train")
    champion = registry.champion_row(lh)
    assert champion is not None
    assert f"champion now: {champion['version']}" in shown
    assert shown.count("champion now:") == 1

    instance = open_instance(in_aura_env)
    try:
        # The newest runs: on the server pass the instance's storage is shared by the worker's
        # tests, one after another.
        runs = instance.get_runs(RunsFilter(tags={CLI_TAG: "router train"}), limit=2)
        assert sorted(r.job_name for r in runs) == ["router_retrain", "router_training"]
        assert all(r.is_success and r.remote_job_origin is not None for r in runs)
        run_ids = {r.run_id for r in runs}
        for table in ("router_training_set", "router_models", "router_evaluations"):
            written = [p for p in _snapshots(lh, table) if p.get("aura.asset")]
            assert written, table
            assert all(p["aura.run-id"] in run_ids for p in written), table
            assert all(p.get("aura.code-version") for p in written), table
        event = instance.get_latest_materialization_event(AssetKey("router_model"))
        assert event is not None and event.asset_materialization is not None
        meta = event.asset_materialization.metadata
        assert meta["champion_version"].value == champion["version"]
    finally:
        instance.dispose()


@pytest.mark.slow
def test_backfill_runs_carry_the_code_locations_origin(in_aura_env: Settings, redis_client) -> None:  # type: ignore[no-untyped-def]
    day = date(2026, 11, 20)
    publish(redis_client, [payload(decision(i, day)) for i in range(10)])
    _aura("backfill", "routing_decisions", "--from", day.isoformat(), "--to", day.isoformat())
    instance = open_instance(in_aura_env)
    try:
        (run,) = instance.get_runs(RunsFilter(tags={CLI_TAG: "backfill"}), limit=1)
        assert run.is_success and run.remote_job_origin is not None
        assert run.remote_job_origin.location_name == "aura"
        lh = Lakehouse(in_aura_env)
        written = [p for p in _snapshots(lh, "routing_decisions") if p.get("aura.asset")]
        assert written and all(p["aura.run-id"] == run.run_id for p in written)
    finally:
        instance.dispose()


def _cli_run(settings: Settings, command: str):  # type: ignore[no-untyped-def]
    """The run ``command`` launched (the newest with its tag: on the server pass the storage is
    shared by the worker's tests, one after another): successful, with the code location's
    origin."""
    instance = open_instance(settings)
    try:
        (run,) = instance.get_runs(RunsFilter(tags={CLI_TAG: command}), limit=1)
    finally:
        instance.dispose()
    assert run.is_success and run.remote_job_origin is not None
    return run


def _written_by(lh: Lakehouse, table: str) -> set[str]:
    """Run ids on the snapshots of ``table`` that a writer recorded (roots carry none)."""
    return {p["aura.run-id"] for p in _snapshots(lh, table) if p.get("aura.run-id")}


@pytest.mark.slow
def test_memory_compact_runs_in_dagster(in_aura_env: Settings) -> None:
    from lakehouse.memory import MemoryStore

    with MemoryStore(in_aura_env) as mem:
        for text in ("prefers tea", "works in Lisbon"):
            mem.store("acme", text)
    shown = _aura("memory", "compact", "--hot-max-age-minutes", "0", "--warm-max-age-days", "0")
    report = json.loads(shown)
    run = _cli_run(in_aura_env, "memory compact")
    assert report["run_id"] == run.run_id
    assert report["report"]["hot_to_warm"] == 2 and report["after"]["cold"] == 2
    assert _written_by(Lakehouse(in_aura_env), "memories") == {run.run_id}


@pytest.mark.slow
def test_checkpoints_archive_runs_in_dagster(in_aura_env: Settings) -> None:
    from helpers import graph_builder, thread_config

    from lakehouse.checkpoints import AuraCheckpointSaver

    with AuraCheckpointSaver.from_settings(in_aura_env, archive=False) as saver:
        graph = graph_builder().compile(checkpointer=saver)
        graph.invoke(
            {"messages": [{"role": "user", "content": "hi"}], "step": 0}, thread_config("t-1")
        )
    today = datetime.now(UTC).date().isoformat()
    shown = _aura("checkpoints", "archive", "--day", today, "--keep-last", "1")
    run = _cli_run(in_aura_env, "checkpoints archive")
    assert f"by run {run.run_id}" in shown and "trimmed" in shown
    lh = Lakehouse(in_aura_env)
    assert lh.read("workflow_checkpoints").num_rows > 0
    assert _written_by(lh, "workflow_checkpoints") == {run.run_id}


@pytest.mark.slow
def test_maintain_commits_in_a_dagster_run_and_a_dry_run_in_none(in_aura_env: Settings) -> None:
    from helpers import decisions

    lh = Lakehouse(in_aura_env)
    for i in range(3):
        lh.append("routing_decisions", decisions(5, start=10 * i))
    dry = _aura("maintain", "routing_decisions", "--dry-run")
    assert "to rewrite" in dry
    args = ("maintain", "routing_decisions", "--older-than", "0", "--retain-last", "1")
    shown = _aura(*args)
    run = _cli_run(in_aura_env, "maintain")
    assert f"table_maintenance run {run.run_id}" in shown
    assert "3 small file(s) -> 1 file(s)" in shown
    head = lh.table("routing_decisions").current_snapshot()
    assert head is not None and head.summary is not None
    assert head.summary.additional_properties["aura.run-id"] == run.run_id
    assert lh.read("routing_decisions").num_rows == 15
