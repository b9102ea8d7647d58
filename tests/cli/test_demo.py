"""``aura demo`` end to end on the test's real stores, as a user runs it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date

import pytest
from click.testing import CliRunner

from aura_assets.cli import main
from aura_assets.instance import open_instance
from lakehouse import Lakehouse, Settings
from lakehouse.checkpoints import AuraCheckpointSaver

TABLES = (
    "routing_decisions",
    "routing_decisions_rejected",
    "routing_model_daily",
    "workflow_checkpoints",
    "workflow_checkpoint_writes",
    "workflow_checkpoint_blobs",
    "workflow_runs",
    "topology_history",
    "drift_reports",
)


WORKFLOWS = 8


@pytest.fixture
def demo_output(in_aura_env: Settings, redis_client: object) -> Iterator[list[str]]:
    """Collects the demo's output; deletes the workflow threads it names afterwards."""
    outputs: list[str] = []
    yield outputs
    prefixes = {m for out in outputs for m in re.findall(r"workflow threads (\S+)-\* ", out)}
    with AuraCheckpointSaver.from_settings(in_aura_env, archive=False) as saver:
        for prefix in prefixes:
            for i in range(WORKFLOWS):
                saver.delete_thread(f"{prefix}-{i:04d}")


def _demo_days(output: str) -> set[date]:
    return {
        date.fromisoformat(d) for d in re.findall(r"(\d{4}-\d{2}-\d{2}): routing_ingest", output)
    }


@pytest.mark.slow
def test_demo_end_to_end(in_aura_env: Settings, demo_output: list[str]) -> None:
    runner = CliRunner()
    args = ["demo", "--days", "2", "--per-day", "300", "--workflows", str(WORKFLOWS)]
    args += ["--traces-per-day", "15"]
    out = runner.invoke(main, args)
    demo_output.append(out.output)
    if out.exception is not None and not isinstance(out.exception, SystemExit):
        raise out.exception
    assert out.exit_code == 0, out.output
    assert "workflow_checkpoints run" in out.output and "succeeded" in out.output

    lh = Lakehouse(in_aura_env)
    rows = {info.name: info.rows for info in lh.tables()}
    for name in TABLES:
        assert rows.get(name, 0) > 0, f"{name} is empty: {rows}"
    # The router is trained through Dagster; a published champion routes one more day.
    assert re.search(r"router_retrain run \S+ succeeded: candidate [0-9a-f]{16} ", out.output)
    champion = "published as champion" in out.output
    assert rows["routing_decisions"] + rows["routing_decisions_rejected"] == (
        900 if champion else 600
    )
    costs = {
        m[1]: float(m[2])
        for m in re.finditer(r"\[5/6\] (.+?): \$([\d.]+) per 1,000 decisions", out.output)
    }
    if champion:
        assert len(costs) == 2 and "hand-tuned router" in costs, costs
        learned = next(k for k in costs if k != "hand-tuned router")
        assert costs[learned] < costs["hand-tuned router"], costs
    else:
        assert "no champion router" in out.output
        assert list(costs) == ["hand-tuned router"]

    # The routing head's lineage names a run recorded in the instance under AURA_HOME/dagster.
    snap = lh.table("routing_decisions").current_snapshot()
    assert snap is not None
    assert snap.summary is not None
    run_id = snap.summary.additional_properties["aura.run-id"]
    assert f"routing_decisions head {snap.snapshot_id}" in out.output
    instance = open_instance(in_aura_env)
    assert str(in_aura_env.dagster_home).startswith(str(in_aura_env.home))
    run = instance.get_run_by_id(run_id)
    assert run is not None and run.is_success
    # Every run the demo printed is in the instance: the routing days, the archive run, the
    # training set's days, the retrain, and with a champion its routed day and the branch
    # experiment's routing_model_daily run (a routing_ingest run on the branch).
    shown = [r for r in instance.get_runs() if r.run_id in out.output]
    assert all(r.is_success for r in shown)
    assert sorted(r.job_name for r in shown) == sorted(
        ["checkpoint_archive", "router_retrain", "topology_daily", *["router_training"] * 2]
        + ["routing_ingest"] * (4 if champion else 2)
        + ["memory_ingest"] * 2
        + ["memory_compaction"] * 2
    )
    assert rows["workflow_runs"] == rows["topology_history"] == 30

    drift = runner.invoke(main, ["topology", "drift", "--days", "5"], catch_exceptions=False)
    assert drift.exit_code == 0, drift.output
    assert "topology p" in drift.output and len(drift.output.splitlines()) == 2  # day 2 only
    run_id = lh.read("topology_history").column("run_id")[0].as_py()
    similar = runner.invoke(main, ["topology", "similar", run_id, "-k", "3"])
    assert similar.exit_code == 0, similar.output
    assert f"closest in shape to {run_id}" in similar.output
    missing = runner.invoke(main, ["topology", "similar", "no-such-run"])
    assert missing.exit_code != 0 and "not in topology_history" in missing.output
    # ... with the code location's origin, as runs launched from the UI: the Jobs page, the
    # job's Runs tab and the Overview timeline list them.
    for r in shown:
        origin = r.remote_job_origin
        assert origin is not None, f"run {r.run_id} has no code-location origin"
        assert origin.location_name == "aura"
        assert origin.job_name == r.job_name
        assert r.tags["dagster/code_location"] == "aura"
    assert {r.tags.get("dagster/partition") for r in shown if r.job_name == "routing_ingest"} == {
        d.isoformat() for d in _demo_days(out.output)
    }

    listed = runner.invoke(main, ["tables"], catch_exceptions=False)
    assert listed.exit_code == 0, listed.output
    for name in TABLES:
        assert f"aura.{name} " in listed.output
