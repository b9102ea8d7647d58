"""Restore into another warehouse: a backup's metadata, manifest lists and manifests written
with rebased paths.

The metadata file is JSON: every string under the source warehouse is rebased. Manifest lists
and manifests are Avro: they are read with pyiceberg's readers and written again with its
writers (same format version, schema, partition spec and codec), with each manifest's path and
length and each entry's file path rebased. Data and statistics files are copied byte for byte
elsewhere; snapshot ids, sequence numbers and refs never change.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from typing import Any, cast

from pyiceberg.avro.codecs import AvroCompressionCodec
from pyiceberg.avro.file import AvroFile
from pyiceberg.io import FileIO
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
from pyiceberg.table.metadata import TableMetadata, TableMetadataUtil

from lakehouse.maintenance import _files
from lakehouse.maintenance._location import Location
from lakehouse.maintenance._manifest import BackupError


def relative(path: str, warehouse: str) -> str:
    """``path`` relative to ``warehouse``.

    Raises:
        BackupError: it lies outside the warehouse.
    """
    rel = _files.relative(path, warehouse)
    if rel is None:
        raise BackupError(
            f"{path} lies outside the warehouse {warehouse}; only tables stored under "
            "AURA_WAREHOUSE can be backed up"
        )
    return rel


class _DeleteManifestWriterV2(ManifestWriterV2):
    def content(self) -> ManifestContent:
        return ManifestContent.DELETES

    @property
    def _meta(self) -> dict[str, str]:
        return {**super()._meta, "content": "deletes"}


class Rewriter:
    """Writes a backup's metadata, manifest lists and manifests with rebased paths."""

    def __init__(
        self,
        files: Location,
        source_warehouse: str,
        target_io: FileIO,
        rebase: Callable[[str], str] | None,
    ) -> None:
        self.files = files
        self.source_warehouse = source_warehouse
        self.io = target_io
        self.local = files.io  # reads the backup's files
        self.rebase = rebase or (lambda path: path)
        self.lengths: dict[str, int] = {}  # rewritten manifest (source path) -> new length

    def local_path(self, path: str) -> str:
        """Where the backup holds the source warehouse's ``path``."""
        return self.files.path(relative(path, self.source_warehouse))

    def metadata(self, rel: str, target: str | None = None) -> TableMetadata:
        """The backup's metadata file ``rel`` with rebased paths, written to ``target`` if given."""
        raw = self.files.read_bytes(rel)
        compressed = raw[:2] == b"\x1f\x8b"
        document = json.loads(gzip.decompress(raw) if compressed else raw)
        text = json.dumps(self._rebase_json(document)).encode()
        if target is not None:
            with self.io.new_output(target).create(overwrite=False) as out:
                out.write(gzip.compress(text) if compressed else text)
        return TableMetadataUtil.parse_raw(text.decode())

    def _rebase_json(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self._rebase_json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._rebase_json(v) for v in value]
        if isinstance(value, str) and _files.under(value, self.source_warehouse):
            return self.rebase(value)
        return value

    def manifest_lists(self, tables: dict[str, Any]) -> int:
        """Rewrite every snapshot's manifest list (and, once each, its manifests)."""
        count = 0
        for table in tables.values():
            metadata = FromInputFile.table_metadata(
                self.local.new_input(self.files.path(table["metadata"]))
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
                    format_version=metadata.format_version,
                    output_file=out,
                    snapshot_id=snapshot.snapshot_id,
                    parent_snapshot_id=snapshot.parent_snapshot_id,
                    sequence_number=snapshot.sequence_number,
                    avro_compression=codec(source, self.local),
                ) as writer:
                    writer.add_manifests(manifests)
                count += 1
        return count + len(self.lengths)

    def _manifest(self, metadata: TableMetadata, manifest: ManifestFile) -> ManifestFile:
        path = manifest.manifest_path
        if path not in self.lengths:
            self.lengths[path] = self._write_manifest(metadata, manifest)
        moved = clone(manifest)
        set_field(moved, "manifest_path", self.rebase(path))
        set_field(moved, "manifest_length", self.lengths[path])
        return moved

    def _write_manifest(self, metadata: TableMetadata, manifest: ManifestFile) -> int:
        source = self.local_path(manifest.manifest_path)
        local = clone(manifest)
        set_field(local, "manifest_path", source)
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
                set_field(entry.data_file, "file_path", self.rebase(entry.data_file.file_path))
                writer.add_entry(entry)
        return len(self.io.new_input(target))


# Positions of the fields rebased in pyiceberg's records (their properties have no setters).
_POSITIONS = {"manifest_path": 0, "manifest_length": 1, "file_path": 1}


def clone(manifest: ManifestFile) -> ManifestFile:
    """A copy that does not share its fields with ``manifest`` (``copy.copy`` would)."""
    return ManifestFile(*(manifest[i] for i in range(len(manifest))))


def set_field(record: ManifestFile | DataFile, name: str, value: object) -> None:
    record[_POSITIONS[name]] = value
    if getattr(record, name) != value:  # a pyiceberg upgrade moved the field
        raise BackupError(f"cannot set {name} in pyiceberg's {type(record).__name__}")


def codec(path: str, io: FileIO) -> AvroCompressionCodec:
    with AvroFile[Any](io.new_input(path)) as reader:
        return cast(AvroCompressionCodec, reader.header.meta.get("avro.codec", "deflate"))
