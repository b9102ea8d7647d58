"""Archiving checkpoints into Iceberg, hot retention, read-through and restore (real stores)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from helpers import GRAPH_RUNS, graph_builder, objstore_env, thread_config

from lakehouse import Lakehouse, Settings
from lakehouse.checkpoints import (
    AsyncAuraCheckpointSaver,
    AuraCheckpointSaver,
    CheckpointArchive,
    RetentionPolicy,
    apply_retention,
    archive_bytes,
    archive_checkpoints,
    restore_thread,
)
from lakehouse.checkpoints._exec import Stmt
from lakehouse.exceptions import AuraError

THREADS = 3
RUNS = GRAPH_RUNS
_builder = graph_builder
_cfg = thread_config


def _populate(saver: AuraCheckpointSaver) -> dict[str, list[Any]]:
    graph = _builder().compile(checkpointer=saver)
    for t in range(THREADS):
        for run in range(RUNS):
            graph.invoke(
                {"messages": [{"role": "user", "content": f"q{run}"}], "step": 0},
                _cfg(f"thread-{t}"),
            )
    return {
        f"thread-{t}": list(graph.get_state_history(_cfg(f"thread-{t}"))) for t in range(THREADS)
    }


def _days(history: dict[str, list[Any]]) -> list[date]:
    return sorted({date.fromisoformat(s.created_at[:10]) for h in history.values() for s in h})


def _hot_counts(saver: AuraCheckpointSaver) -> tuple[int, int, int]:
    def op() -> Any:
        rows = yield Stmt(saver._exec.dialect.sql("count_rows"), fetch=True)
        return tuple(rows[0])

    return saver._exec.run(op())  # type: ignore[no-any-return]


@pytest.fixture
def saver(tmp_path: Path, lakehouse: Lakehouse) -> Iterator[AuraCheckpointSaver]:
    archive = CheckpointArchive(lakehouse)
    with AuraCheckpointSaver.from_conn_string(str(tmp_path / "hot.db"), archive=archive) as s:
        s.setup()
        yield s


def test_archive_is_coalesced_idempotent_and_read_through(
    saver: AuraCheckpointSaver, lakehouse: Lakehouse
) -> None:
    history = _populate(saver)
    total = sum(len(h) for h in history.values())
    results = [archive_checkpoints(lakehouse, saver, day) for day in _days(history)]
    assert sum(r.checkpoints for r in results) == total
    raw = sum(r.raw_bytes for r in results)
    assert archive_bytes(lakehouse) <= 0.6 * raw, (archive_bytes(lakehouse), raw)

    # Re-archiving adds nothing and creates no snapshot.
    snapshots = len(lakehouse.table("workflow_checkpoints").metadata.snapshots)
    again = [archive_checkpoints(lakehouse, saver, day) for day in _days(history)]
    assert sum(r.checkpoints + r.writes + r.blobs for r in again) == 0
    assert len(lakehouse.table("workflow_checkpoints").metadata.snapshots) == snapshots
    assert lakehouse.read("workflow_checkpoints").num_rows == total

    trimmed = apply_retention(lakehouse, saver, RetentionPolicy(keep_last=2))
    assert trimmed.trimmed == total - 2 * THREADS and trimmed.not_archived == 0
    assert _hot_counts(saver)[0] == 2 * THREADS

    # Every past state is still readable, identical, through the saver.
    graph = _builder().compile(checkpointer=saver)
    for thread, states in history.items():
        after = list(graph.get_state_history(_cfg(thread)))
        assert [s.config for s in after] == [s.config for s in states]
        assert [s.values for s in after] == [s.values for s in states]
    oldest = history["thread-0"][-1]
    assert graph.get_state(oldest.config).values == oldest.values
    limited = list(saver.list(_cfg("thread-0"), limit=3, before=history["thread-0"][1].config))
    assert [t.config for t in limited] == [s.config for s in history["thread-0"][2:5]]
    inputs = list(saver.list(_cfg("thread-1"), filter={"source": "input"}))
    assert len(inputs) == RUNS

    # The graph resumes on top of the trimmed thread.
    graph.invoke({"messages": [{"role": "user", "content": "more"}], "step": 0}, _cfg("thread-0"))
    assert len(list(graph.get_state_history(_cfg("thread-0")))) == len(history["thread-0"]) + 5


def test_retention_keeps_rows_the_archive_lacks(
    saver: AuraCheckpointSaver, lakehouse: Lakehouse
) -> None:
    history = _populate(saver)
    total = sum(len(h) for h in history.values())
    result = apply_retention(lakehouse, saver, RetentionPolicy(keep_last=1))
    assert result.trimmed == 0 and result.not_archived == total - THREADS
    assert _hot_counts(saver)[0] == total


def test_delete_thread_removes_archived_copies(
    saver: AuraCheckpointSaver, lakehouse: Lakehouse
) -> None:
    history = _populate(saver)
    for day in _days(history):
        archive_checkpoints(lakehouse, saver, day)
    apply_retention(lakehouse, saver, RetentionPolicy(keep_last=1))
    saver.delete_thread("thread-0")
    assert saver.get_tuple(_cfg("thread-0")) is None
    assert list(saver.list(_cfg("thread-0"))) == []
    assert len(list(saver.list(_cfg("thread-1")))) == len(history["thread-1"])


def test_restore_rehydrates_a_thread_as_of_a_time(
    tmp_path: Path, saver: AuraCheckpointSaver, lakehouse: Lakehouse
) -> None:
    history = _populate(saver)
    for day in _days(history):
        archive_checkpoints(lakehouse, saver, day)
    states = history["thread-2"]
    target = states[len(states) // 2]
    expected = _builder().compile(checkpointer=saver).get_state(target.config).values
    # A fresh hot store (say, a new machine) holding nothing of the thread.
    with AuraCheckpointSaver.from_conn_string(str(tmp_path / "fresh.db")) as fresh:
        fresh.setup()
        from datetime import datetime

        config = restore_thread(
            lakehouse, fresh, "thread-2", as_of=datetime.fromisoformat(target.created_at)
        )
        assert config is not None
        assert (
            config["configurable"]["checkpoint_id"]
            == target.config["configurable"]["checkpoint_id"]
        )
        graph = _builder().compile(checkpointer=fresh)
        assert graph.get_state(config).values == expected
        latest = fresh.get_tuple(_cfg("thread-2"))
        assert latest is not None and latest.config == target.config
        restored = list(graph.get_state_history(_cfg("thread-2")))
        assert [s.config for s in restored] == [s.config for s in states[len(states) // 2 :]]


def test_archived_pickles_are_refused(saver: AuraCheckpointSaver, lakehouse: Lakehouse) -> None:
    from datetime import UTC, datetime

    row = {
        "thread_id": "evil",
        "checkpoint_ns": "",
        "checkpoint_id": "1",
        "parent_checkpoint_id": None,
        "run_id": None,
        "ts": datetime.now(UTC),
        "type": "pickle",
        "checkpoint": b"cos\nsystem\n.",
        "metadata": "{}",
        "blob_versions": "{}",
    }
    spec = lakehouse.spec("workflow_checkpoints")
    lakehouse.append("workflow_checkpoints", pa.Table.from_pylist([row], schema=spec.arrow_schema))
    with pytest.raises(AuraError, match="never unpickles"):
        saver.get_tuple(_cfg("evil", "1"))


_CRASH_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from datetime import date
    from lakehouse import Lakehouse, Settings
    from lakehouse.checkpoints import AuraCheckpointSaver, RetentionPolicy, archive_and_trim

    def stall(result):
        print("ARCHIVED", result.checkpoints, flush=True)
        time.sleep(120)  # killed here: archive committed, hot store not trimmed yet

    lakehouse = Lakehouse(Settings.from_env())
    with AuraCheckpointSaver.from_conn_string(sys.argv[1]) as saver:
        for day in sys.argv[2:]:
            archive_and_trim(lakehouse, saver, date.fromisoformat(day),
                             RetentionPolicy(keep_last=1), on_archived=stall)
    """
)


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AURA_")}
    env.update(
        AURA_HOME=str(settings.home),
        AURA_CATALOG_URI=settings.catalog_uri,
        AURA_CATALOG_NAME=settings.catalog_name,
        AURA_WAREHOUSE=settings.warehouse,
    )
    return env | objstore_env()  # the object-store pass: the same S3 warehouse and REST catalog


