"""Registry of the aura tables: explicit Iceberg schemas, keys, partitioning and expectations.

Every table lives in namespace ``aura`` and declares the key that identifies a row (used to
deduplicate replays), its partitioning (by the day of an event-time column, or none), the
expectations its rows must satisfy (plain data, see :mod:`lakehouse.table.expectations`) and the
metrics an experiment diff shows. Bookkeeping tables (experiments, quality results) record what
happens on every branch and say so on their spec; experiments and releases leave them out.

Domains register themselves: a domain is a folder ``lakehouse/<domain>/`` whose ``tables.py``
calls :func:`register`. On the first lookup the registry imports every such module (and the
library's own :mod:`lakehouse.table.bookkeeping`); no list of module names is kept anywhere.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import pkgutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC, PartitionField, PartitionSpec
from pyiceberg.schema import Schema, assign_fresh_schema_ids
from pyiceberg.table import Table
from pyiceberg.transforms import DayTransform
from pyiceberg.types import NestedField

from lakehouse.exceptions import ConfigurationError, SchemaEvolutionError, UnknownTableError
from lakehouse.settings import NAMESPACE
from lakehouse.table.expectations import Expectation, check_unique_names
from lakehouse.table.retry import is_commit_conflict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableSpec:
    """Contract of one aura table.

    Attributes:
        name: the table's name in namespace ``aura``.
        schema: its Iceberg schema (field ids are renumbered on registration).
        key: the columns that identify a row.
        description: one line, stored as the table's comment.
        time_column: the event-time column; the table is partitioned by its day. None: the
            table is unpartitioned (registries, manifests) and has no day partitions.
        bookkeeping: the table records what happens on every branch (experiments never
            branch it, releases never tag it).
        expectations: what its rows must satisfy; none means the key's (not null, unique).
        diff_metrics: what an experiment diff shows, ``{label: (column, aggregate)}`` with an
            aggregate of ``pyarrow.compute`` (``mean``, ``sum``...); None: the row count and
            the mean of each numeric non-key column.
        tenant_neutral: its rows hold no tenant's data (aggregates, models), so a tenant SQL
            session shows it whole; a table without ``tenant_id`` that is not neutral (dead
            letters, checkpoints) shows no rows to a tenant session.
        tenant_private: columns of a table a tenant session shows whole (tenant-neutral or
            bookkeeping) whose values can name tenants or hold their rows (a model's one-hot
            feature names, sampled values of a failed expectation); a tenant session shows
            them as NULL.
        sort_by: columns a day write sorts its rows by, so each data file is ordered on them and
            a reader prunes row groups by their statistics (the cold memory tier's lookups by
            ``memory_id``); empty: rows keep the order they came in.
    """

    name: str
    schema: Schema
    key: tuple[str, ...]
    description: str
    time_column: str | None = None
    bookkeeping: bool = False
    expectations: tuple[Expectation, ...] = ()
    diff_metrics: Mapping[str, tuple[str, str]] | None = None
    tenant_neutral: bool = False
    tenant_private: tuple[str, ...] = ()
    sort_by: tuple[str, ...] = ()

    @property
    def identifier(self) -> tuple[str, str]:
        return (NAMESPACE, self.name)

    @property
    def partitioned(self) -> bool:
        """Whether the table is partitioned by the day of its time column."""
        return self.time_column is not None

    def require_time_column(self, purpose: str) -> str:
        """The time column, or a clear error for an unpartitioned table.

        Raises:
            ConfigurationError: the table has no time column.
        """
        if self.time_column is None:
            raise ConfigurationError(
                f"aura.{self.name} is unpartitioned (its spec has no time_column), so it has no "
                f"{purpose}; read or write the whole table instead"
            )
        return self.time_column

    @property
    def partition_spec(self) -> PartitionSpec:
        if self.time_column is None:
            return UNPARTITIONED_PARTITION_SPEC
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
    # on a head its data was never merged with (lakehouse.table.writer retries where that is safe).
    "commit.retry.num-retries": "0",
}


def register(spec: TableSpec) -> TableSpec:
    """Add a table to the registry (idempotent for an identical spec).

    Field ids are renumbered the way the catalog assigns them on creation, so Arrow data built
    from ``spec.arrow_schema`` matches the table's own schema id for id.
    """
    spec = replace(spec, schema=assign_fresh_schema_ids(spec.schema))
    names = spec.schema.column_names
    wanted = [*spec.key, *([spec.time_column] if spec.time_column else [])]
    wanted += [c for e in spec.expectations for c in e.columns]
    wanted += [c for c, _ in (spec.diff_metrics or {}).values()]
    unknown = sorted({c for c in wanted if c not in names})
    if unknown:
        raise ValueError(f"spec of {spec.name} names columns {unknown} that its schema lacks")
    check_unique_names(spec.name, spec.expectations)
    existing = _REGISTRY.get(spec.name)
    if existing is not None and existing != spec:
        raise ValueError(f"table {spec.name!r} is already registered with another spec")
    _REGISTRY[spec.name] = spec
    return spec


BOOKKEEPING_MODULE = "lakehouse.table.bookkeeping"
TABLES_MODULE = "tables"


@functools.cache
def _discover() -> None:
    """Import the library's bookkeeping tables and every domain's ``tables`` module.

    A subpackage of ``lakehouse`` with a ``tables`` module registers its tables there; one
    without registers them (if it has any) when the package itself is imported.
    """
    import lakehouse

    importlib.import_module(BOOKKEEPING_MODULE)
    for package in pkgutil.iter_modules(lakehouse.__path__, "lakehouse."):
        if not package.ispkg:
            continue
        inner = importlib.util.find_spec(package.name)
        locations = inner.submodule_search_locations if inner else None
        has_tables = any(m.name == TABLES_MODULE for m in pkgutil.iter_modules(locations or []))
        importlib.import_module(f"{package.name}.{TABLES_MODULE}" if has_tables else package.name)


def spec_for(name: str) -> TableSpec:
    """The spec of a registered table; ``aura.`` prefixes are accepted."""
    short = name.removeprefix(f"{NAMESPACE}.")
    if short not in _REGISTRY:
        _discover()
    try:
        return _REGISTRY[short]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownTableError(f"unknown table {name!r}; aura tables are: {known}") from None


def all_specs() -> Iterator[TableSpec]:
    """Every registered table, by name."""
    _discover()
    yield from (_REGISTRY[name] for name in sorted(_REGISTRY))


def data_specs() -> list[TableSpec]:
    """The registered tables that are not bookkeeping (experiments branch them, releases tag)."""
    return [s for s in all_specs() if not s.bookkeeping]


def ensure_table(catalog: Catalog, spec: TableSpec) -> Table:
    """Load the table, creating it or adding new spec columns (additive evolution only)."""
    try:
        table = catalog.load_table(spec.identifier)
    except NoSuchTableError:
        catalog.create_table_if_not_exists(
            spec.identifier,
            schema=spec.schema,
            partition_spec=spec.partition_spec,
            properties={**TABLE_PROPERTIES, "comment": spec.description},
        )
        # The table the catalog kept: a REST catalog may answer two racing creates with two
        # tables and keep one (SeaweedFS does), and a handle on the other never commits.
        return catalog.load_table(spec.identifier)
    ensure_properties(table, TABLE_PROPERTIES)
    missing = [f for f in spec.schema.fields if f.name not in table.schema().column_names]
    if missing:
        evolve_schema(table, pa.schema([spec.arrow_schema.field(f.name) for f in missing]))
    return table


PROPERTY_ATTEMPTS = 5


def ensure_properties(table: Table, wanted: Mapping[str, str]) -> Table:
    """Give ``table`` the ``wanted`` properties it lacks; ``table`` is refreshed if it changed.

    Processes that open the same tables at once race to set the same properties: a lost race
    (a commit conflict) re-reads the table and sets what is still missing, usually nothing.
    """
    for attempt in range(PROPERTY_ATTEMPTS):
        stale = {k: v for k, v in wanted.items() if table.properties.get(k) != v}
        if not stale:
            return table
        try:
            with table.transaction() as tx:
                tx.set_properties(stale)
        except Exception as exc:
            if not is_commit_conflict(exc) or attempt == PROPERTY_ATTEMPTS - 1:
                raise
        table.refresh()
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
