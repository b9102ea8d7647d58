"""Table maintenance: compaction, snapshot expiry that frees bytes, orphan removal, history.

Each function takes a :class:`~lakehouse.Lakehouse` and a table name and returns a report a
caller (the CLI, a Dagster asset) can print or attach as metadata. No Dagster here.

Example:
    >>> from lakehouse import Lakehouse, maintenance
    >>> lh = Lakehouse()
    >>> maintenance.compact(lh, "routing_decisions").files_removed
    >>> maintenance.maintain(lh, "routing_decisions", dry_run=True).as_dict()
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from lakehouse.maintenance import compaction as _compaction
from lakehouse.maintenance import expiry as _expiry
from lakehouse.maintenance import history as _history
from lakehouse.maintenance import orphans as _orphans
from lakehouse.maintenance._files import ARTIFACTS, join, list_location
from lakehouse.maintenance.compaction import (
    DEFAULT_TARGET_FILE_BYTES,
    CompactionGroup,
    CompactionReport,
    PartitionResult,
)
from lakehouse.maintenance.expiry import DEFAULT_OLDER_THAN, DEFAULT_RETAIN_LAST, ExpiryReport
from lakehouse.maintenance.history import HistoryEntry
from lakehouse.maintenance.orphans import DEFAULT_GRACE, OrphanReport
from lakehouse.settings import MAIN_BRANCH
from lakehouse.table.catalog import warehouse_properties

if TYPE_CHECKING:
    from lakehouse.core import Lakehouse
    from lakehouse.table.writer import Lineage

__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_OLDER_THAN",
    "DEFAULT_RETAIN_LAST",
    "DEFAULT_TARGET_FILE_BYTES",
    "CompactionGroup",
    "CompactionReport",
    "ExpiryReport",
    "HistoryEntry",
    "MaintenanceReport",
    "OrphanReport",
    "PartitionResult",
    "TableStats",
    "compact",
    "expire_snapshots",
    "history",
    "list_location",
    "maintain",
    "remove_orphans",
    "small_file_counts",
    "table_stats",
]


def compact(
    lh: Lakehouse,
    table: str,
    *,
    branch: str = MAIN_BRANCH,
    target_file_bytes: int = DEFAULT_TARGET_FILE_BYTES,
    min_files: int = 2,
    dry_run: bool = False,
    lineage: Lineage | None = None,
    on_rewritten: Callable[[CompactionGroup], None] | None = None,
) -> CompactionReport:
    """Rewrite each partition's small files on ``branch`` into files near ``target_file_bytes``."""
    props = lineage.properties() if lineage is not None else {}
    props.pop("aura.commit", None)
    return _compaction.compact_table(
        lh.table(table),
        branch=branch,
        target_file_bytes=target_file_bytes,
        min_files=min_files,
        dry_run=dry_run,
        properties=props,
        on_rewritten=on_rewritten,
    )


def small_file_counts(
    lh: Lakehouse,
    table: str,
    *,
    branch: str = MAIN_BRANCH,
    target_file_bytes: int = DEFAULT_TARGET_FILE_BYTES,
) -> dict[str, int]:
    """Data files below the target size per partition (``""`` for an unpartitioned table)."""
    return _compaction.small_file_counts(
        lh.table(table), branch=branch, target_file_bytes=target_file_bytes
    )


def expire_snapshots(
    lh: Lakehouse,
    table: str,
    *,
    older_than: timedelta | datetime = DEFAULT_OLDER_THAN,
    retain_last: int = DEFAULT_RETAIN_LAST,
    dry_run: bool = False,
) -> ExpiryReport:
    """Expire snapshots no ref keeps and delete the files only they referenced."""
    return _expiry.expire(
        lh.table(table), older_than=older_than, retain_last=retain_last, dry_run=dry_run
    )


def remove_orphans(
    lh: Lakehouse, table: str, *, grace: timedelta = DEFAULT_GRACE, dry_run: bool = False
) -> OrphanReport:
    """Delete files under the table's location that no metadata references, older than ``grace``.

    For a table whose rows name artifact directories outside Iceberg (``router_models``), the
    directories no row on any branch or tag names are deleted too (``OrphanReport.artifacts``).
    """
    iceberg = lh.table(table)
    report = _orphans.remove_orphans(iceberg, grace=grace, dry_run=dry_run)
    name = lh.spec(table).name
    if name in ARTIFACTS:
        root = join(lh.settings.warehouse, ARTIFACTS[name][1])
        properties = warehouse_properties(lh.settings)
        _orphans.remove_orphan_artifacts(iceberg, name, root, properties, report, grace=grace)
    return report


