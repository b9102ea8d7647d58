"""The validation history: every validation's outcome, one row per expectation, in Iceberg.

``aura.quality_results`` is a bookkeeping table: it is written on main whatever branch was
validated (the ``branch`` and ``snapshot_id`` columns say what was), and experiments never
branch it. Query it like any aura table, e.g. with ``aura sql``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pyarrow as pa
from pyiceberg.schema import Schema
from pyiceberg.types import (
    BooleanType,
    DoubleType,
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)

from lakehouse.experiments import mark_bookkeeping
from lakehouse.settings import MAIN_BRANCH
from lakehouse.tables import TableSpec, register
from lakehouse.writer import Lineage, WriteResult

if TYPE_CHECKING:
    from lakehouse import Lakehouse
    from quality.validate import QualityResult

QUALITY_RESULTS = register(
    TableSpec(
        name="quality_results",
        schema=Schema(
            NestedField(1, "validation_id", StringType(), required=True),
            NestedField(2, "validated_at", TimestamptzType(), required=True),
            NestedField(3, "table_name", StringType(), required=True),
            NestedField(4, "suite", StringType(), required=True),
            NestedField(5, "branch", StringType(), required=False),
            NestedField(6, "snapshot_id", LongType(), required=False),
            NestedField(7, "run_id", StringType(), required=False),
            NestedField(8, "partition", StringType(), required=False),
            NestedField(9, "rows", LongType(), required=True, doc="Rows validated"),
            NestedField(10, "success", BooleanType(), required=True, doc="The whole suite passed"),
            NestedField(11, "expectation_index", LongType(), required=True),
            NestedField(12, "expectation", StringType(), required=True, doc="e.g. cost_in_range"),
            NestedField(13, "expectation_type", StringType(), required=True),
            NestedField(14, "columns", StringType(), required=False),
            NestedField(15, "kwargs", StringType(), required=False, doc="JSON arguments"),
            NestedField(16, "expectation_success", BooleanType(), required=True),
            NestedField(17, "unexpected_count", LongType(), required=False),
            NestedField(18, "unexpected_percent", DoubleType(), required=False),
            NestedField(19, "unexpected_sample", StringType(), required=False, doc="JSON list"),
        ),
        time_column="validated_at",
        key=("validation_id", "expectation_index"),
        description="Great-expectations validations of aura tables, one row per expectation",
    )
)
mark_bookkeeping(QUALITY_RESULTS.name)


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
