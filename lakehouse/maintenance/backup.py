"""Backup, verification and restore of every aura table.

A backup is a directory ``DEST`` holding ``manifest.json`` and ``files/<path in the warehouse>``.

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

Limits: ``DEST`` is a local directory; the metadata log's older metadata files are not copied
(nothing reads them; the restored log names files that do not exist); a restore that fails part
way leaves the tables registered so far (restore into a fresh catalog again).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
from pyiceberg.avro.codecs import AvroCompressionCodec
from pyiceberg.avro.file import AvroFile
from pyiceberg.catalog.sql import IcebergTables, SqlCatalog
from pyiceberg.io import FileIO, load_file_io
from pyiceberg.io.pyarrow import PyArrowFileIO
from pyiceberg.manifest import (
    DataFile,
    ManifestContent,
    ManifestFile,
    ManifestWriter,
    ManifestWriterV1,
    ManifestWriterV2,
    read_manifest_list,
    write_manifest_list,
)
from pyiceberg.schema import Schema
from pyiceberg.serializers import FromInputFile
from pyiceberg.table import StaticTable
from pyiceberg.table.metadata import TableMetadata
from sqlalchemy import select
from sqlalchemy.orm import Session

from lakehouse.exceptions import AuraError
from lakehouse.maintenance import _files
from lakehouse.settings import NAMESPACE, Settings, redact_url
from lakehouse.table.catalog import open_sql_catalog

log = logging.getLogger(__name__)

FORMAT = "aura-backup/1"
MANIFEST = "manifest.json"
FILES = "files"
_CHUNK = 8 * 1024 * 1024

# Kinds of file, in the order a restore writes them (rewritten Avro before what names it).
ARTIFACT, DATA, STATISTICS, MANIFEST_FILE, MANIFEST_LIST, METADATA = (
    "artifact",
    "data",
    "statistics",
    "manifest",
    "manifest_list",
    "metadata",
)
_ORDER = (ARTIFACT, DATA, STATISTICS, MANIFEST_FILE, MANIFEST_LIST, METADATA)


class BackupError(AuraError):
    """A backup, verification or restore cannot proceed as asked."""


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


@dataclass
class VerifyReport:
    """What :func:`verify` found: files missing from the backup or with another size/checksum."""

    dest: str
    created_at: str
    files: int = 0
    bytes: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.corrupt


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
    root = Path(dest).expanduser().resolve()
    previous = _previous_manifest(root, incremental)
    catalog = open_sql_catalog(settings, "backup and restore")
    created_at = datetime.now(UTC).isoformat()
    rows = _catalog_rows(catalog)  # first: this read is the moment the backup shows
    if on_captured is not None:
        on_captured(dict(rows))

    tables: dict[str, dict[str, Any]] = {}
    wanted: dict[str, str] = {}  # relative path -> kind
    sources: dict[str, str] = {}  # relative path -> absolute source path
    for name, location in rows:
        table = StaticTable.from_metadata(location, properties=catalog.properties)
        tables[name] = _describe(table, location, settings.warehouse)
        for path, kind in _referenced(table):
            rel = _relative(path, settings.warehouse)
            wanted[rel] = kind
            sources[rel] = path
        for path in _artifacts(name, table):
            rel = _relative(path, settings.warehouse)
            wanted[rel] = ARTIFACT
            sources[rel] = path

    old_files: dict[str, dict[str, Any]] = previous.get("files", {}) if previous else {}
    files: dict[str, dict[str, Any]] = {}
    copied_files = copied_bytes = 0
    changed: list[str] = []
    io = load_file_io(catalog.properties, settings.warehouse)
    for rel in sorted(wanted):
        target = root / FILES / rel
        known = old_files.get(rel)
        digest = size = None
        if known is not None and _size(target) == known["size"]:
            digest, size = _checksum(io, sources[rel])
            if digest != known["sha256"]:
                changed.append(rel)
                digest = None
        if digest is None:
            digest, size = _copy(io, sources[rel], target)
            copied_files += 1
            copied_bytes += size
        files[rel] = {"sha256": digest, "size": size, "kind": wanted[rel]}

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
        },
        "tables": tables,
        "files": files,
    }
    _write_manifest(root, manifest)
    report = BackupReport(
        dest=str(root),
        created_at=created_at,
        incremental=bool(manifest["incremental"]),
        tables=len(tables),
        files=len(files),
        bytes=sum(f["size"] for f in files.values()),
        copied_files=copied_files,
        copied_bytes=copied_bytes,
        seconds=time.perf_counter() - started,
        changed=changed,
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


def _previous_manifest(root: Path, incremental: bool) -> dict[str, Any] | None:
    if not root.exists():
        return None
    if not root.is_dir():
        raise BackupError(f"backup destination {root} is a file; give a directory")
    if (root / MANIFEST).exists():
        if not incremental:
            raise BackupError(
                f"{root} already holds a backup; use --incremental to add to it, "
                "or give an empty directory"
            )
        return load_manifest(root)
    if any(root.iterdir()):
        raise BackupError(f"{root} is not empty and holds no backup; give an empty directory")
    return None


def _catalog_rows(catalog: SqlCatalog) -> list[tuple[str, str]]:
    """(table, metadata location) of every table in the namespace, in one statement."""
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
        "metadata": _relative(location, warehouse),
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


def _artifacts(name: str, table: StaticTable) -> Iterator[str]:
    """The files of the artifact directories that rows on any ref of ``name`` name."""
    if name not in _files.ARTIFACTS:
        return
    column, _ = _files.ARTIFACTS[name]
    for uri in sorted(_files.artifact_uris(table, column)):
        directory = _files.local_path(uri)
        found = _files.directory_files(directory)
        if not found:
            raise BackupError(
                f"{name} names the artifact {uri}, which is missing or empty; the backup would "
                "not restore it"
            )
        for path in found:
            yield f"{uri.rstrip('/')}/{path.relative_to(directory).as_posix()}"


def _rebase_artifacts(
    catalog: SqlCatalog, name: str, source_warehouse: str, rebase: Callable[[str], str]
) -> int:
    """Commit main's rows of ``name`` with their artifact URIs moved to the target warehouse.

    Branches and tags keep the source URIs (their rows are history); readers resolve those
    under the target warehouse (``lakehouse.router.registry.artifact_path``). Returns the
    number of rows rewritten (0: no commit).
    """
    column, _ = _files.ARTIFACTS[name]
    table = catalog.load_table((NAMESPACE, name))
    if table.current_snapshot() is None:
        return 0
    rows = table.scan().to_arrow()
    uris = rows.column(column).to_pylist()
    moved = [_as_uri(rebase(u)) if u and _under(u, source_warehouse) else u for u in uris]
    changed = sum(1 for a, b in zip(uris, moved, strict=True) if a != b)
    if changed:
        index = rows.schema.get_field_index(column)
        rows = rows.set_column(
            index, rows.schema.field(index), pa.array(moved, rows.schema.field(index).type)
        )
        table.overwrite(rows, snapshot_properties={"aura.operation": "restore-rebase-artifacts"})
    return changed


def _as_uri(path: str) -> str:
    return path if "://" in path else Path(path).as_uri()


def _write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest, indent=1, sort_keys=True)
    history = root / "manifests"
    history.mkdir(parents=True, exist_ok=True)
    stamp = manifest["created_at"].replace(":", "").replace("+0000", "Z")
    (history / f"{stamp}.json").write_text(text)
    tmp = root / f".{MANIFEST}.tmp"
    tmp.write_text(text)
    os.replace(tmp, root / MANIFEST)


def load_manifest(root: str | Path) -> dict[str, Any]:
    """The manifest of the backup in ``root``.

    Raises:
        BackupError: there is no readable aura backup manifest there.
    """
    path = Path(root) / MANIFEST
    try:
        manifest = cast(dict[str, Any], json.loads(path.read_text()))
    except FileNotFoundError:
        raise BackupError(f"{root} holds no backup ({MANIFEST} is missing)") from None
    except json.JSONDecodeError as exc:
        raise BackupError(f"{path} is not valid JSON ({exc}); the backup is damaged") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path} is not an {FORMAT} manifest")
    return manifest


# --------------------------------------------------------------------------- verify


def verify(root: str | Path) -> VerifyReport:
    """Recompute every file's size and sha256 against the manifest."""
    root = Path(root).expanduser().resolve()
    manifest = load_manifest(root)
    report = VerifyReport(str(root), manifest["created_at"])
    for rel, entry in sorted(manifest["files"].items()):
        report.files += 1
        report.bytes += entry["size"]
        path = root / FILES / rel
        if not path.is_file():
            report.missing.append(rel)
            continue
        if path.stat().st_size != entry["size"] or _local_checksum(path) != entry["sha256"]:
            report.corrupt.append(rel)
    for name, table in manifest["tables"].items():
        if table["metadata"] not in manifest["files"]:
            report.missing.append(f"{table['metadata']} (metadata of {name})")
    return report


