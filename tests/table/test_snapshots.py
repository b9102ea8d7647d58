"""remove_snapshots: one commit removes many snapshots (real Iceberg metadata)."""

from __future__ import annotations

import pytest
from helpers import DAY, decisions
from pyiceberg.table.update import (
    RemoveSnapshotsUpdate,
    _apply_table_update,
    update_table_metadata,
)

from lakehouse import Lakehouse
from lakehouse.exceptions import RefError
from lakehouse.routing import ROUTING_DECISIONS
from lakehouse.table import snapshots


def test_old_snapshots_go_in_one_commit_and_ref_heads_are_refused(lakehouse: Lakehouse) -> None:
    for n in range(6):
        lakehouse.append(ROUTING_DECISIONS.name, decisions(1, start=n))
    table = lakehouse.table(ROUTING_DECISIONS.name)
    ids = [s.snapshot_id for s in table.metadata.snapshots]
    head = table.metadata.current_snapshot_id
    log_length = len(table.metadata.metadata_log)

    with pytest.raises(RefError, match="main"):
        snapshots.remove_snapshots(table, [ids[0], head])
    with pytest.raises(RefError, match="no snapshot"):
        snapshots.remove_snapshots(table, [ids[0], 12345])
    assert [s.snapshot_id for s in table.metadata.snapshots] == ids  # nothing removed

    snapshots.remove_snapshots(table, ids[:-1])
    table = lakehouse.table(ROUTING_DECISIONS.name)
    assert [s.snapshot_id for s in table.metadata.snapshots] == [head]
    # (the survivor's parent id: cleared by pyiceberg's local application, kept by a REST
    # server such as SeaweedFS; the test below checks the local one against pyiceberg's)
    assert [e.snapshot_id for e in table.metadata.snapshot_log] == [head]
    assert len(table.metadata.metadata_log) == log_length + 1  # one commit
    assert lakehouse.read(ROUTING_DECISIONS.name, day=DAY.date()).num_rows == 6


def test_the_one_pass_removal_gives_the_metadata_pyiceberg_gives(lakehouse: Lakehouse) -> None:
    for n in range(5):
        lakehouse.append(ROUTING_DECISIONS.name, decisions(1, start=n))
    table = lakehouse.table(ROUTING_DECISIONS.name)
    ids = [s.snapshot_id for s in table.metadata.snapshots]
    table.manage_snapshots().create_tag(ids[3], "kept").commit()
    gone = [ids[0], ids[2]]  # the survivors ids[1] and ids[3] lose their parents

    ours = update_table_metadata(
        table.metadata, (snapshots.RemoveSnapshots.model_validate({"snapshot-ids": gone}),)
    )
    theirs = update_table_metadata(
        table.metadata, (RemoveSnapshotsUpdate.model_validate({"snapshot-ids": gone}),)
    )
    assert _apply_table_update.dispatch(snapshots.RemoveSnapshots) is not (
        _apply_table_update.dispatch(RemoveSnapshotsUpdate)
    )
    assert ours.snapshots == theirs.snapshots
    assert [s.parent_snapshot_id for s in ours.snapshots] == [None, None, ids[3]]
    assert ours.snapshot_log == theirs.snapshot_log
    assert ours.refs == theirs.refs
    assert ours.statistics == theirs.statistics
