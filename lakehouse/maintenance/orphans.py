"""Orphan-file removal: files under a table's location that no metadata references.

A failed or abandoned write leaves data and manifest files no snapshot names. They are deleted
once older than a grace period (default 3 days), so that a write still in flight, whose files
exist before its commit, is never touched. Everything the current metadata, the metadata log,
any snapshot's manifest list, manifests and entries (live or deleted), or the statistics name is
referenced and kept, whatever its age.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from pyiceberg.table import Table

from lakehouse.maintenance import _files

log = logging.getLogger(__name__)

DEFAULT_GRACE = timedelta(days=3)


@dataclass
class OrphanReport:
    """Outcome of :func:`remove_orphans` on one table."""

    table: str
    dry_run: bool
    grace_seconds: float
    files_scanned: int = 0
    orphans: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    too_young: int = 0  # unreferenced files still within the grace period

    @property
    def files_deleted(self) -> int:
        return 0 if self.dry_run else len(self.orphans)


def referenced_files(table: Table) -> set[str]:
    """Every file any metadata of ``table`` references."""
    table.refresh()
    files = _files.referenced(table, table.metadata.snapshots, live_only=False).all()
    return files | _files.metadata_files(table) | _files.statistics_files(table)


def remove_orphans(
    table: Table, *, grace: timedelta = DEFAULT_GRACE, dry_run: bool = False
) -> OrphanReport:
    """Delete the unreferenced files under ``table``'s location older than ``grace``."""
    stored = _files.list_location(table)  # list before reading metadata: new files look young
    keep = {_normalise(p) for p in referenced_files(table)}
    cutoff_ms = int((time.time() - grace.total_seconds()) * 1000)
    report = OrphanReport(".".join(table.name()), dry_run, grace.total_seconds(), len(stored))
    for item in stored:
        if _normalise(item.path) in keep:
            continue
        if item.mtime_ms >= cutoff_ms:
            report.too_young += 1
            continue
        report.orphans.append(item.path)
        report.bytes_freed += item.size
    if not dry_run:
        _files.delete(table, report.orphans)
    log.info(
        "%s: %d orphan file(s), %d bytes%s",
        report.table,
        len(report.orphans),
        report.bytes_freed,
        " (dry run)" if dry_run else " deleted",
    )
    return report


def _normalise(path: str) -> str:
    """Compare ``file:/x``, ``file:///x`` and ``/x`` as the same path."""
    if path.startswith("file:"):
        path = path[len("file:") :]
        while path.startswith("//"):
            path = path[1:]
    return path
