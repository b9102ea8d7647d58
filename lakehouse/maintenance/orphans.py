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
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from pyiceberg.table import Table

from lakehouse.maintenance import _files
from lakehouse.table import storage
from lakehouse.table.storage import StoredFile

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
    artifacts: list[str] = field(default_factory=list)  # unreferenced artifact directories

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
    keep = {_files.normalise(p) for p in referenced_files(table)}
    cutoff_ms = int((time.time() - grace.total_seconds()) * 1000)
    report = OrphanReport(".".join(table.name()), dry_run, grace.total_seconds(), len(stored))
    for item in stored:
        if _files.normalise(item.path) in keep:
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


def remove_orphan_artifacts(
    table: Table,
    name: str,
    root: str,
    properties: Mapping[str, str],
    report: OrphanReport,
    *,
    grace: timedelta = DEFAULT_GRACE,
) -> None:
    """Delete the directories under ``root`` (a directory or an ``s3://`` prefix, listed through
    :mod:`lakehouse.table.storage` with the FileIO ``properties``) that no row on any branch or
    tag of ``table`` (the aura table ``name`` of :data:`_files.ARTIFACTS`) names and whose newest
    file is older than ``grace`` (adds them to ``report``). Rows name directories as the registry
    resolves them (:func:`lakehouse.table.paths.artifact_rel`), whatever warehouse an old
    absolute URI names.

    A refused candidate's artifact is named by its audit branch until the branch expires
    (``refs.expire_refs``); a version being trained and not yet registered is younger than the
    grace period. Rows on expired branches are gone, so their directories become orphans.
    """
    by_directory: dict[str, list[StoredFile]] = defaultdict(list)
    prefix = root.rstrip("/") + "/"
    for item in storage.list_files(root, properties):
        rel = item.path[len(prefix) :]
        if "/" in rel:  # a file directly under root is no artifact directory
            by_directory[rel.split("/", 1)[0]].append(item)
    table.refresh()
    keep = {rel.rsplit("/", 1)[-1] for rel in _files.artifact_dirs(table, name)}
    cutoff_ms = int((time.time() - grace.total_seconds()) * 1000)
    for directory, files in sorted(by_directory.items()):
        if directory in keep:
            continue
        if any(f.mtime_ms >= cutoff_ms for f in files):
            report.too_young += 1
            continue
        report.artifacts.append(prefix + directory)
        report.bytes_freed += sum(f.size for f in files)
        if not report.dry_run:
            storage.delete_files([f.path for f in files], properties)
            storage.delete_empty_directory(prefix + directory, properties)
    if report.artifacts:
        log.info(
            "%s: %d orphan artifact director(ies)%s",
            report.table,
            len(report.artifacts),
            " (dry run)" if report.dry_run else " deleted",
        )
