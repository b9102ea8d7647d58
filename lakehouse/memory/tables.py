"""Iceberg contracts of the memory domain: the cold tier, its event log and dead letters.

Content and metadata columns are written without column statistics
(``write.metadata.metrics.column.<name> = none``, see :data:`NO_STATS_COLUMNS`): Iceberg
manifests would otherwise keep a prefix of the text as lower/upper bounds, and an erase that
rewrites the data files would still leave those bytes in manifests.

``memories`` is written sorted by ``memory_id`` in row groups of :data:`ROW_GROUP_ROWS` rows, so
the cold tier reads a memory by id from the one row group whose ``memory_id`` statistics hold
it (:mod:`lakehouse.memory.coldrows`), not by scanning its day.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyiceberg.schema import Schema
from pyiceberg.types import DoubleType, FloatType, ListType, StringType, TimestamptzType

from lakehouse.ingest.streams import rejected_table_spec
from lakehouse.table.expectations import in_set, not_null, unique
from lakehouse.table.registry import TableSpec, column, ensure_properties, register

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from lakehouse.core import Lakehouse

MEMORIES = register(
    TableSpec(
        name="memories",
        schema=Schema(
            column(1, "memory_id", StringType(), doc="Memory id (a UUID)"),
            column(2, "tenant_id", StringType()),
            column(3, "content", StringType()),
            column(4, "metadata", StringType(), required=False, doc="JSON object"),
            column(5, "vector", ListType(13, FloatType(), element_required=True)),
            column(6, "importance", DoubleType(), doc="Importance in [0, 1]"),
            column(7, "created_at", TimestamptzType()),
            column(8, "expires_at", TimestamptzType(), required=False, doc="Hard TTL"),
            column(9, "last_access", TimestamptzType(), required=False),
            column(10, "signature", StringType(), required=False, doc="Topology signature"),
            column(11, "archived_at", TimestamptzType(), required=False),
        ),
        time_column="created_at",
        key=("memory_id",),
        description="Cold memory tier: memories moved out of the warm tier (Qdrant)",
        sort_by=("memory_id",),
    )
)

MEMORY_EVENTS = register(
    TableSpec(
        name="memory_events",
        schema=Schema(
            column(1, "event_id", StringType()),
            column(2, "ts", TimestamptzType()),
            column(3, "tenant_id", StringType()),
            column(4, "op", StringType(), doc="store | forget | forget_tenant"),
            column(5, "memory_id", StringType(), required=False),
            column(6, "content", StringType(), required=False),
            column(7, "metadata", StringType(), required=False, doc="JSON object"),
            column(8, "importance", DoubleType(), required=False),
            column(9, "expires_at", TimestamptzType(), required=False),
            column(10, "signature", StringType(), required=False),
            column(11, "stream_id", StringType(), required=False),
            column(12, "ingested_at", TimestamptzType(), required=False),
        ),
        time_column="ts",
        key=("event_id",),
        description="Every memory write, from the aura:events:memory stream, exactly once",
        expectations=(
            not_null("event_id"),
            unique("event_id"),
            not_null("ts"),
            not_null("tenant_id"),
            in_set("op", ("store", "forget", "forget_tenant")),
        ),
    )
)

MEMORY_EVENTS_REJECTED = register(
    rejected_table_spec(
        "memory_events_rejected",
        "Dead letters: memory events that failed validation, with the reason",
    )
)

ROW_GROUP_ROWS = 1024
"""Rows per Parquet row group of ``memories``: what one lookup by id reads (without vectors)."""

MEMORY_TABLES = (MEMORIES, MEMORY_EVENTS, MEMORY_EVENTS_REJECTED)

# Columns that may hold memory text: no min/max statistics in manifests (see module docstring).
NO_STATS_COLUMNS = {
    MEMORIES.name: ("content", "metadata", "signature"),
    MEMORY_EVENTS.name: ("content", "metadata", "signature"),
    MEMORY_EVENTS_REJECTED.name: ("raw",),
}


def memory_table(lh: Lakehouse, name: str) -> Table:
    """A memory table, created on first use with its text columns kept out of manifest stats.

    Every write path calls this (or :func:`ensure_tables`) before writing, so no manifest of a
    memory table ever carries a text bound.
    """
    table = lh.table(name)
    wanted = {f"write.metadata.metrics.column.{c}": "none" for c in NO_STATS_COLUMNS[name]}
    if name == MEMORIES.name:
        wanted["write.parquet.row-group-limit"] = str(ROW_GROUP_ROWS)
    return ensure_properties(table, wanted)


def ensure_tables(lh: Lakehouse) -> None:
    """Create every memory table with its properties (before any write)."""
    for spec in MEMORY_TABLES:
        memory_table(lh, spec.name)