# --------------------------------------------------------------------------- restore


def restore(src: str | Path, settings: Settings) -> RestoreReport:
    """Restore the backup in ``src`` into the (empty) catalog and warehouse of ``settings``.

    Raises:
        BackupError: the backup fails verification, the target catalog already holds tables, or
            a target file already exists.
    """
    started = time.perf_counter()
    root = Path(src).expanduser().resolve()
    checked = verify(root)
    if not checked.ok:
        raise BackupError(
            f"backup {root} fails verification ({len(checked.missing)} missing, "
            f"{len(checked.corrupt)} corrupt file(s)); run `aura backup verify {root}`"
        )
    manifest = load_manifest(root)
    catalog = open_sql_catalog(settings, "backup and restore")
    existing = catalog.list_tables(NAMESPACE)
    if existing:
        names = ", ".join(".".join(t) for t in existing)
        raise BackupError(
            f"the target catalog {settings.catalog_name!r} at {redact_url(settings.catalog_uri)} "
            f"is not empty ({names}); restore into a new AURA_HOME (--home) or catalog name"
        )
    files: dict[str, dict[str, Any]] = manifest["files"]
    target_io = load_file_io(catalog.properties, settings.warehouse)
    for rel in files:
        target = _join(settings.warehouse, rel)
        if target_io.new_input(target).exists():
            raise BackupError(f"{target} already exists; restore into an empty warehouse")

    source_warehouse = manifest["source"]["warehouse"]
    rebase = None
    if _norm(source_warehouse) != _norm(settings.warehouse):

        def rebase(path: str) -> str:
            return _join(settings.warehouse, _relative(path, source_warehouse))

    rewriter = _Rewriter(root / FILES, source_warehouse, target_io, rebase)
    rewritten = 0
    for kind in _ORDER:
        if rebase is not None and kind == MANIFEST_FILE:
            continue  # written with the manifest lists that name them
        if rebase is not None and kind == MANIFEST_LIST:
            rewritten += rewriter.manifest_lists(manifest["tables"])
            continue
        for rel, entry in files.items():
            if entry["kind"] != kind:
                continue
            target = _join(settings.warehouse, rel)
            if rebase is not None and kind == METADATA:
                rewriter.metadata(rel, target)
                rewritten += 1
            else:
                _copy(PyArrowFileIO(), str(root / FILES / rel), target, target_io)
    tables = []
    for name, table in sorted(manifest["tables"].items()):
        catalog.register_table((NAMESPACE, name), _join(settings.warehouse, table["metadata"]))
        tables.append(name)
        if rebase is not None and name in _files.ARTIFACTS:
            rewritten += _rebase_artifacts(catalog, name, source_warehouse, rebase)
    report = RestoreReport(
        home=str(settings.home),
        warehouse=settings.warehouse,
        tables=tables,
        files=len(files),
        bytes=checked.bytes,
        rewritten=rewritten,
        seconds=time.perf_counter() - started,
    )
    log.info("restored %d table(s) from %s into %s", len(tables), root, settings.warehouse)
    return report


