"""Table views and time-travel macros: how each aura table appears in a session.

A view reads its resolved snapshot's Parquet files directly (columns mapped by Iceberg field id)
when it can, else through ``iceberg_scan``; the ``<t>_at``, ``<t>_at_snapshot`` and
``<t>_at_ref`` macros always use ``iceberg_scan``. A tenant session filters views and macros alike
inside the scan (:func:`tenant_filter`). Errors raised inside DuckDB by a macro carry a marker
(:data:`MARKER`) from which the session re-raises the domain error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
from pyiceberg.schema import Schema

from lakehouse.exceptions import RefError
from lakehouse.sql._guard import quote_identifier, quote_literal
from lakehouse.sql._remote import Remote
from lakehouse.sql._state import TableState, TimeTravelError, format_ms
from lakehouse.sql._types import UnsupportedTypeError, duckdb_type, has_struct
from lakehouse.table.registry import spec_for

MACRO_SUFFIXES = ("_at", "_at_snapshot", "_at_ref")
# error() messages raised inside DuckDB carry a marker so the session can re-raise domain errors.
MARKER = re.compile(r"\[aura:(\w+)\] ?")


@dataclass(frozen=True)
class ViewInfo:
    """How the view of one table was resolved when the session opened."""

    table: str
    source: str  # main | as_of | ref | snapshot
    snapshot_id: int | None
    reader: str  # read_parquet | iceberg_scan | attached | empty | unavailable
    data_files: int
    error: str | None = None


def create_view(
    con: duckdb.DuckDBPyConnection,
    state: TableState,
    *,
    when: datetime | None,
    ref: str | None,
    pin: int | None,
    read_files: set[str],
    scope: TenantScope | None = None,
    remote: Remote | None = None,
) -> ViewInfo:
    name = state.name
    snapshot_id: int | None
    if pin is not None:
        source, snapshot_id = "snapshot", pin
    elif ref is not None:
        source = "ref"
        try:
            snapshot_id = state.snapshot_for_ref(ref) if state.snapshots else None
        except RefError as exc:
            # A tenant session does not list the table's refs (names people chose).
            reason = f"{name} has no branch or tag {ref!r}" if scope and scope.tenant else exc
            return ViewInfo(
                name,
                source,
                None,
                "unavailable",
                0,
                f"{reason}; query it with {name}_at_ref(...) or pin it with a snapshot",
            )
    elif when is not None:
        source = "as_of"
        try:
            snapshot_id = state.snapshot_at(when)
        except TimeTravelError as exc:
            return ViewInfo(name, source, None, "unavailable", 0, str(exc))
    else:
        source, snapshot_id = "main", state.current_snapshot_id
    # As Iceberg defines it: main and branches read with the table's current schema; a tag, a
    # time or a snapshot id with the schema of that snapshot.
    branch = source == "main" or (
        source == "ref" and state.refs.get(ref or "", ("", 0))[0] == "branch"
    )
    schema = state.schema if branch else state.schema_of(snapshot_id)
    # iceberg_scan without a snapshot reads the metadata's current one, which a publish under
    # way may already have moved (with_main): name the snapshot then.
    current = source == "main" and (
        state.table is not None and snapshot_id == state.table.metadata.current_snapshot_id
    )
    body, reader, files = scan_sql(state, snapshot_id, schema, current=current, remote=remote)
    if snapshot_id is not None and state.table is not None and reader != "empty":
        read_files.update(
            task.file.file_path for task in state.table.scan(snapshot_id=snapshot_id).plan_files()
        )
    for database_schema in ("main", "aura"):
        con.execute(
            f"CREATE VIEW {database_schema}.{quote_identifier(name)} AS "
            + (scope or TenantScope()).wrap(body)
        )
    return ViewInfo(name, source, snapshot_id, reader, files)


def scan_sql(
    state: TableState,
    snapshot_id: int | None,
    schema: Schema,
    *,
    current: bool,
    remote: Remote | None = None,
) -> tuple[str, str, int]:
    """SQL that reads one snapshot: from an attached REST catalog, else Parquet files directly
    when possible, else iceberg_scan."""
    if snapshot_id is None or state.table is None:
        return empty_sql(schema), "empty", 0
    tasks = list(state.table.scan(snapshot_id=snapshot_id).plan_files())
    if not tasks:
        return empty_sql(schema), "empty", 0
    # DuckDB reads a snapshot with that snapshot's schema; a branch after a schema change reads
    # with the table's (Iceberg's rule), which the field-id mapped read below gives.
    if remote is not None and remote.attached and state.schema_of(snapshot_id) == schema:
        return remote.table_sql(state.name, snapshot_id), "attached", len(tasks)
    at = "" if current else f", snapshot_from_id => {snapshot_id}"
    fallback = f"SELECT * FROM iceberg_scan({quote_literal(state.metadata_location or '')}{at})"
    # Files added without Iceberg field ids (add_files sets a name mapping) can only be read by
    # name mapping, and delete files must be applied: both need iceberg_scan.
    name_mapped = "schema.name-mapping.default" in state.table.properties
    if name_mapped or has_struct(schema) or any(task.delete_files for task in tasks):
        return fallback, "iceberg_scan", len(tasks)
    try:
        field_map = _field_map(schema)
    except UnsupportedTypeError:
        return fallback, "iceberg_scan", len(tasks)
    files = ", ".join(quote_literal(task.file.file_path) for task in tasks)
    body = (
        f"SELECT * FROM read_parquet([{files}], schema = {field_map}, "
        "hive_partitioning = false, union_by_name = false)"
    )
    return body, "read_parquet", len(tasks)


def _field_map(schema: Schema) -> str:
    """The ``schema`` argument of read_parquet: Iceberg field id -> name and type."""
    entries = ", ".join(
        f"{field.field_id}: {{name: {quote_literal(field.name)}, "
        f"type: {quote_literal(duckdb_type(field.field_type))}, default_value: NULL}}"
        for field in schema.fields
    )
    return f"MAP {{{entries}}}"


def empty_sql(schema: Schema) -> str:
    columns = ", ".join(
        f"CAST(NULL AS {_type_or_varchar(field.field_type)}) AS {quote_identifier(field.name)}"
        for field in schema.fields
    )
    return f"SELECT {columns} WHERE false"


def _type_or_varchar(field_type: Any) -> str:
    try:
        return duckdb_type(field_type)
    except UnsupportedTypeError:
        return "VARCHAR"


def fail_sql(kind: str, message_sql: str) -> str:
    return f"error({quote_literal(f'[aura:{kind}] ')} || {message_sql})"


@dataclass(frozen=True)
class TenantScope:
    """What a tenant session shows of one table: which rows, and which columns as NULL."""

    tenant: bool = False
    where: str = ""
    hidden: tuple[tuple[str, str], ...] = ()  # (column, DuckDB type) shown as NULL

    def wrap(self, sql: str) -> str:
        """``sql`` confined to the scope (unchanged for a session without a tenant)."""
        if not self.where and not self.hidden:
            return sql
        select = "*"
        if self.hidden:
            nulls = ", ".join(
                f"CAST(NULL AS {kind}) AS {quote_identifier(column)}"
                for column, kind in self.hidden
            )
            select = f"* REPLACE ({nulls})"
        return f"SELECT {select} FROM ({sql}) {self.where}".rstrip()


def tenant_scope(state: TableState, tenant: str | None) -> TenantScope:
    """How a session of ``tenant`` sees a table (everything when the session has no tenant).

    A table with a ``tenant_id`` column shows the tenant's rows; a tenant-neutral or
    bookkeeping table (aggregates, models, quality results) shows all rows, with the columns
    its spec marks ``tenant_private`` (values that can name other tenants) as NULL; any other
    table (dead letters holding raw payloads, checkpoints) shows none.
    """
    if tenant is None:
        return TenantScope()
    if "tenant_id" in state.schema.column_names:
        return TenantScope(True, where=f"WHERE tenant_id = {quote_literal(tenant)}")
    spec = spec_for(state.name)
    if not (spec.tenant_neutral or spec.bookkeeping):
        return TenantScope(True, where="WHERE false")
    hidden = tuple(
        (field.name, _type_or_varchar(field.field_type))
        for field in state.schema.fields
        if field.name in spec.tenant_private
    )
    return TenantScope(True, hidden=hidden)


def create_macros(
    con: duckdb.DuckDBPyConnection, state: TableState, scope: TenantScope | None = None
) -> None:
    """``<t>_at(ts)``, ``<t>_at_snapshot(id)`` and ``<t>_at_ref(name)`` over iceberg_scan.

    In a tenant session (``scope`` with a tenant) the ref macro's error does not list the
    table's refs: their names are chosen by people and may name tenants.
    """
    scope = scope or TenantScope()
    name = state.name
    points = state.boundaries()
    location = state.metadata_location
    if location is None or not points:
        for suffix, arg in zip(MACRO_SUFFIXES, ("ts", "snapshot_id", "ref_name"), strict=True):
            # The message uses the argument, so DuckDB cannot evaluate it when creating the macro.
            no_data = fail_sql(
                "TimeTravelError",
                f"{quote_literal(name + ' has no snapshot yet (asked for ')} || "
                f"CAST({arg} AS VARCHAR) || ')'",
            )
            con.execute(
                f"CREATE MACRO {quote_identifier(name + suffix)}({arg}) AS TABLE "
                f"SELECT e.* FROM ({empty_sql(state.schema)}) e, range(CAST({no_data} AS BIGINT))"
            )
        return

    def scan(snapshot_sql: str) -> str:
        return scope.wrap(
            f"SELECT * FROM iceberg_scan({quote_literal(location)}, "
            f"snapshot_from_id => {snapshot_sql})"
        )

    # As of a time: the newest commit boundary at or before it.
    millis = "epoch_ms(CAST(ts AS TIMESTAMPTZ))"
    whens = " ".join(f"WHEN {millis} >= {ts} THEN {sid}" for ts, sid in reversed(points))
    too_early = fail_sql(
        "TimeTravelError",
        f"{quote_literal(name + ' has no state at ')} || CAST(ts AS VARCHAR) || "
        f"{quote_literal('; its oldest snapshot on main is from ' + format_ms(points[0][0]))}",
    )
    at_time = f"CASE {whens} ELSE CAST({too_early} AS BIGINT) END"
    con.execute(f"CREATE MACRO {quote_identifier(name + '_at')}(ts) AS TABLE " + scan(at_time))

    # A snapshot id: any snapshot the table has (main, branches, tags, intermediate).
    ids = ", ".join(str(sid) for sid in state.snapshots)
    unknown_id = fail_sql(
        "TimeTravelError",
        f"{quote_literal(name + ' has no snapshot ')} || CAST(snapshot_id AS VARCHAR) || "
        f"{quote_literal('; the aura_snapshots view lists them')}",
    )
    at_id = (
        f"CASE WHEN snapshot_id IN ({ids}) THEN snapshot_id ELSE CAST({unknown_id} AS BIGINT) END"
    )
    con.execute(
        f"CREATE MACRO {quote_identifier(name + '_at_snapshot')}(snapshot_id) AS TABLE "
        + scan(at_id)
    )

    # A branch or tag, compared as a value.
    refs = dict(state.refs)
    if state.current_snapshot_id is not None:
        refs.setdefault("main", ("branch", state.current_snapshot_id))
    known = (
        "; the aura_refs view lists them"
        if scope.tenant
        else f" (its refs: {', '.join(sorted(refs))})"
    )
    whens = " ".join(f"WHEN {quote_literal(r)} THEN {sid}" for r, (_, sid) in sorted(refs.items()))
    unknown_ref = fail_sql(
        "RefError",
        f"{quote_literal(name + ' has no branch or tag ')} || CAST(ref_name AS VARCHAR) || "
        f"{quote_literal(known)}",
    )
    at_ref = f"CASE ref_name {whens} ELSE CAST({unknown_ref} AS BIGINT) END"
    con.execute(
        f"CREATE MACRO {quote_identifier(name + '_at_ref')}(ref_name) AS TABLE " + scan(at_ref)
    )
