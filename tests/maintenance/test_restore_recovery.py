"""Restore is a full recovery (issue 22 item 4): what the tables imply works in the new home.

A restored home has a fresh hot store and no Qdrant collection: `aura checkpoints show` reads
the restored archive, and `aura topology similar` rebuilds its index from ``topology_history``.
The backup carries what no table holds (hot and warm memories, the spool, checkpoints not yet
archived) and the restore imports it through the tiers' own functions.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import redis
from click.testing import CliRunner
from helpers import dead_port, graph_builder, thread_config

from aura_assets.cli import main
from lakehouse import Lakehouse, Settings
from lakehouse.checkpoints import (
    AuraCheckpointSaver,
    RetentionPolicy,
    apply_retention,
    archive_checkpoints,
)
from lakehouse.maintenance.backup import backup, load_manifest, restore
from lakehouse.memory import MemoryStore
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
        # Only the newest stays hot (and travels as a hot row); the rest is archive only.
        assert apply_retention(lh, saver, RetentionPolicy(keep_last=1)).trimmed > 0
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


def _home(path: Path) -> Settings:
    return Settings.from_env({"AURA_HOME": str(path)})


def test_restore_brings_back_memories_of_every_tier_and_unarchived_checkpoints(
    tmp_path: Path,
) -> None:
    settings = _home(tmp_path / "home")
    with MemoryStore(settings) as mem:
        warm = mem.store("acme", "the warm memory about apple orchards")
        assert mem.compact(hot_max_age=timedelta(0)).hot_to_warm == 1
        hot = mem.store("acme", "the hot memory about banana boats")
    down = redis.Redis(port=dead_port(), socket_connect_timeout=0.2)
    with MemoryStore(settings, redis_client=down) as mem:
        spooled = mem.store("acme", "the spooled memory about cherry pies")
        assert mem.spool.count() == 1
    with AuraCheckpointSaver.from_settings(settings) as saver:  # never archived
        graph_builder().compile(checkpointer=saver).invoke(
            {"messages": [], "step": 0}, thread_config("hot-thread")
        )
    dest = tmp_path / "backup"
    made = backup(settings, dest)
    state = made.state
    assert (state.hot_memories, state.warm_memories, state.spooled_memories) == (1, 1, 1)
    assert made.state.hot_checkpoints > 0

    home = tmp_path / "restored"
    report = restore(dest, _home(home))
    assert (report.state.warm_memories, report.state.spooled_memories) == (2, 1)
    with MemoryStore(_home(home)) as mem:
        for memory_id, query in (
            (warm, "apple orchards"),
            (hot, "banana boats"),
            (spooled, "cherry pies"),
        ):
            hits = mem.search("acme", query, k=1)
            assert [h.memory.id for h in hits] == [memory_id], query
    shown = CliRunner().invoke(
        main, ["checkpoints", "show", "hot-thread"], env={"AURA_HOME": str(home)}
    )
    assert shown.exit_code == 0, shown.output
    rows = shown.output.splitlines()[1:]  # under the header, one line per checkpoint
    assert len(rows) == made.state.hot_checkpoints and all(" hot " in r for r in rows), rows


def test_an_incremental_backup_after_forget_carries_the_memory_no_more(tmp_path: Path) -> None:
    settings = _home(tmp_path / "home")
    with MemoryStore(settings) as mem:
        kept = mem.store("acme", "a memory that stays")
        gone = mem.store("acme", "a memory that is forgotten")
    dest = tmp_path / "backup"
    backup(settings, dest)
    first = load_manifest(dest)["state"]["files"]["memories"]
    with MemoryStore(settings) as mem:
        mem.forget("acme", gone)
    backup(settings, dest, incremental=True)
    current = load_manifest(dest)["state"]["files"]["memories"]
    assert not (dest / "files" / first).exists()
    rows = pq.read_table(dest / "files" / current).column("record").to_pylist()
    assert any(kept in r for r in rows) and not any(gone in r for r in rows)
