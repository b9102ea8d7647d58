"""Removing many snapshots from a table's metadata in time linear in the history.

pyiceberg 0.12's ``ExpireSnapshots`` is quadratic in the history several times over: ``by_ids``
rebuilds the transaction's metadata (a deep copy of every snapshot) once per id, every commit
deep-copies the whole metadata about six times, and its handler of ``RemoveSnapshotsUpdate``
looks each id up by a scan of the snapshot list and tests every snapshot against the list of
ids. Chunked commits trade one quadratic term for the other (about n^1.5 at best).

:func:`remove_snapshots` commits one :class:`RemoveSnapshots` update for every id. It is a
``RemoveSnapshotsUpdate`` (the same wire format, so a REST catalog applies it as the spec
says) whose local application, registered on pyiceberg's update dispatcher, uses sets: one
pass over the snapshots, the snapshot log, the refs and the statistics. The commit is atomic:
every id goes, or none.
"""

from __future__ import annotations

from collections.abc import Iterable

from pyiceberg.table import Table
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.update import (
    AssertTableUUID,
    RemoveSnapshotRefUpdate,
    RemoveSnapshotsUpdate,
    RemoveStatisticsUpdate,
    _apply_table_update,
    _TableMetadataUpdateContext,
)

from lakehouse.exceptions import RefError


class RemoveSnapshots(RemoveSnapshotsUpdate):
    """``RemoveSnapshotsUpdate`` applied in one pass (see the module's docstring)."""


@_apply_table_update.register(RemoveSnapshots)
def _apply_remove_snapshots(
    update: RemoveSnapshots, base_metadata: TableMetadata, context: _TableMetadataUpdateContext
) -> TableMetadata:
    """What pyiceberg's handler of ``RemoveSnapshotsUpdate`` does, with set lookups."""
    gone = set(update.snapshot_ids)
    missing = gone - {s.snapshot_id for s in base_metadata.snapshots}
    if missing:
        raise ValueError(f"Snapshot(s) with snapshot id {sorted(missing)[:5]} do not exist")
    snapshots = [
        s.model_copy(update={"parent_snapshot_id": None}) if s.parent_snapshot_id in gone else s
        for s in base_metadata.snapshots
        if s.snapshot_id not in gone
    ]
    snapshot_log = [e for e in base_metadata.snapshot_log if e.snapshot_id not in gone]
    new_metadata = base_metadata
    for name, ref in base_metadata.refs.items():
        if ref.snapshot_id in gone:
            new_metadata = _apply_table_update(
                RemoveSnapshotRefUpdate.model_validate({"ref-name": name}), new_metadata, context
            )
    for statistics in base_metadata.statistics:
        if statistics.snapshot_id in gone:
            new_metadata = _apply_table_update(
                RemoveStatisticsUpdate.model_validate({"snapshot-id": statistics.snapshot_id}),
                new_metadata,
                context,
            )
    context.add_update(update)
    return new_metadata.model_copy(update={"snapshots": snapshots, "snapshot_log": snapshot_log})


def remove_snapshots(table: Table, snapshot_ids: Iterable[int]) -> None:
    """Remove ``snapshot_ids`` from ``table``'s metadata in one atomic commit.

    Files are not touched here (callers delete them once the commit holds).

    Raises:
        RefError: an id is the head of a branch or tag (move or remove the ref first), or is
            not a snapshot of the table.
    """
    wanted = set(snapshot_ids)
    if not wanted:
        return
    missing = sorted(wanted - {s.snapshot_id for s in table.metadata.snapshots})
    if missing:
        raise RefError(f"{table.name()} has no snapshot(s) {missing[:5]}; refresh and retry")
    heads = {ref.snapshot_id: name for name, ref in table.metadata.refs.items()}
    held = sorted(heads[i] for i in wanted if i in heads)
    if held:
        raise RefError(
            f"cannot remove the snapshot(s) that {held} point at; move or remove the ref(s) first"
        )
    table.catalog.commit_table(
        table,
        (AssertTableUUID(uuid=table.metadata.table_uuid),),
        (RemoveSnapshots.model_validate({"snapshot-ids": sorted(wanted)}),),
    )
    table.refresh()
