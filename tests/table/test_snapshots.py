"""remove_snapshots: chunked removal of many snapshots (real Iceberg metadata)."""

from __future__ import annotations

import pytest
from helpers import DAY, decisions

from lakehouse import Lakehouse
from lakehouse.exceptions import RefError
from lakehouse.routing import ROUTING_DECISIONS
from lakehouse.table import snapshots


def test_old_snapshots_go_in_chunks_and_ref_heads_are_refused(
    lakehouse: Lakehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshots, "PER_COMMIT", 2)  # several commits for five snapshots
    for n in range(6):
        lakehouse.append(ROUTING_DECISIONS.name, decisions(1, start=n))
    table = lakehouse.table(ROUTING_DECISIONS.name)
    ids = [s.snapshot_id for s in table.metadata.snapshots]
    head = table.metadata.current_snapshot_id

    with pytest.raises(RefError, match="main"):
        snapshots.remove_snapshots(table, [ids[0], head])
    assert [s.snapshot_id for s in table.metadata.snapshots] == ids  # nothing removed

    snapshots.remove_snapshots(table, ids[:-1])
    table = lakehouse.table(ROUTING_DECISIONS.name)
    assert [s.snapshot_id for s in table.metadata.snapshots] == [head]
    assert lakehouse.read(ROUTING_DECISIONS.name, day=DAY.date()).num_rows == 6
