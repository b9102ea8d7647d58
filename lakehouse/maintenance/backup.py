"""Backup, verification and restore of every aura table.

A backup is a directory or an ``s3://bucket/prefix`` ``DEST`` holding ``manifest.json`` and
``files/<path in the warehouse>``; every read and write of it goes through one
:class:`~lakehouse.maintenance._location.Location` (the warehouse's S3 endpoint and keys for a
bucket), which is refused inside the warehouse or the tables' warehouse.

Invariants:

* **Consistent.** The catalog's rows for namespace ``aura`` (table -> current metadata location)
  are read in one statement first; then only the files that each captured metadata file
  references are copied: the metadata file itself, every live snapshot's manifest list, its
  manifests, their live data files (added or existing entries) and the statistics files. Commits
  made while the backup runs do not matter: the backup is the lakehouse as of that one read.
  Every snapshot in the captured metadata is live (expired ones are gone from it), so every
  branch and tag and every point in time main passed through is restorable.
* **Checksummed.** ``manifest.json`` lists each file's sha256 and size, the tables with their
  metadata locations, snapshot ids, refs and row counts, when the backup was made and the
  source warehouse. It is written last (atomically), so an interrupted backup leaves the
  previous manifest valid.
* **Incremental** backups copy only the files ``DEST`` lacks, judged by path and sha256 against
  the previous manifest (the source is still read to checksum it; Iceberg never rewrites a file
  in place, so an unchanged path with a changed checksum is copied again and reported).
* **Restore** needs an empty target catalog. Files go to the same relative paths under the target
  warehouse. When the target warehouse differs from the source, the absolute paths inside the
  metadata file (JSON), the manifest lists and the manifests (Avro, rewritten with pyiceberg's
  writers) are rebased; data and statistics files are copied byte for byte. Each table is then
  registered in the target catalog with ``register_table``: snapshot ids, sequence numbers, refs
  and the snapshot log are kept, so time travel answers the same.

* **Artifacts** outside Iceberg (``_files.ARTIFACTS``: the router's model directories) named
  by rows on any branch or tag of a captured table are copied and checksummed with the tables'
  files (kind ``artifact``) and restored to the same relative paths; when the warehouse moves,
  main's rows are rewritten (one commit) to name the restored directories.
* **State outside the tables** (hot and warm memories, the memory spool, checkpoint hot rows)
  is exported through the tiers' public functions into ``files/_state`` (kind ``state``) and
  imported by restore once the tables are registered (:mod:`._state`).

* **A REST catalog** (``AURA_CATALOG_URI=http(s)://``, tables in an ``s3://`` warehouse) is
  backed up and restored too, through the catalog's API and the warehouse's FileIO. Its tables
  lie in the catalog's warehouse (``AURA_CATALOG_WAREHOUSE``, the manifest's
  ``source.tables_warehouse``), the artifacts under ``AURA_WAREHOUSE``. The backup reads each
  table's metadata location from the catalog (no single statement reads them all: each table is
  consistent as of its own read, all of them read before any file is copied). Restore re-creates
  each table through the catalog, snapshot for snapshot (:mod:`._recreate`), since a REST
  server's ``register_table`` cannot be relied on; the restore mark is a property of namespace
  ``aura`` in that catalog, and every command checks it (:func:`~lakehouse.table.catalog.
  check_restore_marker`).
* **A non-empty target is refused**, never replaced: restore lists the tables it found and
  changes nothing (on SeaweedFS, dropping a table deletes its objects, so a restore must not drop
  what it did not write). Undoing an unfinished restore drops only the tables it created and
  deletes only files at paths the backup lists.

Limits: the metadata log's older metadata files are not copied
(nothing reads them; the restored log names files that do not exist); a restore that fails part
way leaves the tables registered so far (restore into a fresh catalog again).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager as ContextManager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import IcebergTables, SqlCatalog
from pyiceberg.io import FileIO, load_file_io
from pyiceberg.manifest import (
    DataFileContent,
    FileFormat,
    read_manifest_list,
)
from pyiceberg.serializers import FromInputFile
from pyiceberg.table import StaticTable
from sqlalchemy import select
from sqlalchemy.orm import Session

from lakehouse.maintenance import _files, _manifest, _rebase, _recreate, _state
from lakehouse.maintenance._location import Location
from lakehouse.maintenance._manifest import (
    ARTIFACT,
    DATA,
    FILES,
    FORMAT,
    HISTORY,
    MANIFEST,
    MANIFEST_FILE,
    MANIFEST_LIST,
    METADATA,
    ORDER,
    STATE,
    STATISTICS,
    BackupError,
)
from lakehouse.settings import NAMESPACE, Settings, redact_url
from lakehouse.table import storage
from lakehouse.table.catalog import (
    RESTORE_MARKER,
    forget_checks,
    open_catalog,
    tables_warehouse,
    warehouse_properties,
)

log = logging.getLogger(__name__)

_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class BackupReport:
    """What :func:`backup` wrote."""

    dest: str
    created_at: str
    incremental: bool
    tables: int
    files: int
    bytes: int
    copied_files: int
    copied_bytes: int
    seconds: float
    changed: list[str] = field(default_factory=list)  # same path, different checksum
    digest: str = ""  # sha256 of the manifest: give it to `aura restore --expect-digest`
    signed: bool = False  # signed with AURA_BACKUP_KEY
    removed_files: int = 0  # files of earlier backups the current manifest no longer lists
    removed_manifests: int = 0  # earlier manifests naming such files
    state: _state.StateCounts = field(default_factory=_state.StateCounts)


@dataclass
class VerifyReport:
    """What :func:`verify` found: files missing from the backup or with another size/checksum."""

    dest: str
    created_at: str
    files: int = 0
    bytes: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    unsafe: list[str] = field(default_factory=list)  # hostile paths or names, symlinks
    unlisted: list[str] = field(default_factory=list)  # files and old manifests not current
    signature: str = "unsigned"  # signed, unsigned, invalid or unverifiable (no key)
    digest: str = ""
    untrusted: str = ""  # why the manifest cannot be trusted ("" when it can)

    @property
    def ok(self) -> bool:
        return self.restorable and not self.unlisted

    @property
    def restorable(self) -> bool:
        """Everything a restore reads is present, intact, confined and trusted."""
        return not (self.missing or self.corrupt or self.unsafe or self.untrusted)


@dataclass(frozen=True)
class RestoreReport:
    """What :func:`restore` registered and wrote."""

    home: str
    warehouse: str
    tables: list[str]
    files: int
    bytes: int
    rewritten: int  # metadata, manifest list and manifest files whose paths were rebased
    seconds: float
    signature: str = "unsigned"  # signed (checked with AURA_BACKUP_KEY) or unsigned
    digest: str = ""
    started_over: bool = False  # an interrupted restore into this home was undone first
    archived_threads: int = 0  # checkpoint threads the hot store now reads through to
    state: _state.StateCounts = field(default_factory=_state.StateCounts)


# --------------------------------------------------------------------------- backup


def backup(
    settings: Settings,
    dest: str | Path,
    *,
    incremental: bool = False,
    on_captured: Callable[[dict[str, str]], None] | None = None,
) -> BackupReport:
    """Copy the catalog's tables and every file their live snapshots and refs reference.

    ``on_captured`` is called with table -> metadata location once the catalog has been read
    (before any file is copied); commits after that point are not part of the backup.

    Raises:
        BackupError: ``dest`` holds something else (or a backup, without ``incremental``), a
            file lies outside the warehouse, or a referenced file vanished during the copy.
    """
    started = time.perf_counter()
    root = _location(dest, settings)
    _refuse_inside_warehouse(root, settings)
    previous = _previous_manifest(root, incremental)
    files_at = root.child(FILES)
    catalog = open_catalog(settings)
    tables_root = tables_warehouse(settings)
    created_at = datetime.now(UTC).isoformat()
    rows = _catalog_rows(catalog)  # first: this read is the moment the backup shows
    if on_captured is not None:
        on_captured(dict(rows))

    tables: dict[str, dict[str, Any]] = {}
    wanted: dict[str, str] = {}  # relative path -> kind
    sources: dict[str, str] = {}  # relative path -> absolute source path

    def want(path: str, root: str, kind: str) -> None:
        rel = _rebase.relative(path, root)
        if sources.setdefault(rel, path) != path:
            raise BackupError(
                f"{path} and {sources[rel]} would both be {rel} in the backup (the tables' "
                "warehouse and AURA_WAREHOUSE overlap); give them separate prefixes"
            )
        wanted[rel] = kind

    for name, location in rows:
        table = StaticTable.from_metadata(location, properties=catalog.properties)
        tables[name] = _describe(table, location, tables_root)
        for path, kind in _referenced(table):
            want(path, tables_root, kind)
        for path in _artifacts(name, table, settings):
            want(path, settings.warehouse, ARTIFACT)

    old_files: dict[str, dict[str, Any]] = previous.get("files", {}) if previous else {}
    files: dict[str, dict[str, Any]] = {}
    copied_files = copied_bytes = 0
    changed: list[str] = []
    io = load_file_io(catalog.properties, settings.warehouse)
    for rel in sorted(wanted):
        known = old_files.get(rel)
        digest = size = None
        if known is not None and files_at.size(rel) == known["size"]:
            digest, size = _checksum(io, sources[rel])
            if digest != known["sha256"]:
                changed.append(rel)
                digest = None
        if digest is None:
            digest, size = _copy(io, sources[rel], files_at.writer, rel)
            copied_files += 1
            copied_bytes += size
        files[rel] = {"sha256": digest, "size": size, "kind": wanted[rel]}

    def put_state(rel: str, data: bytes) -> None:
        nonlocal copied_files, copied_bytes
        digest = hashlib.sha256(data).hexdigest()
        known = old_files.get(rel)
        if known is None or known["sha256"] != digest or files_at.size(rel) != len(data):
            files_at.write_bytes(rel, data)
            copied_files += 1
            copied_bytes += len(data)
        files[rel] = {"sha256": digest, "size": len(data), "kind": STATE}

    state_parts, state = _state.export(settings, put_state)

    manifest = {
        "format": FORMAT,
        "created_at": created_at,
        "incremental": incremental and previous is not None,
        "base": previous.get("created_at") if previous else None,
        "source": {
            "warehouse": settings.warehouse,
            "catalog": redact_url(settings.catalog_uri),
            "catalog_name": settings.catalog_name,
            "namespace": NAMESPACE,
            **({"tables_warehouse": tables_root} if tables_root != settings.warehouse else {}),
        },
        "tables": tables,
        "files": files,
        "state": {"files": state_parts, "counts": asdict(state)},
    }
    manifest = _manifest.sign(manifest, settings.backup_key)
    _write_manifest(root, manifest)
    pruned = _prune(root, manifest)
    report = BackupReport(
        dest=root.uri,
        created_at=created_at,
        incremental=bool(manifest["incremental"]),
        tables=len(tables),
        files=len(files),
        bytes=sum(f["size"] for f in files.values()),
        copied_files=copied_files,
        copied_bytes=copied_bytes,
        seconds=time.perf_counter() - started,
        changed=changed,
        digest=_manifest.digest(manifest),
        signed=settings.backup_key is not None,
        removed_files=pruned[0],
        removed_manifests=pruned[1],
        state=state,
    )
    log.info(
        "backup of %d table(s) to %s: %d files, %d copied (%d bytes) in %.2fs",
        report.tables,
        root,
        report.files,
        report.copied_files,
        report.copied_bytes,
        report.seconds,
    )
    return report


def _location(dest: str | Path, settings: Settings) -> Location:
    """``dest`` as a backup location (a bucket with the warehouse's S3 endpoint and keys)."""
    try:
        return Location.of(dest, settings.s3_properties())
    except ValueError as exc:
        raise BackupError(str(exc)) from None


def _refuse_inside_warehouse(root: Location, settings: Settings) -> None:
    """A destination in the warehouse would be deleted by orphan removal; one that holds the
    warehouse would copy the backup into itself."""
    for warehouse in {settings.warehouse, tables_warehouse(settings)}:
        in_bucket = "://" in warehouse and not warehouse.startswith("file:")
        if in_bucket != (not root.local):
            continue  # a local DEST cannot lie in an object store, nor a bucket in a directory
        if in_bucket:
            here, there = _files.normalise(root.uri), _files.normalise(warehouse)
        else:
            there = _files.normalise(os.path.realpath(_files.local_path(warehouse)))
            here = _files.normalise(root.uri)
        if here == there or _files.under(here, there) or _files.under(there, here):
            raise BackupError(
                f"the backup destination {root} overlaps the warehouse {warehouse}: orphan "
                "removal (`aura maintain`) deletes every file there that no table references, "
                "the backup included. Give a directory outside the warehouse, ideally on "
                "another disk (or a bucket prefix outside it)"
            )


def _prune(root: Location, manifest: dict[str, Any]) -> tuple[int, int]:
    """Delete what the current manifest does not list: files of earlier backups (erased data
    among them) and earlier manifests that name a file or checksum the backup no longer holds.

    Runs after the manifest is written, so a kill leaves the new backup complete and the next
    backup finishes the pruning. Returns (files, manifests) removed.
    """
    files: dict[str, dict[str, Any]] = manifest["files"]
    files_at, history = root.child(FILES), root.child(HISTORY)
    removed_files = 0
    for rel in _unlisted(files_at, files):
        files_at.delete(rel)
        removed_files += 1
    files_at.tidy()
    removed_manifests = 0
    current = _manifest.history_name(manifest)
    for old in _history(history):
        if old == current:
            continue
        try:
            listed = json.loads(history.read_bytes(old)).get("files", {})
            kept = all(
                files.get(rel, {}).get("sha256") == entry.get("sha256")
                for rel, entry in listed.items()
            )
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            kept = False
        if not kept:
            history.delete(old)
            removed_manifests += 1
    if removed_files or removed_manifests:
        log.info(
            "backup %s: removed %d file(s) and %d manifest(s) the current backup no longer lists",
            root,
            removed_files,
            removed_manifests,
        )
    return removed_files, removed_manifests


def _previous_manifest(root: Location, incremental: bool) -> dict[str, Any] | None:
    if not root.reachable():
        raise BackupError(
            f"the bucket of {root} does not exist or AWS_ACCESS_KEY_ID cannot see it; create it "
            "first (the backup uses the warehouse's AURA_S3_ENDPOINT and keys)"
        )
    if root.is_file():
        raise BackupError(f"backup destination {root} is a file; give a directory")
    found = root.files()
    if MANIFEST in found:
        if not incremental:
            raise BackupError(
                f"{root} already holds a backup; use --incremental to add to it, "
                "or give an empty directory"
            )
        return _load(root)
    if found:
        raise BackupError(f"{root} is not empty and holds no backup; give an empty directory")
    return None


def _catalog_rows(catalog: Catalog) -> list[tuple[str, str]]:
    """(table, metadata location) of every table in the namespace: in one statement on a SQL
    catalog, one table at a time on a REST catalog."""
    if not isinstance(catalog, SqlCatalog):
        found = ((ident[-1], catalog.load_table(ident)) for ident in catalog.list_tables(NAMESPACE))
        return sorted((name, table.metadata_location) for name, table in found)
    query = (
        select(IcebergTables.table_name, IcebergTables.metadata_location)
        .where(IcebergTables.catalog_name == catalog.name)
        .where(IcebergTables.table_namespace == NAMESPACE)
        .order_by(IcebergTables.table_name)
    )
    with Session(catalog.engine) as session:
        rows = session.execute(query).all()
    return [(name, location) for name, location in rows if location]


def _describe(table: StaticTable, location: str, warehouse: str) -> dict[str, Any]:
    metadata = table.metadata
    current = table.current_snapshot()
    rows = None
    if current is not None and current.summary is not None:
        total = current.summary.get("total-records")
        rows = int(total) if total is not None else None
    return {
        "metadata_location": location,
        "metadata": _rebase.relative(location, warehouse),
        "format_version": metadata.format_version,
        "current_snapshot_id": metadata.current_snapshot_id,
        "snapshot_ids": [s.snapshot_id for s in metadata.snapshots],
        "refs": {
            name: {"type": ref.snapshot_ref_type.value, "snapshot_id": ref.snapshot_id}
            for name, ref in sorted(metadata.refs.items())
        },
        "rows": rows,
    }


def _referenced(table: StaticTable) -> Iterator[tuple[str, str]]:
    """Every file the table's current metadata needs, with its kind."""
    yield table.metadata_location, METADATA
    found = _files.referenced(table, table.metadata.snapshots, live_only=True)
    for path in found.manifest_lists:
        yield path, MANIFEST_LIST
    for path in found.manifests:
        yield path, MANIFEST_FILE
    for path in found.data_files:
        yield path, DATA
    for path in _files.statistics_files(table):
        yield path, STATISTICS


def _artifacts(name: str, table: StaticTable, settings: Settings) -> Iterator[str]:
    """The files of the artifact directories that rows on any ref of ``name`` name."""
    if name not in _files.ARTIFACTS:
        return
    warehouse = settings.warehouse
    for rel in sorted(_files.artifact_dirs(table, name)):
        found = storage.list_files(_files.join(warehouse, rel), warehouse_properties(settings))
        if not found:
            raise BackupError(
                f"{name} names the artifact {rel}, which is missing or empty under {warehouse}; "
                "the backup would not restore it"
            )
        yield from (f.path for f in found)


def load_manifest(
    root: str | Path, *, properties: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The manifest of the backup in ``root`` (a directory, or an ``s3://`` prefix read with
    the S3 ``properties`` of :meth:`Settings.s3_properties`).

    Raises:
        BackupError: there is no readable aura backup manifest there.
    """
    return _load(_open(root, properties))


def _open(root: str | Path, properties: Mapping[str, str] | None) -> Location:
    try:
        return Location.of(root, properties or {})
    except ValueError as exc:
        raise BackupError(str(exc)) from None


def _load(root: Location) -> dict[str, Any]:
    where = root.path(MANIFEST)
    if root.unsafe([MANIFEST]):
        raise BackupError(
            f"{where} is a symlink or not a regular file; a backup's manifest must be one"
        )
    try:
        data = root.read_bytes(MANIFEST)
    except FileNotFoundError:
        raise BackupError(f"{root} holds no backup ({MANIFEST} is missing)") from None
    except OSError as exc:  # a bucket that does not exist, a directory named manifest.json
        raise BackupError(f"{where} cannot be read ({exc}); is {root} a backup?") from None
    return _manifest.parse(data, where)


def _write_manifest(root: Location, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` to the history and, atomically, as the backup's current manifest."""
    data = _manifest.serialise(manifest)
    root.child(HISTORY).write_bytes(_manifest.history_name(manifest), data)
    root.write_bytes(MANIFEST, data)


def _history(history: Location) -> list[str]:
    """The names of the manifests in the backup's history (``manifests/*.json``)."""
    return [name for name in history.files() if "/" not in name and name.endswith(".json")]


def _unlisted(files_at: Location, listed: dict[str, Any]) -> list[str]:
    """Files below the backup's ``files`` that the manifest does not list."""
    return [rel for rel in files_at.files() if rel not in listed]


# --------------------------------------------------------------------------- verify


def verify(
    root: str | Path | Location,
    *,
    key: str | None = None,
    expect_digest: str | None = None,
    properties: Mapping[str, str] | None = None,
) -> VerifyReport:
    """Check a backup: every listed file present with its size and sha256, paths and names safe,
    nothing unlisted kept, the manifest signed by ``key`` (or matching ``expect_digest``).

    ``properties``: the S3 endpoint and keys (:meth:`Settings.s3_properties`) of an ``s3://``
    backup.
    """
    if not isinstance(root, Location):
        root = _open(root, properties)
    manifest = _load(root)
    report = VerifyReport(root.uri, str(manifest.get("created_at")))
    report.digest = _manifest.digest(manifest)
    report.signature = _manifest.signature_status(manifest, key)
    report.untrusted = _manifest.trust_problem(manifest, key, expect_digest)
    report.unsafe = _manifest.structure_problems(manifest)
    if report.unsafe:
        return report  # paths and names are not safe to look at
    files: dict[str, dict[str, Any]] = manifest["files"]
    files_at, history = root.child(FILES), root.child(HISTORY)
    unsafe = files_at.unsafe(files)
    report.unsafe += [f"{rel} is a symlink or not a regular file" for rel in unsafe]
    for rel, entry in sorted(files.items()):
        report.files += 1
        report.bytes += entry["size"]
        size = files_at.size(rel)
        if size is None:
            report.missing.append(rel)
            continue
        if rel in unsafe:
            continue  # reported as unsafe, never read
        if size != entry["size"] or files_at.sha256(rel) != entry["sha256"]:
            report.corrupt.append(rel)
    report.unlisted = _unlisted(files_at, files)
    current = _manifest.history_name(manifest)
    for old in _history(history):
        if old == current:
            continue
        try:
            listed = json.loads(history.read_bytes(old)).get("files", {})
            stale = any(
                files.get(r, {}).get("sha256") != e.get("sha256") for r, e in listed.items()
            )
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            stale = True
        if stale:
            report.unlisted.append(f"{HISTORY}/{old}")
    if not report.corrupt and not report.missing and not report.unsafe:
        report.unsafe += _consistency_problems(root, manifest)
    return report


def _consistency_problems(root: Location, manifest: dict[str, Any]) -> list[str]:
    """What the tables' own metadata contradicts in the manifest, or names outside the backup.

    Every file a table's metadata, manifest lists and manifests reference must be listed with
    its kind (and a live data file with the size and row count its manifest entry records); the
    table's location and write paths must lie in the source warehouse; its snapshots and refs
    must be those the manifest describes.
    """
    problems: list[str] = []
    for name, described in sorted(manifest["tables"].items()):
        try:
            problems += _table_problems(root, manifest, name, described)
        except Exception as exc:  # pyiceberg and pyarrow raise many types for a malformed file
            problems.append(f"the metadata of {name} cannot be read ({type(exc).__name__})")
    return problems


def _table_problems(
    root: Location, manifest: dict[str, Any], name: str, described: dict[str, Any]
) -> list[str]:
    files: dict[str, dict[str, Any]] = manifest["files"]
    warehouse = _manifest.tables_warehouse(manifest)
    files_at = root.child(FILES)
    local = files_at.io
    problems: list[str] = []

    def listed(path: str, kind: str, what: str) -> str | None:
        rel = _files.relative(path, warehouse)
        if rel is None or not _manifest.safe_rel(rel):
            problems.append(f"{name}: {what} {path} lies outside the source warehouse")
            return None
        if files.get(rel, {}).get("kind") != kind:
            problems.append(f"{name}: {what} {path} is not a {kind} file of the backup")
            return None
        return rel

    metadata = FromInputFile.table_metadata(local.new_input(files_at.path(described["metadata"])))
    for what, value in [("location", metadata.location)] + [
        (key, value)
        for key, value in metadata.properties.items()
        if key.startswith("write.") and key.endswith(".path")
    ]:
        if _files.relative(value, warehouse) is None:
            problems.append(f"{name}: its {what} {value} lies outside the source warehouse")
    refs = {
        n: {"type": r.snapshot_ref_type.value, "snapshot_id": r.snapshot_id}
        for n, r in metadata.refs.items()
    }
    problems += _manifest.ref_problems(name, refs)
    if (
        refs != described.get("refs")
        or metadata.current_snapshot_id != described.get("current_snapshot_id")
        or sorted(s.snapshot_id for s in metadata.snapshots)
        != sorted(described.get("snapshot_ids") or [])
    ):
        problems.append(f"{name}: its metadata's snapshots or refs differ from the manifest's")
    for statistics in metadata.statistics + metadata.partition_statistics:
        listed(statistics.statistics_path, STATISTICS, "statistics file")
    seen: set[str] = set()
    for snapshot in metadata.snapshots:
        manifest_list = listed(snapshot.manifest_list, MANIFEST_LIST, "manifest list")
        if manifest_list is None:
            continue
        for mf in read_manifest_list(local.new_input(files_at.path(manifest_list))):
            if mf.manifest_path in seen:
                continue
            seen.add(mf.manifest_path)
            rel = listed(mf.manifest_path, MANIFEST_FILE, "manifest")
            if rel is None:
                continue
            moved = _rebase.clone(mf)
            _rebase.set_field(moved, "manifest_path", files_at.path(rel))
            for entry in moved.fetch_manifest_entry(local, discard_deleted=True):
                data = entry.data_file
                found = listed(data.file_path, DATA, "data file")
                if found is None:
                    continue
                rows = data.record_count
                if data.file_format == FileFormat.PARQUET and data.content == DataFileContent.DATA:
                    with files_at.open_input(found) as stream:
                        rows = pq.read_metadata(stream).num_rows
                if files_at.size(found) != data.file_size_in_bytes or (rows != data.record_count):
                    problems.append(
                        f"{name}: data file {data.file_path} is not the file its manifest "
                        "names (size or row count differ)"
                    )
    return problems


# --------------------------------------------------------------------------- restore


def restore(
    src: str | Path,
    settings: Settings,
    *,
    expect_digest: str | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> RestoreReport:
    """Restore the backup in ``src`` into the (empty) catalog and warehouse of ``settings``.

    Nothing in the backup is trusted: it must pass :func:`verify` (paths, names, checksums, the
    signature with ``AURA_BACKUP_KEY`` or ``expect_digest``, and the tables' own metadata)
    before anything is written. The target catalog is marked before the first write and
    unmarked after the last table is registered: until then every command refuses the home
    (:func:`lakehouse.table.catalog.check_home`), and running the same restore again undoes the
    unfinished one and starts over. ``on_progress`` is called after each step (tests kill there).

    Raises:
        BackupError: the backup fails verification, the target catalog already holds tables
            (and no unfinished restore of this backup), or a target file already exists.
    """
    started = time.perf_counter()
    root = _location(src, settings)
    checked = verify(root, key=settings.backup_key, expect_digest=expect_digest)
    if not checked.restorable:
        first = (checked.untrusted and [checked.untrusted]) or checked.unsafe[:3]
        raise BackupError(
            f"backup {root} fails verification ({len(checked.missing)} missing, "
            f"{len(checked.corrupt)} corrupt, {len(checked.unsafe)} unsafe file(s) or name(s)"
            + (f": {'; '.join(first)}" if first else "")
            + f"); nothing was restored. `aura backup verify {root}` lists every problem"
        )
    manifest = _load(root)
    if _manifest.digest(manifest) != checked.digest:
        raise BackupError(f"{root}/{MANIFEST} changed while it was checked; run restore again")
    _state.checked_parts(manifest)  # before anything is written
    progress = on_progress or (lambda step: None)
    catalog = open_catalog(settings, check=False)
    rest = not isinstance(catalog, SqlCatalog)  # tables re-created, not registered
    forget_checks(settings)
    files: dict[str, dict[str, Any]] = manifest["files"]
    target_io = load_file_io(catalog.properties, settings.warehouse)
    source_tables, target_tables = _manifest.tables_warehouse(manifest), tables_warehouse(settings)
    rebase = None
    if _files.normalise(source_tables) != _files.normalise(target_tables):

        def rebase(path: str) -> str:
            return _files.join(target_tables, _rebase.relative(path, source_tables))

    files_at = root.child(FILES)
    rewriter = _rebase.Rewriter(files_at, source_tables, target_io, rebase)
    if rest:  # before anything is written
        found = [
            problem
            for name, table in sorted(manifest["tables"].items())
            for problem in _recreate.problems(name, rewriter.metadata(table["metadata"]))
        ]
        if found:
            raise BackupError(
                f"cannot re-create through a REST catalog: {'; '.join(found)}; nothing was "
                "restored. Restore this backup into a SQL catalog"
            )

    def target(rel: str) -> str:
        """Where the backup's file ``rel`` goes: artifacts under AURA_WAREHOUSE, table files
        under the catalog's warehouse (the same one but on a REST catalog)."""
        root_ = settings.warehouse if files[rel]["kind"] == ARTIFACT else target_tables
        return _files.join(root_, rel)

    written = [target(rel) for rel, entry in files.items() if entry["kind"] != STATE]
    started_over = _claim(catalog, settings, root, checked.digest, written)
    progress("claimed")
    rewritten = 0
    for kind in ORDER:
        if rebase is not None and kind == MANIFEST_FILE:
            continue  # written with the manifest lists that name them
        if rebase is not None and kind == MANIFEST_LIST:
            rewritten += rewriter.manifest_lists(manifest["tables"])
            progress(kind)
            continue
        for rel, entry in files.items():
            if entry["kind"] != kind:
                continue
            if rest and kind == METADATA:
                continue  # the catalog writes its own when the table is re-created
            if rebase is not None and kind == METADATA:
                rewriter.metadata(rel, target(rel))
                rewritten += 1
            else:
                _copy(files_at.io, files_at.path(rel), _creating(target_io), target(rel))
            progress(kind)
    tables = []
    for name, table in sorted(manifest["tables"].items()):
        if rest:
            _recreate.recreate(catalog, (NAMESPACE, name), rewriter.metadata(table["metadata"]))
        else:
            catalog.register_table((NAMESPACE, name), target(table["metadata"]))
        tables.append(name)
        progress("registered")
    catalog.update_namespace_properties(NAMESPACE, removals={RESTORE_MARKER})
    forget_checks(settings)
    threads = _mark_archived_threads(settings) if _CHECKPOINTS in manifest["tables"] else 0
    state = _state.restore(settings, files_at, manifest, cold="memories" in manifest["tables"])
    report = RestoreReport(
        home=str(settings.home),
        warehouse=settings.warehouse,
        tables=tables,
        files=len(files),
        bytes=checked.bytes,
        rewritten=rewritten,
        seconds=time.perf_counter() - started,
        signature=checked.signature,
        digest=checked.digest,
        started_over=started_over,
        archived_threads=threads,
        state=state,
    )
    log.info("restored %d table(s) from %s into %s", len(tables), root, settings.warehouse)
    return report


_CHECKPOINTS = "workflow_checkpoints"


def _mark_archived_threads(settings: Settings) -> int:
    """Mark the threads the restored checkpoint archive holds in the target's hot store, so
    ``aura checkpoints show`` reads through to the archive (it reads it only for marked
    threads); returns how many."""
    from lakehouse.checkpoints import AuraCheckpointSaver, CheckpointArchive
    from lakehouse.core import Lakehouse

    with AuraCheckpointSaver.from_settings(settings, archive=False) as saver:
        return CheckpointArchive(Lakehouse(settings)).mark_threads(saver)


def _claim(
    catalog: Catalog, settings: Settings, root: Location, digest: str, targets: list[str]
) -> bool:
    """Mark the target as being restored from this backup; returns whether an unfinished
    restore of the same backup was undone first.

    Raises:
        BackupError: the catalog holds tables (or an unfinished restore of another backup), or
            a target file exists that no unfinished restore of this backup wrote.
    """
    marker = catalog.load_namespace_properties(NAMESPACE).get(RESTORE_MARKER)
    existing = catalog.list_tables(NAMESPACE)
    if marker is not None:
        try:
            prior = json.loads(marker)
        except ValueError:
            prior = {}
        if prior.get("digest") != digest:
            raise BackupError(
                f"AURA_HOME {settings.home} holds an unfinished restore from "
                f"{prior.get('source', 'another backup')}; run that restore again to finish it, "
                "or restore into a new AURA_HOME (--home)"
            )
        for identifier in existing:  # what the interrupted run registered
            if isinstance(catalog, SqlCatalog):
                catalog.drop_table(identifier)
            else:  # the REST server's own metadata files go too (SeaweedFS deletes them anyway)
                catalog.purge_table(identifier)
        # and what it wrote: every target path is one of the backup's
        storage.delete_files(targets, warehouse_properties(settings))
        log.info("undid an unfinished restore of %s into %s", root, settings.home)
    else:
        if existing:
            names = ", ".join(".".join(t) for t in existing)
            where = "restore into a new AURA_HOME (--home) or catalog name"
            if not isinstance(catalog, SqlCatalog):
                where = (
                    f"nothing was changed. Restore into an empty warehouse of the REST catalog "
                    f"(AURA_CATALOG_WAREHOUSE, now {tables_warehouse(settings)}), or drop these "
                    "tables first if they are to be replaced (on SeaweedFS that deletes their "
                    "objects)"
                )
            raise BackupError(
                f"the target catalog {settings.catalog_name!r} at "
                f"{redact_url(settings.catalog_uri)} is not empty ({names}); {where}"
            )
        for target in targets:
            if storage.exists(target, warehouse_properties(settings)):
                raise BackupError(f"{target} already exists; restore into an empty warehouse")
    value = {"source": root.uri, "digest": digest, "started_at": datetime.now(UTC).isoformat()}
    catalog.update_namespace_properties(NAMESPACE, updates={RESTORE_MARKER: json.dumps(value)})
    return marker is not None


# --------------------------------------------------------------------------- files and paths


def _checksum(io: FileIO, path: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with _opened(io, path) as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _copy(
    io: FileIO, source: str, writer: Callable[[str], ContextManager[Any]], target: str
) -> tuple[str, int]:
    """Copy ``source`` to what ``writer(target)`` opens; returns its sha256 and size."""
    digest, size = hashlib.sha256(), 0
    with _opened(io, source) as stream, writer(target) as out:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return digest.hexdigest(), size


def _creating(io: FileIO) -> Callable[[str], ContextManager[Any]]:
    """Opens a new file of ``io`` (refused when one exists)."""
    return lambda location: io.new_output(location).create(overwrite=False)


@contextlib.contextmanager
def _opened(io: FileIO, path: str) -> Iterator[Any]:
    try:
        stream = io.new_input(path).open()
    except FileNotFoundError:
        raise BackupError(
            f"{path} vanished while the backup ran (a concurrent snapshot expiry?); run it again"
        ) from None
    try:
        yield stream
    finally:
        stream.close()


def as_dict(report: BackupReport | RestoreReport | VerifyReport) -> dict[str, Any]:
    """A report as plain JSON-able data."""
    data = asdict(report)
    if isinstance(report, VerifyReport):
        data["ok"] = report.ok
    return data
