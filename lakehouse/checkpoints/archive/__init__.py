"""The Iceberg archive of workflow checkpoints: archive, trim the hot store, read through, restore.

The tables are declared in :mod:`lakehouse.checkpoints.tables`; :mod:`.store` archives and trims
through :mod:`lakehouse.ingest.tiering`, and :mod:`.read` reads the archive back as records. The
archive
reaches the saver only through its hot store's public interface
(:class:`~lakehouse.checkpoints.records.CheckpointHotStore`, ``saver.hot``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING

from langchain_core.runnables import RunnableConfig

from lakehouse.checkpoints.archive.results import ArchiveResult, RetentionPolicy, RetentionResult
from lakehouse.checkpoints.archive.store import CheckpointArchive, HotSource, archive_bytes
from lakehouse.checkpoints.tables import (
    ASSET,
    BLOBS,
    BLOBS_SPEC,
    CHECKPOINTS,
    CHECKPOINTS_SPEC,
    WRITES,
    WRITES_SPEC,
)

if TYPE_CHECKING:
    from lakehouse.core import Lakehouse

__all__ = [
    "ASSET",
    "BLOBS",
    "BLOBS_SPEC",
    "CHECKPOINTS",
    "CHECKPOINTS_SPEC",
    "WRITES",
    "WRITES_SPEC",
    "ArchiveResult",
    "CheckpointArchive",
    "RetentionPolicy",
    "RetentionResult",
    "apply_retention",
    "archive_and_trim",
    "archive_bytes",
    "archive_checkpoints",
    "restore_thread",
]


def archive_checkpoints(
    lakehouse: Lakehouse, saver: HotSource, day: date, *, run_id: str | None = None
) -> ArchiveResult:
    """Archive the hot checkpoints of ``day`` (UTC) into Iceberg; safe to re-run."""
    return CheckpointArchive(lakehouse).archive_day(saver, day, run_id=run_id)


def apply_retention(
    lakehouse: Lakehouse, saver: HotSource, policy: RetentionPolicy
) -> RetentionResult:
    """Trim the hot store to ``policy``, deleting only checkpoints the archive already holds."""
    return CheckpointArchive(lakehouse).trim(saver, policy)


def archive_and_trim(
    lakehouse: Lakehouse,
    saver: HotSource,
    day: date,
    policy: RetentionPolicy,
    *,
    run_id: str | None = None,
    on_archived: Callable[[ArchiveResult], None] | None = None,
) -> tuple[ArchiveResult, RetentionResult]:
    """Archive ``day``, then trim the hot store; the trim runs only after the commit succeeded.

    ``on_archived`` is called between the two steps (for logging or progress reporting).
    """
    archive = CheckpointArchive(lakehouse)
    result = archive.archive_day(saver, day, run_id=run_id)
    if on_archived is not None:
        on_archived(result)
    return result, archive.trim(saver, policy)


def restore_thread(
    lakehouse: Lakehouse,
    saver: HotSource,
    thread_id: str,
    *,
    as_of: datetime | None = None,
) -> RunnableConfig | None:
    """Rehydrate a thread's archived history (up to ``as_of``) into the hot store."""
    return CheckpointArchive(lakehouse).restore(saver, thread_id, as_of=as_of)
