"""The vector index of ``topology_history``, one day at a time or rebuilt whole.

:func:`index_day`: the collection holds exactly the day's rows of ``topology_history``
afterwards (the day's points are deleted, then upserted); :func:`rebuild_index` empties the
collection and indexes the whole table. Both take the runs' :class:`~lakehouse.vectors.VectorStore`
(:func:`lakehouse.topology.retrieval.open_index`; a ``QdrantClient`` is accepted too). Only
:func:`rebuild_index` and the ``topology_index`` asset run ``optimize()`` (it builds the HNSW
graph and blocks for minutes on a large index); see :mod:`lakehouse.topology.retrieval`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from lakehouse.core import Lakehouse
from lakehouse.topology.history import signature_of_row
from lakehouse.topology.retrieval import as_index, index_runs, remove_runs
from lakehouse.topology.tables import TOPOLOGY_HISTORY

if TYPE_CHECKING:
    from lakehouse.topology.retrieval import Index

__all__ = ["IndexReport", "index_day", "rebuild_index"]


@dataclass(frozen=True)
class IndexReport:
    """What :func:`index_day` did to the collection."""

    day: date
    removed: int
    indexed: int
    points: int
    history_snapshot_id: int | None


def _day_filter(day: date) -> Any:
    from qdrant_client import models

    return models.Filter(
        must=[models.FieldCondition(key="day", match=models.MatchValue(value=day.isoformat()))]
    )


def _history_rows(lh: Lakehouse, branch: str | None, day: date | None) -> tuple[list, int | None]:
    """The rows of ``topology_history`` (of ``day``) at the head of ``branch``, and that head."""
    snapshot_id = lh.head(TOPOLOGY_HISTORY.name, branch or lh.settings.branch)
    if snapshot_id is None:
        return [], None
    return lh.read(TOPOLOGY_HISTORY.name, day=day, snapshot_id=snapshot_id).to_pylist(), snapshot_id


def index_day(lh: Lakehouse, store: Index, day: date, *, branch: str | None = None) -> IndexReport:
    """Make the collection's points of ``day`` exactly the day's ``topology_history`` rows."""
    index = as_index(store)
    rows, snapshot_id = _history_rows(lh, branch, day)
    removed = remove_runs(index, _day_filter(day))
    indexed = index_runs(index, ((r, signature_of_row(r)) for r in rows))
    return IndexReport(day, removed, indexed, index.count(), snapshot_id)


def rebuild_index(lh: Lakehouse, store: Index, *, branch: str | None = None) -> int:
    """Empty the collection, index every row of ``topology_history``, optimize; the points."""
    from qdrant_client import models

    index = as_index(store)
    remove_runs(index, models.Filter())  # an empty filter matches every point
    rows, _ = _history_rows(lh, branch, None)
    points = index_runs(index, ((r, signature_of_row(r)) for r in rows))
    index.optimize()
    return points
