"""Registry of the aura tables: explicit Iceberg schemas and day partition specs.

Every table lives in namespace ``aura``, is partitioned by the day of its event-time column and
declares the key that identifies a row (used to deduplicate replays). Other modules add their
tables with :func:`register`; the registry is the single source of truth for their contracts.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema, assign_fresh_schema_ids
from pyiceberg.table import Table
from pyiceberg.transforms import DayTransform
from pyiceberg.types import (
    BooleanType,
    DoubleType,
    ListType,
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)

from lakehouse.exceptions import SchemaEvolutionError, UnknownTableError
from lakehouse.settings import NAMESPACE


@dataclass(frozen=True)
class TableSpec:
    """Contract of one aura table."""

    name: str
    schema: Schema
    time_column: str
    key: tuple[str, ...]
    description: str

    @property
    def identifier(self) -> tuple[str, str]:
        return (NAMESPACE, self.name)

    @property
    def partition_spec(self) -> PartitionSpec:
        source = self.schema.find_field(self.time_column)
        return PartitionSpec(
            PartitionField(
                source_id=source.field_id,
                field_id=1000,
                transform=DayTransform(),
                name=f"{self.time_column}_day",
            )
        )

    @property
    def arrow_schema(self) -> pa.Schema:
        return self.schema.as_arrow()


_REGISTRY: dict[str, TableSpec] = {}

TABLE_PROPERTIES = {
    "write.parquet.compression-codec": "zstd",
    # AURA's writer owns the retry policy: pyiceberg's own retry would silently rebase a commit
    # on a head its data was never merged with (lakehouse.writer retries where that is safe).
    "commit.retry.num-retries": "0",
}


def register(spec: TableSpec) -> TableSpec:
    """Add a table to the registry (idempotent for an identical spec).

    Field ids are renumbered the way the catalog assigns them on creation, so Arrow data built
    from ``spec.arrow_schema`` matches the table's own schema id for id.
    """
    spec = replace(spec, schema=assign_fresh_schema_ids(spec.schema))
    existing = _REGISTRY.get(spec.name)
    if existing is not None and existing != spec:
        raise ValueError(f"table {spec.name!r} is already registered with another spec")
    _REGISTRY[spec.name] = spec
    return spec


# Modules that register tables of their own domain; imported on the first registry lookup so
# that `import lakehouse` stays light (the checkpoint archive pulls in LangGraph).
DOMAIN_MODULES = ("lakehouse.checkpoints.archive", "lakehouse.experiments", "quality.results")


@functools.cache
def _load_domains() -> None:
    for module in DOMAIN_MODULES:
        importlib.import_module(module)


def spec_for(name: str) -> TableSpec:
    """The spec of a registered table; ``aura.`` prefixes are accepted."""
    short = name.removeprefix(f"{NAMESPACE}.")
    if short not in _REGISTRY:
        _load_domains()
    try:
        return _REGISTRY[short]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownTableError(f"unknown table {name!r}; aura tables are: {known}") from None


def all_specs() -> Iterator[TableSpec]:
    _load_domains()
    yield from (_REGISTRY[name] for name in sorted(_REGISTRY))


def ensure_table(catalog: Catalog, spec: TableSpec) -> Table:
    """Load the table, creating it or adding new spec columns (additive evolution only)."""
    try:
        table = catalog.load_table(spec.identifier)
    except NoSuchTableError:
        return catalog.create_table_if_not_exists(
            spec.identifier,
            schema=spec.schema,
            partition_spec=spec.partition_spec,
            properties={**TABLE_PROPERTIES, "comment": spec.description},
        )
    stale = {k: v for k, v in TABLE_PROPERTIES.items() if table.properties.get(k) != v}
    if stale:
        with table.transaction() as tx:
            tx.set_properties(stale)
    missing = [f for f in spec.schema.fields if f.name not in table.schema().column_names]
    if missing:
        evolve_schema(table, pa.schema([spec.arrow_schema.field(f.name) for f in missing]))
    return table


def evolve_schema(table: Table, new_columns: pa.Schema) -> None:
    """Add ``new_columns`` (optional) to ``table``; refuses anything that is not additive."""
    current = table.schema()
    clashes = [f.name for f in new_columns if f.name in current.column_names]
    if clashes:
        raise SchemaEvolutionError(
            f"columns {clashes} already exist in {table.name()}; only new columns can be added. "
            "Rename the column or migrate the table explicitly."
        )
    with table.update_schema() as update:
        update.union_by_name(new_columns)  # pyiceberg adds new columns as optional


def column(
    field_id: int, name: str, field_type: object, required: bool = True, doc: str = ""
) -> NestedField:
    """One schema field; columns are required unless said otherwise."""
    return NestedField(field_id, name, field_type, required=required, doc=doc or None)  # type: ignore[arg-type]


ROUTING_DECISIONS = register(
    TableSpec(
        name="routing_decisions",
        schema=Schema(
            column(1, "decision_id", StringType(), doc="Unique id of the routing decision"),
            column(2, "ts", TimestamptzType(), doc="When the router decided (UTC)"),
            column(3, "tenant_id", StringType()),
            column(4, "task_type", StringType()),
            column(5, "prompt_tokens", LongType()),
            column(6, "candidate_models", ListType(14, StringType(), element_required=True)),
            column(7, "chosen_model", StringType()),
            column(8, "cost_usd", DoubleType()),
            column(9, "latency_ms", DoubleType()),
            column(10, "quality_score", DoubleType(), doc="Quality in [0, 1]"),
            column(11, "fallback_used", BooleanType()),
            column(12, "stream_id", StringType(), required=False, doc="Redis stream entry id"),
            column(13, "ingested_at", TimestamptzType(), required=False),
        ),
        time_column="ts",
        key=("decision_id",),
        description="One row per model-router decision, from the aura:events:routing stream",
    )
)

ROUTING_DECISIONS_REJECTED = register(
    TableSpec(
        name="routing_decisions_rejected",
        schema=Schema(
            column(1, "stream_id", StringType(), doc="Redis stream entry id of the rejected event"),
            column(2, "stream", StringType()),
            column(3, "rejected_at", TimestamptzType()),
            column(4, "reason", StringType(), doc="Why the event was rejected"),
            column(5, "raw", StringType(), required=False, doc="The payload exactly as received"),
            column(6, "run_id", StringType(), required=False),
        ),
        time_column="rejected_at",
        key=("stream", "stream_id"),
        description="Dead letters: routing events that failed validation, with the reason",
    )
)

ROUTING_MODEL_DAILY = register(
    TableSpec(
        name="routing_model_daily",
        schema=Schema(
            column(1, "day", TimestamptzType(), doc="UTC midnight of the day summarised"),
            column(2, "chosen_model", StringType()),
            column(3, "decisions", LongType()),
            column(4, "cost_usd", DoubleType()),
            column(5, "latency_p50_ms", DoubleType()),
            column(6, "latency_p95_ms", DoubleType()),
            column(7, "quality_mean", DoubleType()),
            column(8, "fallback_rate", DoubleType()),
        ),
        time_column="day",
        key=("day", "chosen_model"),
        description="Daily per-model summary of routing decisions",
    )
)