def history(lh: Lakehouse, table: str, ref: str | None = None) -> list[HistoryEntry]:
    """Every snapshot of ``table`` (or of ``ref``'s ancestry), oldest first, with lineage."""
    return _history.history(lh.table(table), ref)


@dataclass(frozen=True)
class TableStats:
    """Files, bytes and snapshots of one table at one moment."""

    snapshots: int
    live_data_files: int
    live_data_bytes: int
    stored_files: int
    stored_bytes: int


def table_stats(lh: Lakehouse, table: str) -> TableStats:
    """Snapshots, live data files of main, and every file stored under the table's location."""
    iceberg = lh.table(table)
    iceberg.refresh()
    live = list(iceberg.scan().plan_files()) if iceberg.current_snapshot() is not None else []
    stored = list_location(iceberg)
    return TableStats(
        snapshots=len(iceberg.metadata.snapshots),
        live_data_files=len(live),
        live_data_bytes=sum(t.file.file_size_in_bytes for t in live),
        stored_files=len(stored),
        stored_bytes=sum(f.size for f in stored),
    )


@dataclass(frozen=True)
class MaintenanceReport:
    """One table's maintenance run: each step's report and the table before and after."""

    table: str
    dry_run: bool
    before: TableStats
    after: TableStats
    compaction: CompactionReport
    expiry: ExpiryReport
    orphans: OrphanReport

    def as_dict(self) -> dict[str, object]:
        """Flat figures (for Dagster metadata or JSON output)."""
        return {
            "table": self.table,
            "dry_run": self.dry_run,
            **{f"before.{k}": v for k, v in asdict(self.before).items()},
            **{f"after.{k}": v for k, v in asdict(self.after).items()},
            "compaction.skipped": self.compaction.skipped or "",
            "compaction.partitions": len(self.compaction.partitions),
            "compaction.files_removed": self.compaction.files_removed,
            "compaction.files_added": self.compaction.files_added,
            "compaction.conflicts": len(self.compaction.conflicts),
            "expiry.snapshots_expired": len(self.expiry.expired_snapshot_ids),
            "expiry.files_deleted": self.expiry.files_deleted,
            "expiry.bytes_freed": self.expiry.bytes_freed,
            "orphans.files": len(self.orphans.orphans),
            "orphans.bytes": self.orphans.bytes_freed,
            "orphans.artifacts": len(self.orphans.artifacts),
            "orphans.too_young": self.orphans.too_young,
        }


def maintain(
    lh: Lakehouse,
    table: str,
    *,
    branch: str = MAIN_BRANCH,
    target_file_bytes: int = DEFAULT_TARGET_FILE_BYTES,
    min_files: int = 2,
    older_than: timedelta | datetime = DEFAULT_OLDER_THAN,
    retain_last: int = DEFAULT_RETAIN_LAST,
    orphan_grace: timedelta = DEFAULT_GRACE,
    dry_run: bool = False,
    lineage: Lineage | None = None,
) -> MaintenanceReport:
    """Compact, expire snapshots, then remove orphans; in that order, so compaction's replaced
    files are freed once their snapshots expire.

    Runs on every table of a real home: a table without ``branch`` (an empty table has no
    ``main`` yet; a table the experiment did not touch has no experiment branch) skips
    compaction and says so in ``compaction.skipped``; bookkeeping tables, written on main
    whatever the branch, compact main. Expiry and orphan removal run either way.
    """
    spec = lh.spec(table)
    target = MAIN_BRANCH if spec.bookkeeping else branch
    before = table_stats(lh, table)
    if target in lh.table(table).metadata.refs:
        compacted = compact(
            lh,
            table,
            branch=target,
            target_file_bytes=target_file_bytes,
            min_files=min_files,
            dry_run=dry_run,
            lineage=lineage,
        )
    else:
        compacted = CompactionReport(
            f"aura.{spec.name}", target, dry_run, target_file_bytes, skipped=f"no branch {target!r}"
        )
    expired = expire_snapshots(
        lh, table, older_than=older_than, retain_last=retain_last, dry_run=dry_run
    )
    orphans = remove_orphans(lh, table, grace=orphan_grace, dry_run=dry_run)
    after = before if dry_run else table_stats(lh, table)
    return MaintenanceReport(spec.name, dry_run, before, after, compacted, expired, orphans)
