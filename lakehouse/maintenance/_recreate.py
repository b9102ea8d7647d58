"""Restore into an Iceberg REST catalog: each table re-created from its backed-up metadata.

On a SQL catalog restore registers each table's metadata file (``register_table``). On a REST
catalog that cannot be relied on: SeaweedFS 4.48 answers a register with the metadata file's
content, then serves the table without its snapshots (a fresh uuid, no refs, no rows). So here
a table is created with the backup's first schema, its partition spec, sort order and properties,
then brought to the backed-up state by commits of the updates the REST protocol defines:

* later schemas (same ids) and the current schema;
* every snapshot, in sequence-number order, as backed up: ids, parents, sequence numbers,
  timestamps, summaries and manifest lists (whose files restore has written already);
* ``main`` set once per entry of its snapshot log, **one commit per entry**, so main's history
  (the snapshot log, which time travel reads, with the snapshots' own timestamps) is the
  backed-up one;
* the other branches and tags with their retention settings, and the statistics files.

Every commit asserts the new table's uuid. What differs from the source: the table uuid (the
server assigns it), the metadata log (older metadata files are not in a backup), the location
(the server chooses it) and the metadata file names. Tables with more than one partition spec or
sort order are refused before anything is written (:func:`problems`).
"""

from __future__ import annotations

from pyiceberg.catalog import Catalog
from pyiceberg.table import Table
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.refs import MAIN_BRANCH, SnapshotRefType
from pyiceberg.table.update import (
    AddSchemaUpdate,
    AddSnapshotUpdate,
    AssertTableUUID,
    SetCurrentSchemaUpdate,
    SetSnapshotRefUpdate,
    SetStatisticsUpdate,
    TableUpdate,
)

from lakehouse.maintenance._manifest import BackupError


def problems(name: str, metadata: TableMetadata) -> list[str]:
    """What in ``metadata`` re-creating the table through a REST catalog cannot reproduce."""
    found = []
    if len(metadata.partition_specs) > 1:
        found.append(f"{name} has {len(metadata.partition_specs)} partition specs")
    if len(metadata.sort_orders) > 1:
        found.append(f"{name} has {len(metadata.sort_orders)} sort orders")
    if metadata.partition_statistics:
        found.append(f"{name} has partition statistics files")
    ids = sorted(s.schema_id for s in metadata.schemas)
    if ids != list(range(ids[0], ids[0] + len(ids))):
        found.append(f"{name}'s schema ids {ids} are not consecutive")
    return found


def recreate(catalog: Catalog, identifier: tuple[str, str], metadata: TableMetadata) -> Table:
    """Create ``identifier`` in ``catalog`` and commit ``metadata``'s schemas, snapshots and refs.

    Raises:
        BackupError: the catalog numbered the first schema's fields differently.
    """
    schemas = sorted(metadata.schemas, key=lambda s: s.schema_id)
    properties = {**metadata.properties, "format-version": str(metadata.format_version)}
    table = catalog.create_table(
        identifier,
        schema=schemas[0],
        partition_spec=metadata.spec(),
        sort_order=metadata.sort_order(),
        properties=properties,
    )
    if table.schema().as_struct() != schemas[0].as_struct() or (
        table.spec().fields != metadata.spec().fields
    ):
        raise BackupError(
            f"the REST catalog numbered the fields of {'.'.join(identifier)} differently from the "
            "backup, so its data files could not be read; restore it into a SQL catalog"
        )
    uuid = (AssertTableUUID(uuid=table.metadata.table_uuid),)
    first: list[TableUpdate] = [AddSchemaUpdate(schema=s) for s in schemas[1:]]
    if metadata.current_schema_id != schemas[0].schema_id:
        first.append(
            SetCurrentSchemaUpdate.model_validate({"schema-id": metadata.current_schema_id})
        )
    if first:
        catalog.commit_table(table, uuid, tuple(first))

    pending = sorted(metadata.snapshots, key=lambda s: (s.sequence_number or 0, s.timestamp_ms))
    main = None
    for entry in metadata.snapshot_log:
        snapshot = metadata.snapshot_by_id(entry.snapshot_id)
        if snapshot is None:
            continue  # expired: the log still names it, the metadata no longer holds it
        upto = snapshot.sequence_number or 0
        added = [s for s in pending if (s.sequence_number or 0) <= upto]
        if snapshot not in added:
            added.append(snapshot)
        pending = [s for s in pending if s not in added]
        updates: list[TableUpdate] = [AddSnapshotUpdate(snapshot=s) for s in added]
        updates.append(_ref(MAIN_BRANCH, metadata, snapshot.snapshot_id))
        catalog.commit_table(table, uuid, tuple(updates))
        main = snapshot.snapshot_id

    last: list[TableUpdate] = [AddSnapshotUpdate(snapshot=s) for s in pending]
    for name in sorted(metadata.refs):
        if name != MAIN_BRANCH or metadata.refs[name].snapshot_id != main:
            last.append(_ref(name, metadata))
    last += [
        SetStatisticsUpdate.model_validate({"statistics": s, "snapshot-id": s.snapshot_id})
        for s in metadata.statistics
    ]
    if last:
        catalog.commit_table(table, uuid, tuple(last))
    return catalog.load_table(identifier)


def _ref(name: str, metadata: TableMetadata, snapshot_id: int | None = None) -> TableUpdate:
    """Set ``name`` as the backup has it (to ``snapshot_id`` when given: main's history)."""
    ref = metadata.refs.get(name)
    if ref is None and snapshot_id is None:
        raise BackupError(f"the backup's metadata has no ref {name!r}")
    return SetSnapshotRefUpdate.model_validate(
        {
            "ref-name": name,
            "type": ref.snapshot_ref_type if ref else SnapshotRefType.BRANCH,
            "snapshot-id": snapshot_id if snapshot_id is not None else ref and ref.snapshot_id,
            "max-ref-age-ms": ref and ref.max_ref_age_ms,
            "max-snapshot-age-ms": ref and ref.max_snapshot_age_ms,
            "min-snapshots-to-keep": ref and ref.min_snapshots_to_keep,
        }
    )
