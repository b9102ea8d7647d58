"""The checkpoints domain in Dagster and on the command line, on the test's real stores."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import pytest
from click.testing import CliRunner
from helpers import GRAPH_RUNS as RUNS
from helpers import graph_builder as _builder
from helpers import thread_config as _cfg

from aura_assets.checkpoints.assets import workflow_checkpoints
from aura_assets.cli.checkpoints import checkpoints
from aura_assets.resources import RESOURCES
from lakehouse import Lakehouse, Settings
from lakehouse.checkpoints import AuraCheckpointSaver


@pytest.fixture
def threads(in_aura_env: Settings) -> Iterator[list[str]]:
    """Two threads with real graph runs in the configured hot store, deleted afterwards."""
    names = [f"dg-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    with AuraCheckpointSaver.from_settings(in_aura_env, archive=False) as saver:
        graph = _builder().compile(checkpointer=saver)
        for name in names:
            for run in range(RUNS):
                graph.invoke(
                    {"messages": [{"role": "user", "content": str(run)}], "step": 0}, _cfg(name)
                )
    yield names
    with AuraCheckpointSaver.from_settings(in_aura_env, archive=False) as saver:
        for name in names:
            saver.delete_thread(name)


def _hot_ids(settings: Settings, thread: str) -> list[str]:
    with AuraCheckpointSaver.from_settings(settings, archive=False) as saver:
        return [t.config["configurable"]["checkpoint_id"] for t in saver.list(_cfg(thread))]


def test_asset_archives_the_day_then_trims_hot(in_aura_env: Settings, threads: list[str]) -> None:
    before = {t: _hot_ids(in_aura_env, t) for t in threads}
    day = datetime.now(UTC).date().isoformat()
    result = dg.materialize(
        [workflow_checkpoints],
        partition_key=day,
        resources=RESOURCES,
        run_config={"ops": {"workflow_checkpoints": {"config": {"keep_last": 2}}}},
    )
    assert result.success
    archived = Lakehouse(in_aura_env).read("workflow_checkpoints").to_pylist()
    for thread, ids in before.items():
        assert {r["checkpoint_id"] for r in archived if r["thread_id"] == thread} >= set(ids)
        assert _hot_ids(in_aura_env, thread) == ids[:2]
    events = result.asset_materializations_for_node("workflow_checkpoints")
    meta = {e.asset_key.to_user_string(): e.metadata for e in events}
    assert meta["workflow_checkpoints"]["archive/size_ratio"].value <= 0.6
    # The saver still sees the whole history, reading archived checkpoints through.
    with AuraCheckpointSaver.from_settings(in_aura_env) as saver:
        assert [
            t.config["configurable"]["checkpoint_id"] for t in saver.list(_cfg(threads[0]))
        ] == before[threads[0]]


@pytest.mark.slow
def test_cli_show_and_restore(in_aura_env: Settings, threads: list[str]) -> None:
    runner = CliRunner()
    day = datetime.now(UTC).date().isoformat()
    out = runner.invoke(checkpoints, ["archive", "--day", day, "--keep-last", "1"])
    assert out.exit_code == 0, out.output
    shown = runner.invoke(checkpoints, ["show", threads[0], "--json"])
    assert shown.exit_code == 0, shown.output
    rows = [json.loads(line) for line in shown.output.splitlines()]
    assert [r["where"] for r in rows].count("hot") == 1
    assert rows[0]["where"] == "hot" and len(rows) == RUNS * 5

    middle = rows[len(rows) // 2]
    restored = runner.invoke(checkpoints, ["restore", threads[0], "--as-of", middle["ts"]])
    assert restored.exit_code == 0, restored.output
    config = json.loads(restored.output.splitlines()[-1])
    assert config["configurable"]["checkpoint_id"] == middle["checkpoint_id"]
    # Back in the hot store: the checkpoints up to that time, plus the thread's newest.
    assert _hot_ids(in_aura_env, threads[0]) == [rows[0]["checkpoint_id"]] + [
        r["checkpoint_id"] for r in rows[len(rows) // 2 :]
    ]

    missing = runner.invoke(checkpoints, ["restore", "no-such-thread"])
    assert missing.exit_code != 0
