"""The library's bookkeeping tables: they record what happens on every branch.

``aura.experiments`` holds the events of experiment branches and ``aura.quality_results`` the
outcome of every audit, one row per expectation. Both are written on main whatever branch the
event concerns (their columns say which), so experiments never branch them and releases never
tag them (``bookkeeping=True``). ``quality/`` fills ``quality_results``; the spec lives here so
that the library never imports ``quality``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa
from pyiceberg.schema import Schema
from pyiceberg.types import BooleanType, DoubleType, LongType, StringType, TimestamptzType

from lakehouse.table.registry import TableSpec, column, register

EXPERIMENTS = register(
    TableSpec(
        name="experiments",
        schema=Schema(
            column(1, "experiment", StringType()),
            column(2, "event", StringType(), doc="created/published/dropped"),
            column(3, "event_at", TimestamptzType()),
            column(
                4,
                "tables",
                StringType(),
                doc="JSON {table: snapshot id}: the bases when created, the heads published",
            ),
            column(5, "tag", StringType(), required=False, doc="Tag of published snapshots"),
            column(6, "run_id", StringType(), required=False),
            column(7, "description", StringType(), required=False),
        ),
        time_column="event_at",
        key=("experiment", "event", "event_at"),
        description="Experiment branches across all aura tables: created, published, dropped",
        bookkeeping=True,
        tenant_private=("description",),  # free text
    )
)

QUALITY_RESULTS = register(
    TableSpec(
        name="quality_results",
        schema=Schema(
            column(1, "validation_id", StringType()),
            column(2, "validated_at", TimestamptzType()),
            column(3, "table_name", StringType()),
            column(4, "suite", StringType()),
            column(5, "branch", StringType(), required=False),
            column(6, "snapshot_id", LongType(), required=False),
            column(7, "run_id", StringType(), required=False),
            column(8, "partition", StringType(), required=False),
            column(9, "rows", LongType(), doc="Rows validated"),
            column(10, "success", BooleanType(), doc="The whole suite passed"),
            column(11, "expectation_index", LongType()),
            column(12, "expectation", StringType(), doc="e.g. cost_in_range"),
            column(13, "expectation_type", StringType()),
            column(14, "columns", StringType(), required=False),
            column(15, "kwargs", StringType(), required=False, doc="JSON arguments"),
            column(16, "expectation_success", BooleanType()),
            column(17, "unexpected_count", LongType(), required=False),
            column(18, "unexpected_percent", DoubleType(), required=False),
            column(19, "unexpected_sample", StringType(), required=False, doc="JSON list"),
        ),
        time_column="validated_at",
        key=("validation_id", "expectation_index"),
        description="Great-expectations validations of aura tables, one row per expectation",
        bookkeeping=True,
        tenant_private=("kwargs", "unexpected_sample"),  # values taken from any tenant's rows
    )
)


def experiment_event(
    name: str,
    event: str,
    tables: dict[str, int],
    *,
    tag: str | None = None,
    run_id: str | None = None,
    description: str | None = None,
) -> pa.Table:
    """One row of ``aura.experiments``: an experiment was created, published or dropped."""
    row = {
        "experiment": [name],
        "event": [event],
        "event_at": [datetime.now(UTC)],
        "tables": [json.dumps(tables, sort_keys=True)],
        "tag": [tag],
        "run_id": [run_id],
        "description": [description],
    }
    return pa.Table.from_pydict(row, schema=EXPERIMENTS.arrow_schema)
