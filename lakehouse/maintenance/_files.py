"""What a table's metadata references, what lies under its location, and paths in a warehouse.

Shared by snapshot expiry, orphan removal and backup/restore. A file is *referenced* when the
current metadata file, a metadata file in the metadata log, a snapshot's manifest list, one of
its manifests or one of their entries (live or deleted) names it. Paths are compared in one form
(:func:`normalise`: ``file:/x``, ``file:///x`` and ``/x`` are the same path).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from pyiceberg.manifest import ManifestFile
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot

from lakehouse.table import storage
from lakehouse.table.paths import artifact_rel, join, normalise, relative, under
from lakehouse.table.storage import StoredFile

__all__ = ["StoredFile", "artifact_rel", "join", "normalise", "relative", "under"]  # re-exported


@dataclass
class FileSet:
    """Paths and known sizes of the files a set of snapshots references."""

    manifest_lists: set[str] = field(default_factory=set)
    manifests: set[str] = field(default_factory=set)
    data_files: set[str] = field(default_factory=set)
    sizes: dict[str, int] = field(default_factory=dict)

    def all(self) -> set[str]:
        return self.manifest_lists | self.manifests | self.data_files


def referenced(table: Table, snapshots: Iterable[Snapshot], *, live_only: bool) -> FileSet:
    """Files that ``snapshots`` reference.

    With ``live_only`` only entries that are part of a snapshot's data (added or existing) count;
    otherwise deleted entries count too (a conservative set: what any metadata names).
    """
    found = FileSet()
    seen: set[str] = set()
    for snapshot in snapshots:
        found.manifest_lists.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(table.io):
            found.manifests.add(manifest.manifest_path)
            found.sizes[manifest.manifest_path] = manifest.manifest_length
            if manifest.manifest_path in seen:
                continue
            seen.add(manifest.manifest_path)
            for path, size in _entries(table, manifest, live_only):
                found.data_files.add(path)
                found.sizes[path] = size
    return found


def _entries(table: Table, manifest: ManifestFile, live_only: bool) -> Iterator[tuple[str, int]]:
    for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=live_only):
        yield entry.data_file.file_path, entry.data_file.file_size_in_bytes


def metadata_files(table: Table) -> set[str]:
    """The current metadata file and those in its metadata log."""
    files = {entry.metadata_file for entry in table.metadata.metadata_log}
    files.add(table.metadata_location)
    return files


def statistics_files(table: Table) -> set[str]:
    """Puffin statistics and partition statistics files named by the metadata."""
    stats = {s.statistics_path for s in table.metadata.statistics}
    stats |= {s.statistics_path for s in table.metadata.partition_statistics}
    return stats


def list_location(table: Table) -> list[StoredFile]:
    """Every file under the table's location (recursively; a bucket's listing on S3), with size
    and modification time."""
    return storage.list_files(table.metadata.location, table.io.properties)


def size_of(table: Table, path: str) -> int:
    """Size of ``path`` in bytes (0 when it is already gone)."""
    try:
        return len(table.io.new_input(path))
    except (FileNotFoundError, OSError):
        return 0


def delete(table: Table, paths: Iterable[str]) -> int:
    """Delete ``paths``; returns how many existed and were removed."""
    removed = 0
    for path in paths:
        try:
            table.io.delete(path)
        except FileNotFoundError:
            continue
        removed += 1
    return removed


# -- artifacts: files outside Iceberg that a table's rows name ------------------------------

ARTIFACTS: dict[str, tuple[str, str]] = {"router_models": ("artifact_uri", "router_models")}
"""Tables whose rows name directories kept outside Iceberg under the warehouse:
table -> (the column holding the directory's URI, the directory under the warehouse holding
every such directory). Backups copy the directories live rows name; orphan removal deletes the
ones no row on any branch or tag names."""


def artifact_uris(table: Table, column: str) -> set[str]:
    """The values of ``column`` in the rows of every branch and tag of ``table``."""
    uris: set[str] = set()
    for ref in table.metadata.refs.values():
        rows = table.scan(snapshot_id=ref.snapshot_id, selected_fields=(column,)).to_arrow()
        uris |= {uri for uri in rows.column(column).to_pylist() if uri}
    return uris


def artifact_dirs(table: Table, name: str) -> set[str]:
    """Warehouse-relative directories of the artifacts rows on any ref of ``name`` name."""
    column, directory = ARTIFACTS[name]
    rels = (artifact_rel(directory, uri) for uri in artifact_uris(table, column))
    return {rel for rel in rels if rel is not None}


def local_path(uri: str) -> Path:
    """The local path of a ``file:`` URI or plain path."""
    return Path(unquote(urlparse(uri).path)) if uri.startswith("file:") else Path(uri)


def directory_files(directory: Path) -> list[Path]:
    """The files under ``directory`` (recursively), sorted; empty when it does not exist."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*") if p.is_file())
