"""What the Dagster UI shows of each asset: row counts, schema, preview, branch, lineage, checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from helpers import ROOT, decision, payload

from aura_assets.checkpoints.assets import WORKFLOWS
from aura_assets.definitions import defs
from lakehouse import Lakehouse
from lakehouse.publish import experiments
from lakehouse.simulate.routing import publish

DAY = "2026-11-20"
DECISIONS = dg.AssetKey("routing_decisions")
REJECTED = dg.AssetKey("routing_decisions_rejected")


def _latest(instance: dg.DagsterInstance, key: dg.AssetKey) -> dg.AssetMaterialization:
    event = instance.get_latest_materialization_event(key)
    assert event is not None and event.asset_materialization is not None, f"{key} never shown"
    return event.asset_materialization


def _run(instance: dg.DagsterInstance, branch: str | None = None) -> dg.ExecuteInProcessResult:
    config = {"resources": {"lakehouse": {"config": {"branch": branch}}}} if branch else None
    result = defs.resolve_job_def("routing_ingest").execute_in_process(
        partition_key=DAY, instance=instance, run_config=config
    )
    assert result.success
    return result


@pytest.mark.slow
def test_every_routing_asset_shows_rows_schema_preview_and_snapshot(
    in_aura_env, redis_client
) -> None:  # type: ignore[no-untyped-def]
    publish(redis_client, [payload(decision(i)) for i in range(12)] + ["{broken", "{bad"])
    instance = dg.DagsterInstance.ephemeral()
    _run(instance)
    lh = Lakehouse(in_aura_env)
    for key, rows in ((DECISIONS, 12), (REJECTED, 2)):
        meta = _latest(instance, key).metadata
        head = lh.table(key.path[-1]).current_snapshot()
        assert meta["dagster/row_count"].value == rows
        assert meta["iceberg/snapshot_id"].value == str(head.snapshot_id)
        assert meta["aura/branch"].value == "main"
        assert meta["aura/changed"].value is True
        schema = meta["dagster/column_schema"].value
        assert isinstance(schema, dg.TableSchema)
        names = [c.name for c in schema.columns]
        assert names == [f.name for f in lh.table(key.path[-1]).schema().fields]
        assert "| " + names[0] in meta["preview"].value

    # A re-run with nothing new reports what the partition holds, and that nothing changed.
    _run(instance)
    meta = _latest(instance, DECISIONS).metadata
    assert meta["dagster/row_count"].value == 12
    assert meta["aura/changed"].value is False
    rejected = _latest(instance, REJECTED).metadata
    assert rejected["dagster/row_count"].value == 2 and rejected["aura/changed"].value is False


@pytest.mark.slow
def test_a_branch_write_is_labelled_not_main(in_aura_env, redis_client) -> None:  # type: ignore[no-untyped-def]
    publish(redis_client, [payload(decision(i)) for i in range(5)])
    instance = dg.DagsterInstance.ephemeral()
    lh = Lakehouse(in_aura_env)
    _run(instance)
    experiments.create(lh, "exp1")
    publish(redis_client, [payload(decision(i)) for i in range(5, 8)])
    main_before = lh.table("routing_decisions").current_snapshot()
    result = _run(instance, branch="exp1")
    mat = _latest(instance, DECISIONS)
    assert mat.tags is not None and mat.tags.get("aura/branch") == "exp1"
    assert mat.metadata["aura/branch"].value == "exp1"
    assert "not main" in mat.metadata["aura/not_main"].value
    assert mat.metadata["dagster/row_count"].value == 8
    run = instance.get_run_by_id(result.run_id)
    assert run is not None and run.tags["aura/branch"] == "exp1"
    # main did not move
    assert lh.table("routing_decisions").current_snapshot() == main_before


def test_groups_owners_descriptions_and_checkpoint_lineage() -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.group_name and node.group_name != "default", f"{key} has no domain group"
        assert node.description, f"{key} has no description"
        if node.is_materializable:
            assert node.owners, f"{key} has no owner"
            assert node.code_version, f"{key} has no code version"
    for table in (
        "workflow_checkpoints",
        "workflow_checkpoint_writes",
        "workflow_checkpoint_blobs",
    ):
        key = dg.AssetKey(table)
        assert WORKFLOWS.key in graph.get(key).parent_keys
        assert graph.get_check_keys_for_assets({key}), f"{table} has no checks"


@pytest.mark.process
@pytest.mark.slow
def test_dg_loads_the_code_location(in_aura_env) -> None:  # type: ignore[no-untyped-def]
    dg_cli = Path(sys.executable).with_name("dg")
    if not dg_cli.exists():
        pytest.fail(f"dg is not installed next to {sys.executable}: pip install dagster-dg-cli")
    root = ROOT
    env = {**os.environ, "PATH": f"{dg_cli.parent}:{os.environ['PATH']}", "COLUMNS": "200"}
    out = subprocess.run(
        [str(dg_cli), "list", "defs", "--json"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    listed = json.loads(out.stdout)
    assert "routing_decisions" in json.dumps(listed["assets"])
    assert {"routing_ingest", "checkpoint_archive"} <= {j["name"] for j in listed["jobs"]}