@pytest.mark.process
def test_crash_between_archive_commit_and_trim_loses_nothing(
    tmp_path: Path, saver: AuraCheckpointSaver, lakehouse: Lakehouse, settings: Settings
) -> None:
    history = _populate(saver)
    total = sum(len(h) for h in history.values())
    days = _days(history)
    with subprocess.Popen(
        [sys.executable, "-c", _CRASH_SCRIPT, str(tmp_path / "hot.db"), days[0].isoformat()],
        stdout=subprocess.PIPE,
        env=_env(settings),
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith("ARCHIVED"), line
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    # Archive committed, hot store untouched: nothing lost.
    assert _hot_counts(saver)[0] == total
    first_day = sum(1 for h in history.values() for s in h if s.created_at.startswith(str(days[0])))
    assert lakehouse.read("workflow_checkpoints").num_rows == first_day

    # The next run re-archives idempotently, then trims.
    for day in days:
        archive_checkpoints(lakehouse, saver, day)
    assert lakehouse.read("workflow_checkpoints").num_rows == total
    apply_retention(lakehouse, saver, RetentionPolicy(keep_last=1))
    assert _hot_counts(saver)[0] == THREADS
    graph = _builder().compile(checkpointer=saver)
    for thread, states in history.items():
        assert [s.values for s in graph.get_state_history(_cfg(thread))] == [
            s.values for s in states
        ]


def test_list_of_a_thread_with_nothing_archived_does_not_touch_iceberg(
    tmp_path: Path, settings: Settings
) -> None:
    lakehouse = Lakehouse(settings)
    with AuraCheckpointSaver.from_conn_string(
        str(tmp_path / "hot.db"), archive=CheckpointArchive(lakehouse)
    ) as saver:
        saver.setup()
        history = _populate(saver)
        assert len(list(saver.list(_cfg("thread-0")))) == len(history["thread-0"])
        assert len(list(saver.list(None))) == sum(len(h) for h in history.values())
        # The catalog was never opened: no Iceberg metadata read on these list() calls.
        assert "catalog" not in vars(lakehouse)
        archive_checkpoints(lakehouse, saver, _days(history)[0])
        assert "catalog" in vars(lakehouse)


_ARCHIVE_SCRIPT = textwrap.dedent(
    """
    import sys
    from datetime import date
    from lakehouse import Lakehouse, Settings
    from lakehouse.checkpoints import AuraCheckpointSaver, RetentionPolicy, archive_and_trim

    lakehouse = Lakehouse(Settings.from_env())
    with AuraCheckpointSaver.from_conn_string(sys.argv[1]) as saver:
        for day in sys.argv[2:]:
            day = date.fromisoformat(day)
            archive_and_trim(lakehouse, saver, day, RetentionPolicy(keep_last=1))
    """
)


@pytest.mark.process
def test_list_sees_history_another_process_archived(
    tmp_path: Path, saver: AuraCheckpointSaver, lakehouse: Lakehouse, settings: Settings
) -> None:
    history = _populate(saver)
    graph = _builder().compile(checkpointer=saver)
    days = [d.isoformat() for d in _days(history)]
    subprocess.run(
        [sys.executable, "-c", _ARCHIVE_SCRIPT, str(tmp_path / "hot.db"), *days],
        env=_env(settings),
        check=True,
        timeout=300,
    )
    assert _hot_counts(saver)[0] == THREADS  # trimmed by the other process
    for thread, states in history.items():
        after = list(graph.get_state_history(_cfg(thread)))
        assert [s.values for s in after] == [s.values for s in states]

    async def alist() -> list[Any]:
        async with AsyncAuraCheckpointSaver.from_conn_string(
            str(tmp_path / "hot.db"), archive=CheckpointArchive(lakehouse)
        ) as other:
            return [t async for t in other.alist(_cfg("thread-2"))]

    assert [t.config for t in asyncio.run(alist())] == [s.config for s in history["thread-2"]]

    # Deleting the thread forgets its archived rows and the mark.
    saver.delete_thread("thread-0")
    assert list(saver.list(_cfg("thread-0"))) == []
    assert len(list(saver.list(None))) == sum(len(history[t]) for t in ("thread-1", "thread-2"))


def test_mark_threads_recovers_archives_made_before_the_mark(
    tmp_path: Path, saver: AuraCheckpointSaver, lakehouse: Lakehouse
) -> None:
    history = _populate(saver)
    for day in _days(history):
        archive_checkpoints(lakehouse, saver, day)
    apply_retention(lakehouse, saver, RetentionPolicy(keep_last=1))
    # A hot store that lost its marks (made by a release that did not write them).
    with AuraCheckpointSaver.from_conn_string(
        str(tmp_path / "hot.db"), archive=CheckpointArchive(lakehouse)
    ) as other:

        def forget() -> Any:
            yield Stmt("DELETE FROM aura_checkpoint_archived_threads")

        other._exec.run(forget(), write=True)
        assert len(list(other.list(_cfg("thread-1")))) == 1
        assert CheckpointArchive(lakehouse).mark_threads(other) == THREADS
        assert len(list(other.list(_cfg("thread-1")))) == len(history["thread-1"])