class _DeleteManifestWriterV2(ManifestWriterV2):
    def content(self) -> ManifestContent:
        return ManifestContent.DELETES

    @property
    def _meta(self) -> dict[str, str]:
        return {**super()._meta, "content": "deletes"}


class _Rewriter:
    """Writes a backup's metadata, manifest lists and manifests with rebased paths."""

    def __init__(
        self,
        files: Path,
        source_warehouse: str,
        target_io: FileIO,
        rebase: Callable[[str], str] | None,
    ) -> None:
        self.files = files
        self.source_warehouse = source_warehouse
        self.io = target_io
        self.local = PyArrowFileIO()
        self.rebase = rebase or (lambda path: path)
        self.lengths: dict[str, int] = {}  # rewritten manifest (source path) -> new length

    def local_path(self, path: str) -> str:
        return str(self.files / _relative(path, self.source_warehouse))

    def metadata(self, rel: str, target: str) -> None:
        raw = (self.files / rel).read_bytes()
        compressed = raw[:2] == b"\x1f\x8b"
        document = json.loads(gzip.decompress(raw) if compressed else raw)
        text = json.dumps(self._rebase_json(document)).encode()
        with self.io.new_output(target).create(overwrite=False) as out:
            out.write(gzip.compress(text) if compressed else text)

    def _rebase_json(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self._rebase_json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._rebase_json(v) for v in value]
        if isinstance(value, str) and _under(value, self.source_warehouse):
            return self.rebase(value)
        return value

    def manifest_lists(self, tables: dict[str, Any]) -> int:
        """Rewrite every snapshot's manifest list (and, once each, its manifests)."""
        count = 0
        for table in tables.values():
            metadata = FromInputFile.table_metadata(
                self.local.new_input(str(self.files / table["metadata"]))
            )
            for snapshot in metadata.snapshots:
                manifests = [
                    self._manifest(metadata, mf)
                    for mf in read_manifest_list(
                        self.local.new_input(self.local_path(snapshot.manifest_list))
                    )
                ]
                source = self.local_path(snapshot.manifest_list)
                out = self.io.new_output(self.rebase(snapshot.manifest_list))
                with write_manifest_list(
                    format_version=metadata.format_version,  # type: ignore[arg-type]
                    output_file=out,
                    snapshot_id=snapshot.snapshot_id,
                    parent_snapshot_id=snapshot.parent_snapshot_id,
                    sequence_number=snapshot.sequence_number,
                    avro_compression=_codec(source),
                ) as writer:
                    writer.add_manifests(manifests)
                count += 1
        return count + len(self.lengths)

    def _manifest(self, metadata: TableMetadata, manifest: ManifestFile) -> ManifestFile:
        path = manifest.manifest_path
        if path not in self.lengths:
            self.lengths[path] = self._write_manifest(metadata, manifest)
        moved = _clone(manifest)
        _set(moved, "manifest_path", self.rebase(path))
        _set(moved, "manifest_length", self.lengths[path])
        return moved

    def _write_manifest(self, metadata: TableMetadata, manifest: ManifestFile) -> int:
        source = self.local_path(manifest.manifest_path)
        local = _clone(manifest)
        _set(local, "manifest_path", source)
        entries = local.fetch_manifest_entry(self.local, discard_deleted=False)
        with AvroFile[Any](self.local.new_input(source)) as reader:
            meta = reader.header.meta
        schema = Schema.model_validate_json(meta["schema"]) if "schema" in meta else None
        spec = metadata.specs()[manifest.partition_spec_id]
        target = self.rebase(manifest.manifest_path)
        writer_type: type[ManifestWriter]
        if metadata.format_version == 1:
            writer_type = ManifestWriterV1
        elif metadata.format_version == 2:
            deletes = manifest.content == ManifestContent.DELETES
            writer_type = _DeleteManifestWriterV2 if deletes else ManifestWriterV2
        else:
            raise BackupError(
                f"cannot rewrite manifests of format version {metadata.format_version}; "
                "restore into the same warehouse path as the source"
            )
        writer = writer_type(
            spec,
            schema or metadata.schema(),
            self.io.new_output(target),
            manifest.added_snapshot_id or 0,  # only read back by to_manifest_file (unused)
            cast(AvroCompressionCodec, meta.get("avro.codec", "deflate")),
        )
        with writer:
            for entry in entries:
                _set(entry.data_file, "file_path", self.rebase(entry.data_file.file_path))
                writer.add_entry(entry)
        return len(self.io.new_input(target))


