"""The router's training set: days of ``routing_decisions`` turned into ``router_training_set``.

:func:`build_training_set` writes one audited day-partition overwrite per day, so re-running a
day changes nothing; :func:`read_training` reads days of it at one snapshot, whose id a trained
model records.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.exceptions import ValidationError
from lakehouse.publish.wap import Audit, WapResult, write_audit_publish
from lakehouse.router.features import training_set
from lakehouse.table.writer import Lineage

if TYPE_CHECKING:
    from lakehouse.core import Lakehouse

DECISIONS = "routing_decisions"
TRAINING = "router_training_set"


def training_day(lh: Lakehouse, day: date, branch: str | None = None) -> pa.Table:
    """Training-set rows for one day of ``routing_decisions`` (at the head of ``branch``)."""
    return training_set(lh.read(DECISIONS, day=day, branch=branch))


def build_training_set(
    lh: Lakehouse, days: Sequence[date], *, audit: Audit, lineage: Lineage | None = None
) -> list[WapResult]:
    """Write ``router_training_set`` for ``days``, one audited day overwrite each (idempotent)."""
    return [
        write_audit_publish(
            lh, TRAINING, training_day(lh, day), audit=audit, day=day, lineage=lineage
        )
        for day in days
    ]


def read_training(
    lh: Lakehouse, days: Sequence[date], branch: str | None = None
) -> tuple[pa.Table, int]:
    """Training-set rows of ``days`` read at one snapshot, and that snapshot's id.

    Raises:
        ValidationError: the training set is empty (materialise router_training_set first).
    """
    snapshot = lh.head(TRAINING, branch)
    if snapshot is None or not days:
        raise ValidationError(
            "router_training_set is empty; build it first (`aura router train` does, or "
            "materialise the router_training_set asset for the days)"
        )
    wanted = sorted(set(days))
    start = datetime(wanted[0].year, wanted[0].month, wanted[0].day, tzinfo=UTC)
    end = datetime(wanted[-1].year, wanted[-1].month, wanted[-1].day, tzinfo=UTC)
    rows = lh.read(TRAINING, window=(start, end + timedelta(days=1)), snapshot_id=snapshot)
    day_of = pc.cast(pc.floor_temporal(rows.column("ts"), unit="day"), pa.timestamp("us", "UTC"))
    keep = pc.is_in(
        day_of, pa.array([datetime.combine(d, datetime.min.time(), UTC) for d in wanted])
    )
    rows = rows.filter(keep).sort_by([("ts", "ascending"), ("decision_id", "ascending")])
    return rows, snapshot


def training_days(lh: Lakehouse, table: str = TRAINING) -> list[date]:
    """The days present in ``router_training_set`` (or ``table``) on the lakehouse's branch."""
    rows = lh.read(table).select(["ts"])
    if rows.num_rows == 0:
        return []
    days = pc.unique(pc.floor_temporal(rows.column("ts"), unit="day")).to_pylist()
    return sorted({d.date() for d in days})


def split_days(
    lh: Lakehouse, train_days: int = 3, heldout_days: int = 1
) -> tuple[list[date], list[date]]:
    """The latest ``heldout_days`` days for evaluation and the ``train_days`` before them.

    Raises:
        ValidationError: the training set has fewer days than that.
    """
    days = training_days(lh)
    if len(days) < train_days + heldout_days:
        raise ValidationError(
            f"router_training_set has {len(days)} day(s); training on {train_days} and holding "
            f"out {heldout_days} needs {train_days + heldout_days}: build more days first"
        )
    cut = len(days) - heldout_days
    return days[cut - train_days : cut], days[cut:]
