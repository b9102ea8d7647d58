"""Removing many snapshots from a table's metadata in time linear in the history (nearly).

pyiceberg 0.12's ``ExpireSnapshots`` is quadratic in the history twice over: ``by_ids`` rebuilds
the transaction's metadata (a deep copy of every snapshot) once per id, and every commit
deep-copies the whole metadata about six times. Applying a ``RemoveSnapshotsUpdate``, pyiceberg
also looks each id up by a scan of the snapshot list from its start. :func:`remove_snapshots`
commits ``RemoveSnapshotsUpdate`` straight through the catalog, oldest snapshots first and
:data:`PER_COMMIT` to a commit, so each lookup stops within its chunk and each commit copies the
metadata once.
"""

from __future__ import annotations

from collections.abc import Iterable

from pyiceberg.table import Table
from pyiceberg.table.update import AssertTableUUID, RemoveSnapshotsUpdate

from lakehouse.exceptions import RefError

PER_COMMIT = 1000


def remove_snapshots(table: Table, snapshot_ids: Iterable[int]) -> None:
    """Remove ``snapshot_ids`` from ``table``'s metadata, oldest first, in chunked commits.

    Each commit is atomic; an interrupted removal leaves the rest in the metadata (callers
    delete files only once every chunk is committed). Files are not touched here.

    Raises:
        RefError: an id is the head of a branch or tag (move or remove the ref first), or is
            not a snapshot of the table.
    """
    wanted = set(snapshot_ids)
    if not wanted:
        return
    known = {s.snapshot_id: s for s in table.metadata.snapshots}
    missing = sorted(wanted - known.keys())
    if missing:
        raise RefError(f"{table.name()} has no snapshot(s) {missing[:5]}; refresh and retry")
    heads = {ref.snapshot_id: name for name, ref in table.metadata.refs.items()}
    held = sorted(heads[i] for i in wanted if i in heads)
    if held:
        raise RefError(
            f"cannot remove the snapshot(s) that {held} point at; move or remove the ref(s) first"
        )
    ordered = sorted(
        (known[i] for i in wanted), key=lambda s: (s.timestamp_ms, s.sequence_number or 0)
    )
    for start in range(0, len(ordered), PER_COMMIT):
        chunk = [s.snapshot_id for s in ordered[start : start + PER_COMMIT]]
        table.catalog.commit_table(
            table,
            (AssertTableUUID(uuid=table.metadata.table_uuid),),
            (RemoveSnapshotsUpdate.model_validate({"snapshot-ids": chunk}),),
        )
        table.refresh()
