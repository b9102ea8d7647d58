"""Snapshot expiry that frees bytes.

pyiceberg's ``expire_snapshots`` only removes snapshots from the metadata; their files stay.
:func:`expire` decides which snapshots go, removes them in one metadata commit, and then deletes
every file that only the removed snapshots referenced.

Invariants:

- Never expired: the snapshot of any branch or tag; on each branch, the newest
  ``max(retain_last, min-snapshots-to-keep)`` ancestors and every ancestor younger than the
  branch's ``max-snapshot-age-ms`` (default: ``older_than``). Snapshots no ref reaches go once
  they are older than ``older_than``.
- A file is deleted only when no remaining snapshot of any ref references it as live data,
  manifest or manifest list (the reachable set is computed from all remaining snapshots).
- Old metadata files are deleted only when they are older than ``older_than`` and are not the
  current one, so a reader that opened a recent metadata file keeps working.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pyiceberg.table import Table
from pyiceberg.table.refs import SnapshotRefType
from pyiceberg.table.snapshots import ancestors_of

from lakehouse.maintenance import _files
from lakehouse.table.snapshots import remove_snapshots

log = logging.getLogger(__name__)

DEFAULT_OLDER_THAN = timedelta(days=7)
DEFAULT_RETAIN_LAST = 5


@dataclass
class ExpiryReport:
    """Outcome of :func:`expire` on one table."""

    table: str
    dry_run: bool
    snapshots_before: int
    snapshots_after: int
    expired_snapshot_ids: list[int] = field(default_factory=list)
    data_files_deleted: int = 0
    manifests_deleted: int = 0
    manifest_lists_deleted: int = 0
    metadata_files_deleted: int = 0
    bytes_freed: int = 0

    @property
    def files_deleted(self) -> int:
        return (
            self.data_files_deleted
            + self.manifests_deleted
            + self.manifest_lists_deleted
            + self.metadata_files_deleted
        )


def protected_snapshots(table: Table, *, cutoff_ms: int, retain_last: int) -> set[int]:
    """Snapshot ids that refs and their retention rules keep."""
    metadata = table.metadata
    keep: set[int] = set()
    for ref in metadata.refs.values():
        keep.add(ref.snapshot_id)
        if ref.snapshot_ref_type != SnapshotRefType.BRANCH:
            continue
        min_keep = max(retain_last, ref.min_snapshots_to_keep or 0, 1)
        branch_cutoff = (
            int(time.time() * 1000) - ref.max_snapshot_age_ms
            if ref.max_snapshot_age_ms is not None
            else cutoff_ms
        )
        head = metadata.snapshot_by_id(ref.snapshot_id)
        if head is None:
            continue
        for depth, snapshot in enumerate(ancestors_of(head, metadata)):
            if depth < min_keep or snapshot.timestamp_ms >= branch_cutoff:
                keep.add(snapshot.snapshot_id)
            else:
                break  # ancestors only get older
    return keep


def expire(
    table: Table,
    *,
    older_than: timedelta | datetime = DEFAULT_OLDER_THAN,
    retain_last: int = DEFAULT_RETAIN_LAST,
    dry_run: bool = False,
) -> ExpiryReport:
    """Expire old snapshots of ``table`` and delete the files only they referenced.

    Args:
        table: The Iceberg table.
        older_than: An age (``timedelta``) or an instant; only older snapshots may go.
        retain_last: Snapshots kept on every branch's ancestry whatever their age.
        dry_run: Report what would be expired and freed; change nothing.
    """
    table.refresh()
    cutoff = datetime.now(UTC) - older_than if isinstance(older_than, timedelta) else older_than
    cutoff_ms = int(cutoff.timestamp() * 1000)
    snapshots = list(table.metadata.snapshots)
    keep = protected_snapshots(table, cutoff_ms=cutoff_ms, retain_last=retain_last)
    expired = [s for s in snapshots if s.snapshot_id not in keep and s.timestamp_ms < cutoff_ms]
    gone_ids = {s.snapshot_id for s in expired}  # by id: comparing snapshots is slow and O(n²)
    remaining = [s for s in snapshots if s.snapshot_id not in gone_ids]
    report = ExpiryReport(
        ".".join(table.name()),
        dry_run,
        len(snapshots),
        len(remaining),
        [s.snapshot_id for s in expired],
    )
    old_metadata = {
        entry.metadata_file
        for entry in table.metadata.metadata_log
        if entry.timestamp_ms < cutoff_ms
    } - {table.metadata_location}
    gone = _files.referenced(table, expired, live_only=False)
    live = _files.referenced(table, remaining, live_only=True)
    data = gone.data_files - live.data_files
    manifests = gone.manifests - live.manifests
    lists = gone.manifest_lists - live.manifest_lists
    if not dry_run and expired:
        remove_snapshots(table, [s.snapshot_id for s in expired])
        table.refresh()
        # re-check on the committed metadata: a file a new snapshot holds as data stays
        now_live = _files.referenced(table, table.metadata.snapshots, live_only=True)
        data -= now_live.data_files
        manifests -= now_live.manifests
        lists -= now_live.manifest_lists
    old_metadata.discard(table.metadata_location)  # the current one after the commit, too
    sizes = {p: gone.sizes.get(p) for p in data | manifests}
    for kind, paths in (
        ("data", data),
        ("manifests", manifests),
        ("lists", lists),
        ("metadata", old_metadata),
    ):
        freed = sum(sizes.get(p) or _files.size_of(table, p) for p in paths)
        count = len(paths) if dry_run else _files.delete(table, paths)
        report.bytes_freed += freed
        if kind == "data":
            report.data_files_deleted = count
        elif kind == "manifests":
            report.manifests_deleted = count
        elif kind == "lists":
            report.manifest_lists_deleted = count
        else:
            report.metadata_files_deleted = count
    log.info(
        "expired %d snapshot(s) of %s, %d file(s), %d bytes",
        len(expired),
        report.table,
        report.files_deleted,
        report.bytes_freed,
    )
    return report
