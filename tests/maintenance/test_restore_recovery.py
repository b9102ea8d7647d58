"""Restore is a full recovery (issue 22 item 4): what the tables imply works in the new home.

A restored home has a fresh hot store and no Qdrant collection: `aura checkpoints show` reads
the restored archive, and `aura topology similar` rebuilds its index from ``topology_history``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import graph_builder, thread_config

from aura_assets.cli import main
from lakehouse import Lakehouse, Settings
from lakehouse.checkpoints import AuraCheckpointSaver, archive_checkpoints
from lakehouse.maintenance.backup import backup, restore
from lakehouse.simulate.traces import publish_workflow_events, simulate_workflow_events
from lakehouse.stores import close_redis, open_redis
from lakehouse.topology import history, ingest
from quality.audit import gx_audit

DAY = date(2026, 11, 20)


def test_checkpoints_show_reads_the_restored_archive(tmp_path: Path) -> None:
    settings = Settings.from_env({"AURA_HOME": str(tmp_path / "home")})
    lh = Lakehouse(settings)
    with AuraCheckpointSaver.from_settings(settings) as saver:
        graph = graph_builder().compile(checkpointer=saver)
        graph.invoke({"messages": [], "step": 0}, thread_config("thread-1"))
        today = datetime.now(UTC).date()
        assert archive_checkpoints(lh, saver, today).checkpoints > 0
    dest = tmp_path / "backup"
    backup(settings, dest)

    home = tmp_path / "restored"
    report = restore(dest, Settings.from_env({"AURA_HOME": str(home)}))
    shown = CliRunner().invoke(
        main, ["checkpoints", "show", "thread-1"], env={"AURA_HOME": str(home)}
    )
    assert shown.exit_code == 0, shown.output
    assert "archive" in shown.output and "no checkpoints" not in shown.output
    assert report.archived_threads == 1


def test_topology_similar_rebuilds_its_index_in_a_restored_home(tmp_path: Path) -> None:
    settings = Settings.from_env({"AURA_HOME": str(tmp_path / "home")})
    lh = Lakehouse(settings)
    client = open_redis(settings)
    try:
        publish_workflow_events(client, simulate_workflow_events(DAY, 1, 12, 5))
        ingest.ingest_day(lh, client, DAY, audit=gx_audit)
    finally:
        close_redis(client)
    assert history.history_day(lh, DAY, audit=gx_audit) is not None
    row = lh.read("topology_history").to_pylist()[0]
    dest = tmp_path / "backup"
    backup(settings, dest)

    home = tmp_path / "restored"
    restore(dest, Settings.from_env({"AURA_HOME": str(home)}))
    result = CliRunner().invoke(
        main, ["topology", "similar", row["run_id"], "-k", "3"], env={"AURA_HOME": str(home)}
    )
    assert result.exit_code == 0, result.output
    assert "rebuilt it from topology_history (12 run(s))" in result.output
    assert f"closest in shape to {row['run_id']}" in result.output


def test_backup_verify_without_dest_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`aura backup verify` alone is a usage error, not a backup into ./verify (issue 22.6)."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["backup", "verify"], env={"AURA_HOME": str(tmp_path / "h")})
    assert result.exit_code == 2 and "aura backup verify DEST" in result.output, result.output
    assert not (tmp_path / "verify").exists()
