"""Validation results and their history: one row per expectation in ``aura.quality_results``.

``aura.quality_results`` is a bookkeeping table (its spec is the library's,
:data:`lakehouse.table.bookkeeping.QUALITY_RESULTS`): it is written on main whatever branch was
validated (the ``branch`` and ``snapshot_id`` columns say what was), and experiments never
branch it. Query it like any aura table, e.g. with ``aura sql``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakehouse.settings import MAIN_BRANCH
from lakehouse.table.bookkeeping import QUALITY_RESULTS
from lakehouse.table.writer import Lineage, WriteResult

if TYPE_CHECKING:
    from lakehouse import Lakehouse

__all__ = ["QUALITY_RESULTS", "Outcome", "QualityResult", "record", "to_rows"]


@dataclass(frozen=True)
class Outcome:
    """The outcome of one expectation."""

    name: str
    expectation_type: str
    description: str
    columns: tuple[str, ...]
    kwargs: dict[str, Any]
    success: bool
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    unexpected_sample: list[Any] = field(default_factory=list)

    def describe(self) -> str:
        """e.g. ``quality_score in [0, 1]: 3 unexpected (1.5%), e.g. [1.7, -0.2]``."""
        if self.success:
            return f"{self.description}: ok"
        text = f"{self.description}: failed"
        if self.unexpected_count is not None:
            text += f", {self.unexpected_count} unexpected"
            if self.unexpected_percent is not None:
                text += f" ({self.unexpected_percent:.3g}%)"
        if self.unexpected_sample:
            text += f", e.g. {self.unexpected_sample[:5]}"
        return text


@dataclass(frozen=True)
class QualityResult:
    """A suite's validation of some data of one table."""

    table: str
    suite: str
    success: bool
    rows: int
    outcomes: tuple[Outcome, ...]
    validation_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    validated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    branch: str | None = None
    snapshot_id: int | None = None
    run_id: str | None = None
    partition: str | None = None

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.success]

    def summary(self) -> str:
        """One line: the table, what was validated and the failed expectations."""
        where = f"{self.table}@{self.branch or self.snapshot_id or 'data'}"
        if self.success:
            return f"{where}: {len(self.outcomes)} expectations passed on {self.rows} rows"
        failed = "; ".join(o.describe() for o in self.failures)
        return (
            f"{where}: {len(self.failures)} of {len(self.outcomes)} expectations failed: {failed}"
        )


def to_rows(result: QualityResult) -> pa.Table:
    """The result as ``quality_results`` rows."""
    rows = [
        {
            "validation_id": result.validation_id,
            "validated_at": result.validated_at,
            "table_name": result.table,
            "suite": result.suite,
            "branch": result.branch,
            "snapshot_id": result.snapshot_id,
            "run_id": result.run_id,
            "partition": result.partition,
            "rows": result.rows,
            "success": result.success,
            "expectation_index": i,
            "expectation": o.name,
            "expectation_type": o.expectation_type,
            "columns": ",".join(o.columns) or None,
            "kwargs": json.dumps(o.kwargs, sort_keys=True, default=str),
            "expectation_success": o.success,
            "unexpected_count": o.unexpected_count,
            "unexpected_percent": o.unexpected_percent,
            "unexpected_sample": json.dumps(o.unexpected_sample, default=str),
        }
        for i, o in enumerate(result.outcomes)
    ]
    return pa.Table.from_pylist(rows, schema=QUALITY_RESULTS.arrow_schema)


def record(lh: Lakehouse, result: QualityResult) -> WriteResult:
    """Append ``result`` to ``aura.quality_results`` (always on main)."""
    lineage = Lineage(asset="quality_results", partition=result.partition, run_id=result.run_id)
    return lh.append(QUALITY_RESULTS.name, to_rows(result), lineage=lineage, branch=MAIN_BRANCH)