# Positions of the fields rebased in pyiceberg's records (their properties have no setters).
_POSITIONS = {"manifest_path": 0, "manifest_length": 1, "file_path": 1}


def _clone(manifest: ManifestFile) -> ManifestFile:
    """A copy that does not share its fields with ``manifest`` (``copy.copy`` would)."""
    return ManifestFile(*(manifest[i] for i in range(len(manifest))))


def _set(record: ManifestFile | DataFile, name: str, value: object) -> None:
    record[_POSITIONS[name]] = value
    if getattr(record, name) != value:  # a pyiceberg upgrade moved the field
        raise BackupError(f"cannot set {name} in pyiceberg's {type(record).__name__}")


def _codec(path: str) -> AvroCompressionCodec:
    with AvroFile[Any](PyArrowFileIO().new_input(path)) as reader:
        return cast(AvroCompressionCodec, reader.header.meta.get("avro.codec", "deflate"))


# --------------------------------------------------------------------------- files and paths


def _norm(path: str) -> str:
    """``file:/x``, ``file:///x`` and ``/x`` as one form, without a trailing slash."""
    if path.startswith("file:"):
        path = path[len("file:") :]
        while path.startswith("//"):
            path = path[1:]
    return path.rstrip("/")


def _under(path: str, warehouse: str) -> bool:
    return _norm(path).startswith(_norm(warehouse) + "/")


def _relative(path: str, warehouse: str) -> str:
    if not _under(path, warehouse):
        raise BackupError(
            f"{path} lies outside the warehouse {warehouse}; only tables stored under "
            "AURA_WAREHOUSE can be backed up"
        )
    rel = _norm(path)[len(_norm(warehouse)) + 1 :]
    if ".." in rel.split("/"):
        raise BackupError(f"{path} leaves the warehouse through '..'")
    return rel


def _join(warehouse: str, rel: str) -> str:
    return f"{warehouse.rstrip('/')}/{rel}"


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def _checksum(io: FileIO, path: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with _opened(io, path) as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _local_checksum(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _copy(
    io: FileIO, source: str, target: Path | str, target_io: FileIO | None = None
) -> tuple[str, int]:
    """Copy ``source`` to a local path (atomically) or a FileIO location; returns sha256, size."""
    digest, size = hashlib.sha256(), 0
    with _opened(io, source) as stream:
        if isinstance(target, Path):
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp")
            with tmp.open("wb") as out:
                while chunk := stream.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            os.replace(tmp, target)
        else:
            assert target_io is not None
            with target_io.new_output(target).create(overwrite=False) as out:
                while chunk := stream.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
    return digest.hexdigest(), size


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
