"""The Qdrant index of ``topology_history``, one day at a time or rebuilt whole.

:func:`index_day`: the collection holds exactly the day's rows of ``topology_history``
afterwards (the day's points are deleted, from their cells too, then upserted);
:func:`rebuild_index` rebuilds the whole collection, and retrains its cells, from the table.
``qdrant_client`` is loaded only when an index is built (:mod:`lakehouse.topology.retrieval`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from lakehouse.core import Lakehouse
from lakehouse.topology.history import signature_of_row
from lakehouse.topology.tables import TOPOLOGY_HISTORY

if TYPE_CHECKING:  # retrieval imports qdrant_client, which this module loads only to index
    from lakehouse.topology.retrieval import Layout

__all__ = ["IndexReport", "index_day", "rebuild_index"]


@dataclass(frozen=True)
class IndexReport:
    """What :func:`index_day` did to the collection (``cells`` is 0 for a flat layout)."""

    day: date
    removed: int
    indexed: int
    points: int
    history_snapshot_id: int | None
    cells: int = 0


def _day_filter(day: date) -> Any:
    from qdrant_client import models

    return models.Filter(
        must=[models.FieldCondition(key="day", match=models.MatchValue(value=day.isoformat()))]
    )


def index_day(
    lh: Lakehouse,
    client: Any,
    day: date,
    *,
    branch: str | None = None,
    collection: str | None = None,
    layout: Layout = "auto",
) -> IndexReport:
    """Make the collection's points of ``day`` exactly the day's ``topology_history`` rows.

    The day's old points leave the collection of record and their cells; the new ones join the
    nearest cells, and the layout is retrained when due (:mod:`lakehouse.topology.retrieval`).
    """
    from lakehouse.topology.retrieval import (
        COLLECTION,
        ensure_collection,
        index_runs,
        layout_info,
        remove_runs,
    )

    collection = collection or COLLECTION
    branch = branch or lh.settings.branch
    snapshot_id = lh.head(TOPOLOGY_HISTORY.name, branch)
    rows = (
        lh.read(TOPOLOGY_HISTORY.name, day=day, snapshot_id=snapshot_id).to_pylist()
        if snapshot_id is not None
        else []
    )
    ensure_collection(client, collection)
    removed = remove_runs(client, _day_filter(day), collection)
    indexed = index_runs(
        client, ((r, signature_of_row(r)) for r in rows), collection=collection, layout=layout
    )
    points = client.count(collection, exact=True).count
    cells = layout_info(client, collection).cells
    return IndexReport(day, removed, indexed, points, snapshot_id, cells)


def rebuild_index(
    lh: Lakehouse,
    client: Any,
    *,
    branch: str | None = None,
    collection: str | None = None,
    layout: Layout = "auto",
) -> int:
    """Drop the collection and its cells, index every row of ``topology_history``; the points.

    The cell layout is trained afresh on the rebuilt collection when it is large enough.
    """
    from lakehouse.topology.retrieval import COLLECTION, drop_index, index_runs

    collection = collection or COLLECTION
    drop_index(client, collection)
    branch = branch or lh.settings.branch
    snapshot_id = lh.head(TOPOLOGY_HISTORY.name, branch)
    rows = (
        lh.read(TOPOLOGY_HISTORY.name, snapshot_id=snapshot_id).to_pylist()
        if snapshot_id is not None
        else []
    )
    return index_runs(
        client, ((r, signature_of_row(r)) for r in rows), collection=collection, layout=layout
    )
