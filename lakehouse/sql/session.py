"""Build the read-only DuckDB session: extensions, table views, time-travel macros, metadata."""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import duckdb
import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.schema import Schema

from lakehouse.exceptions import ConfigurationError, ReadOnlyError, RefError, UnknownTableError
from lakehouse.settings import Settings
from lakehouse.sql._guard import (
    check_read_only,
    check_ref_name,
    check_tenant_query,
    quote_identifier,
    quote_literal,
)
from lakehouse.sql._remote import Remote, object_prefix, remote_for
from lakehouse.sql._state import (
    TableState,
    TimeTravelError,
    format_ms,
    from_millis,
    load_states,
    to_millis,
)
from lakehouse.sql._types import UnsupportedTypeError, duckdb_type, has_struct
from lakehouse.table.catalog import open_catalog
from lakehouse.table.registry import spec_for

METADATA_VIEWS = ("aura_snapshots", "aura_refs", "aura_history", "aura_views")
MACRO_SUFFIXES = ("_at", "_at_snapshot", "_at_ref")

# error() messages raised inside DuckDB carry a marker so the session can re-raise domain errors.
_MARKER = re.compile(r"\[aura:(\w+)\] ?")
_ERRORS: dict[str, type[Exception]] = {"TimeTravelError": TimeTravelError, "RefError": RefError}
_MISSING_TABLE = re.compile(r"Table(?: Function)? with name (\S+) does not exist")


@dataclass(frozen=True)
class ViewInfo:
    """How the view of one table was resolved when the session opened."""

    table: str
    source: str  # main | as_of | ref | snapshot
    snapshot_id: int | None
    reader: str  # read_parquet | iceberg_scan | attached | empty | unavailable
    data_files: int
    error: str | None = None


def extension_path(name: str) -> Path:
    """The signed extension file shipped in the ``duckdb-extension-<name>`` wheel.

    Raises:
        ConfigurationError: the package for this DuckDB version is not installed.
    """
    version = duckdb.__version__
    package = f"duckdb_extension_{name}"
    try:
        root: Path | None = Path(str(importlib.resources.files(package)))
    except ModuleNotFoundError:
        root = None
    path = root / "extensions" / f"v{version}" / f"{name}.duckdb_extension" if root else None
    if path is None or not path.is_file():
        raise ConfigurationError(
            f"DuckDB's {name} extension for DuckDB {version} is not installed; "
            f"run `pip install duckdb-extension-{name}=={version}` (AURA never downloads "
            "extensions at run time)"
        )
    return path


def _open_duckdb() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with only signed, locally installed extensions and UTC time."""
    con = duckdb.connect(
        ":memory:",
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_unsigned_extensions": False,
            "allow_community_extensions": False,
        },
    )
    # LOAD '<file>' checks the signature and copies nothing into ~/.duckdb.
    for name in ("avro", "iceberg"):  # httpfs too when the warehouse is in S3 (_remote)
        con.execute(f"LOAD {quote_literal(str(extension_path(name)))}")
    con.execute("LOAD icu")  # built in; needed for TIMESTAMPTZ and the UTC session time zone
    con.execute("SET TimeZone = 'UTC'")
    return con


class SqlSession:
    """A read-only DuckDB session over every aura table (see :mod:`lakehouse.sql`)."""

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        views: Mapping[str, ViewInfo],
        description: str,
        tenant: str | None = None,
        relations: frozenset[str] = frozenset(),
    ) -> None:
        self._connection = connection
        self.views = dict(views)
        self.description = description
        self.tenant = tenant
        # What a tenant-scoped query may name: the views, metadata views and the macros.
        self._relations = relations
        self._macros = frozenset(f"{t}{s}" for t in self.views for s in MACRO_SUFFIXES)

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The underlying DuckDB connection (its settings are locked; it bypasses the guard)."""
        return self._connection

    def execute(self, query: str, parameters: object | None = None) -> duckdb.DuckDBPyConnection:
        """Run a read-only query; fetch with ``fetchall()``, ``arrow()``, ``pl()`` or ``df()``.

        Raises:
            ReadOnlyError: a statement would write, or (tenant session) reads a file or an
                object other than the aura views and macros.
            UnknownTableError: the query names a table that is not an aura table.
            TimeTravelError: a macro got a time or snapshot id the table has no state for.
            RefError: a ref macro got a branch or tag the table does not have.
        """
        self._check(query)
        if len(self._connection.extract_statements(query)) > 1:
            raise ReadOnlyError(
                "one statement per call: SqlSession.statements() splits a script into statements "
                "to run one by one"
            )
        try:
            return self._connection.execute(query, parameters)
        except duckdb.Error as exc:
            raise self._translate(exc) from None

    def statements(self, script: str) -> list[str]:
        """The statements of ``script``, split by DuckDB's parser (each checked as read-only).

        Raises:
            ReadOnlyError: a statement would write, or (tenant session) reads a file or an
                object other than the aura views and macros.
            duckdb.ParserException: the text is not valid SQL.
        """
        self._check(script)
        return [s.query for s in self._connection.extract_statements(script)]

    def _check(self, query: str) -> None:
        check_read_only(query, self._connection)
        if self.tenant is not None:
            check_tenant_query(
                query, self._connection, relations=self._relations, macros=self._macros
            )

    def arrow(self, query: str, parameters: object | None = None) -> pa.Table:
        """Run a read-only query and return its result as an Arrow table."""
        result = self.execute(query, parameters)
        return result.to_arrow_table()

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> SqlSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _translate(self, exc: duckdb.Error) -> Exception:
        message = str(exc)
        marker = _MARKER.search(message)
        if marker and marker.group(1) in _ERRORS:
            detail = message[marker.end() :].split("\n", 1)[0]
            return _ERRORS[marker.group(1)](detail)
        missing = _MISSING_TABLE.search(message)
        if isinstance(exc, duckdb.CatalogException) and missing:
            name = missing.group(1).strip("\"'!")
            view = self.views.get(name)
            if view is not None and view.error:
                return (RefError if view.source == "ref" else TimeTravelError)(view.error)
            tables = ", ".join(sorted(self.views))
            return UnknownTableError(
                f"unknown table or macro {name!r}. Tables: {tables}; each has macros "
                f"<table>_at(TIMESTAMP), <table>_at_snapshot(ID) and <table>_at_ref('NAME'); "
                f"metadata views: {', '.join(METADATA_VIEWS)}"
            )
        return exc


def connect(
    settings: Settings | None = None,
    *,
    catalog: Catalog | None = None,
    as_of: datetime | str | None = None,
    ref: str | None = None,
    snapshots: Mapping[str, int] | None = None,
    tenant: str | None = None,
) -> SqlSession:
    """Open a read-only DuckDB session in which every aura table is a view.

    Args:
        settings: where the catalog is (default: from the ``AURA_*`` environment).
        catalog: an already open catalog to reuse instead of opening one from ``settings``.
        as_of: show every table as of this moment (naive times are UTC).
        ref: show every table at this branch or tag.
        snapshots: pin tables to snapshot ids (``{"routing_decisions": 123}``); pins win over
            ``as_of`` and ``ref``.
        tenant: show only this tenant's rows (views and time-travel macros alike): a table with
            a ``tenant_id`` column is filtered on it; a tenant-neutral or bookkeeping table
            (aggregates, models) shows whole; any other table (dead letters, checkpoints)
            shows none.

    Raises:
        ConfigurationError: both ``as_of`` and ``ref`` were given, or an extension is missing.
        RefError: no aura table has the branch or tag ``ref``, or its name is malformed.
        TimeTravelError: ``as_of`` is before every table's first snapshot, or a pinned snapshot
            does not exist.
        UnknownTableError: a pinned table is not an aura table.
    """
    if as_of is not None and ref is not None:
        raise ConfigurationError("give either as_of or ref, not both")
    when = parse_time(as_of) if as_of is not None else None
    if ref is not None:
        check_ref_name(ref)
    owned = catalog is None
    catalog = catalog or open_catalog(settings or Settings.from_env())
    try:
        states = load_states(catalog)
        allowed = _allowed_directories(catalog, states)
        remote = remote_for(catalog, _locations(catalog, states))
        return _build(
            states,
            when=when,
            ref=ref,
            pins=snapshots or {},
            allowed=allowed,
            tenant=tenant,
            remote=remote,
        )
    finally:
        if owned and isinstance(catalog, SqlCatalog):
            catalog.engine.dispose()


def _build(
    states: dict[str, TableState],
    *,
    when: datetime | None,
    ref: str | None,
    pins: Mapping[str, int],
    allowed: list[str],
    tenant: str | None = None,
    remote: Remote | None = None,
) -> SqlSession:
    for name, snapshot_id in pins.items():
        short = name.removeprefix("aura.")
        if short not in states:
            raise UnknownTableError(
                f"cannot pin unknown table {name!r}; aura tables are: {', '.join(states)}"
            )
        states[short].check_snapshot(int(snapshot_id))
    pins = {name.removeprefix("aura."): int(sid) for name, sid in pins.items()}
    if ref is not None and not any(ref in s.refs or _is_main(s, ref) for s in states.values()):
        raise RefError(
            f"no aura table has a branch or tag {ref!r}; the aura_refs view lists them "
            f"({', '.join(sorted({r for s in states.values() for r in s.refs})) or 'none yet'})"
        )
    if when is not None:
        firsts = [s.boundaries()[0][0] for s in states.values() if s.boundaries()]
        if firsts and to_millis(when) < min(firsts):
            raise TimeTravelError(
                f"no aura table has a state at {format_ms(to_millis(when))}; the oldest snapshot "
                f"is from {format_ms(min(firsts))}"
            )

    con = _open_duckdb()
    try:
        if remote is not None:
            remote.prepare(con, str(extension_path("httpfs")))
        con.execute("CREATE SCHEMA aura")
        views = {}
        read_files: set[str] = set()
        for name, state in states.items():
            where = _tenant_filter(state, tenant)
            views[name] = _create_view(
                con,
                state,
                when=when,
                ref=ref,
                pin=pins.get(name),
                read_files=read_files,
                where=where,
                remote=remote,
            )
            _create_macros(con, state, where)
        _create_metadata(con, states, views)
        _confine(con, allowed, _outside(read_files, allowed))
    except BaseException:
        con.close()
        raise
    description = (
        f"as of {format_ms(to_millis(when))}"
        if when is not None
        else f"ref {ref}"
        if ref is not None
        else "current main"
    )
    if tenant is not None:
        description += f"; rows of tenant {tenant}"
    if pins:
        description += "; pinned " + ", ".join(f"{t}={s}" for t, s in sorted(pins.items()))
    relations = frozenset(states) | frozenset(METADATA_VIEWS)
    return SqlSession(con, views, description, tenant, relations)


def _local_dir(location: str) -> str | None:
    """The local directory of a ``file:`` URI or plain path, with a trailing slash."""
    if location.startswith("file:"):
        path = Path(url2pathname(urlsplit(location).path))
    elif "://" in location:
        return None  # object stores cannot be read with external access off
    else:
        path = Path(location)
    return str(path).rstrip("/") + "/"


def _locations(catalog: Catalog, states: Mapping[str, TableState]) -> list[str]:
    """The warehouse and every table's location."""
    locations = [str(catalog.properties.get("warehouse") or "")]
    locations += [s.table.location() for s in states.values() if s.table is not None]
    return [loc for loc in locations if loc]


def _allowed_directories(catalog: Catalog, states: Mapping[str, TableState]) -> list[str]:
    """The warehouse and every table's location: the only places a session may read (in an
    object store, those prefixes of their bucket)."""
    locations = _locations(catalog, states)
    found = {d for d in (_local_dir(loc) for loc in locations) if d}
    # The same directories through any symlink, as DuckDB may see either spelling.
    found |= {str(Path(d).resolve()).rstrip("/") + "/" for d in found}
    found |= {object_prefix(loc) for loc in locations if loc.startswith(("s3://", "s3a://"))}
    return sorted(found)


def _outside(files: set[str], allowed: list[str]) -> list[str]:
    """Local data files of the views that lie outside ``allowed`` (added with ``add_files``)."""
    paths = {d for d in (_local_dir(f) for f in files) if d}
    return sorted(p.rstrip("/") for p in paths if not any(p.startswith(a) for a in allowed))


def _confine(con: duckdb.DuckDBPyConnection, allowed: list[str], files: list[str]) -> None:
    """Confine file access to ``allowed`` directories (and ``files``) and lock the configuration.

    Must run after the extensions are loaded: with external access off, no file outside
    ``allowed`` (``read_csv('/etc/passwd')``, ``read_text``, ``glob``, ``ATTACH``) can be opened.
    ``files`` are data files a view reads that a table registered outside its location; a macro
    reading an older snapshot's such files is refused.
    """
    # duckdb_extensions() lists DuckDB's extension directory; INSTALL and LOAD stay refused.
    row = con.execute("SELECT current_setting('extension_directory')").fetchone()
    extensions = (row[0] if row and row[0] else None) or str(Path.home() / ".duckdb" / "extensions")
    dirs = ", ".join(quote_literal(d) for d in [*allowed, extensions.rstrip("/") + "/"])
    con.execute(f"SET allowed_directories = [{dirs}]")
    if files:
        con.execute(f"SET allowed_paths = [{', '.join(quote_literal(f) for f in files)}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def parse_time(value: datetime | str) -> datetime:
    """A datetime from a datetime or an ISO 8601 string (naive means UTC).

    Raises:
        TimeTravelError: the string is not an ISO 8601 time.
    """
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(value.strip().replace(" UTC", "+00:00"))
    except ValueError:
        raise TimeTravelError(
            f"{value!r} is not an ISO 8601 time; write e.g. '2026-11-20 14:05' (UTC) or "
            "'2026-11-20T14:05:00+01:00'"
        ) from None


def _is_main(state: TableState, ref: str) -> bool:
    return ref == "main" and state.current_snapshot_id is not None


def _create_view(
    con: duckdb.DuckDBPyConnection,
    state: TableState,
    *,
    when: datetime | None,
    ref: str | None,
    pin: int | None,
    read_files: set[str],
    where: str = "",
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
            return ViewInfo(
                name,
                source,
                None,
                "unavailable",
                0,
                f"{exc}; query it with {name}_at_ref(...) or pin it with a snapshot",
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
    body, reader, files = _scan_sql(
        state, snapshot_id, schema, current=source == "main", remote=remote
    )
    if snapshot_id is not None and state.table is not None and reader != "empty":
        read_files.update(
            task.file.file_path for task in state.table.scan(snapshot_id=snapshot_id).plan_files()
        )
    for database_schema in ("main", "aura"):
        con.execute(
            f"CREATE VIEW {database_schema}.{quote_identifier(name)} AS "
            + (f"SELECT * FROM ({body}) {where}" if where else body)
        )
    return ViewInfo(name, source, snapshot_id, reader, files)


def _scan_sql(
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
        return _empty_sql(schema), "empty", 0
    tasks = list(state.table.scan(snapshot_id=snapshot_id).plan_files())
    if not tasks:
        return _empty_sql(schema), "empty", 0
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


def _empty_sql(schema: Schema) -> str:
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


def _fail(kind: str, message_sql: str) -> str:
    return f"error({quote_literal(f'[aura:{kind}] ')} || {message_sql})"


def _tenant_filter(state: TableState, tenant: str | None) -> str:
    """The WHERE clause confining a table to ``tenant`` ('' when the session has no tenant).

    A table with a ``tenant_id`` column shows the tenant's rows; a tenant-neutral or
    bookkeeping table (aggregates, models, quality results) shows all; any other table (dead
    letters holding raw payloads, checkpoints) shows none.
    """
    if tenant is None:
        return ""
    if "tenant_id" in state.schema.column_names:
        return f"WHERE tenant_id = {quote_literal(tenant)}"
    spec = spec_for(state.name)
    return "" if spec.tenant_neutral or spec.bookkeeping else "WHERE false"


def _create_macros(con: duckdb.DuckDBPyConnection, state: TableState, where: str = "") -> None:
    """``<t>_at(ts)``, ``<t>_at_snapshot(id)`` and ``<t>_at_ref(name)`` over iceberg_scan."""
    name = state.name
    points = state.boundaries()
    location = state.metadata_location
    if location is None or not points:
        for suffix, arg in zip(MACRO_SUFFIXES, ("ts", "snapshot_id", "ref_name"), strict=True):
            # The message uses the argument, so DuckDB cannot evaluate it when creating the macro.
            no_data = _fail(
                "TimeTravelError",
                f"{quote_literal(name + ' has no snapshot yet (asked for ')} || "
                f"CAST({arg} AS VARCHAR) || ')'",
            )
            con.execute(
                f"CREATE MACRO {quote_identifier(name + suffix)}({arg}) AS TABLE "
                f"SELECT e.* FROM ({_empty_sql(state.schema)}) e, range(CAST({no_data} AS BIGINT))"
            )
        return
    scan = f"SELECT * FROM iceberg_scan({quote_literal(location)}, snapshot_from_id => {{}})"
    if where:
        scan = f"SELECT * FROM ({scan}) {where}"

    # As of a time: the newest commit boundary at or before it.
    millis = "epoch_ms(CAST(ts AS TIMESTAMPTZ))"
    whens = " ".join(f"WHEN {millis} >= {ts} THEN {sid}" for ts, sid in reversed(points))
    too_early = _fail(
        "TimeTravelError",
        f"{quote_literal(name + ' has no state at ')} || CAST(ts AS VARCHAR) || "
        f"{quote_literal('; its oldest snapshot on main is from ' + format_ms(points[0][0]))}",
    )
    at_time = f"CASE {whens} ELSE CAST({too_early} AS BIGINT) END"
    con.execute(
        f"CREATE MACRO {quote_identifier(name + '_at')}(ts) AS TABLE " + scan.format(at_time)
    )

    # A snapshot id: any snapshot the table has (main, branches, tags, intermediate).
    ids = ", ".join(str(sid) for sid in state.snapshots)
    unknown_id = _fail(
        "TimeTravelError",
        f"{quote_literal(name + ' has no snapshot ')} || CAST(snapshot_id AS VARCHAR) || "
        f"{quote_literal('; the aura_snapshots view lists them')}",
    )
    at_id = (
        f"CASE WHEN snapshot_id IN ({ids}) THEN snapshot_id ELSE CAST({unknown_id} AS BIGINT) END"
    )
    con.execute(
        f"CREATE MACRO {quote_identifier(name + '_at_snapshot')}(snapshot_id) AS TABLE "
        + scan.format(at_id)
    )

    # A branch or tag, compared as a value.
    refs = dict(state.refs)
    if state.current_snapshot_id is not None:
        refs.setdefault("main", ("branch", state.current_snapshot_id))
    known = ", ".join(sorted(refs))
    whens = " ".join(f"WHEN {quote_literal(r)} THEN {sid}" for r, (_, sid) in sorted(refs.items()))
    unknown_ref = _fail(
        "RefError",
        f"{quote_literal(name + ' has no branch or tag ')} || CAST(ref_name AS VARCHAR) || "
        f"{quote_literal(f' (its refs: {known})')}",
    )
    at_ref = f"CASE ref_name {whens} ELSE CAST({unknown_ref} AS BIGINT) END"
    con.execute(
        f"CREATE MACRO {quote_identifier(name + '_at_ref')}(ref_name) AS TABLE "
        + scan.format(at_ref)
    )


def _create_metadata(
    con: duckdb.DuckDBPyConnection, states: Mapping[str, TableState], views: Mapping[str, ViewInfo]
) -> None:
    snapshot_rows: list[dict[str, object]] = []
    ref_rows: list[dict[str, object]] = []
    history_rows: list[dict[str, object]] = []
    for name, state in states.items():
        pointing: dict[int, list[tuple[str, str]]] = {}
        for ref_name, (kind, sid) in state.refs.items():
            pointing.setdefault(sid, []).append((ref_name, kind))
        hidden = state.intermediate()
        on_main = {sid for _, sid in state.main_log}
        for snap in sorted(state.snapshots.values(), key=lambda s: (s.timestamp_ms, s.snapshot_id)):
            props = snap.properties
            refs_here = sorted(pointing.get(snap.snapshot_id, []))
            snapshot_rows.append(
                {
                    "table_name": name,
                    "snapshot_id": snap.snapshot_id,
                    "parent_id": snap.parent_id,
                    "committed_at": from_millis(snap.timestamp_ms),
                    "operation": snap.operation,
                    "aura_commit": props.get("aura.commit"),
                    "run_id": props.get("aura.run-id"),
                    "asset": props.get("aura.asset"),
                    "partition": props.get("aura.partition"),
                    "code_version": props.get("aura.code-version"),
                    "added_records": _int(props.get("added-records")),
                    "deleted_records": _int(props.get("deleted-records")),
                    "total_records": _int(props.get("total-records")),
                    "branches": [r for r, kind in refs_here if kind == "branch"],
                    "tags": [r for r, kind in refs_here if kind == "tag"],
                    "on_main": snap.snapshot_id in on_main,
                    "intermediate": snap.snapshot_id in hidden,
                }
            )
        for ref_name, (kind, sid) in sorted(state.refs.items()):
            ref_rows.append(
                {
                    "table_name": name,
                    "ref_name": ref_name,
                    "ref_type": kind,
                    "snapshot_id": sid,
                    "committed_at": from_millis(state.snapshots[sid].timestamp_ms),
                }
            )
        ancestors: set[int] = set()
        head = state.current_snapshot_id
        while head is not None and head in state.snapshots and head not in ancestors:
            ancestors.add(head)
            head = state.snapshots[head].parent_id
        for ts, sid in state.main_log:
            snap = state.snapshots[sid]
            history_rows.append(
                {
                    "table_name": name,
                    "made_current_at": from_millis(ts),
                    "snapshot_id": sid,
                    "parent_id": snap.parent_id,
                    "is_current_ancestor": sid in ancestors,
                    "intermediate": sid in hidden,
                    "operation": snap.operation,
                    "aura_commit": snap.commit,
                    "run_id": snap.properties.get("aura.run-id"),
                }
            )
    timestamp = pa.timestamp("us", tz="UTC")
    text = pa.string()
    tables = {
        "aura_snapshots": (
            snapshot_rows,
            pa.schema(
                [
                    ("table_name", text),
                    ("snapshot_id", pa.int64()),
                    ("parent_id", pa.int64()),
                    ("committed_at", timestamp),
                    ("operation", text),
                    ("aura_commit", text),
                    ("run_id", text),
                    ("asset", text),
                    ("partition", text),
                    ("code_version", text),
                    ("added_records", pa.int64()),
                    ("deleted_records", pa.int64()),
                    ("total_records", pa.int64()),
                    ("branches", pa.list_(text)),
                    ("tags", pa.list_(text)),
                    ("on_main", pa.bool_()),
                    ("intermediate", pa.bool_()),
                ]
            ),
        ),
        "aura_refs": (
            ref_rows,
            pa.schema(
                [
                    ("table_name", text),
                    ("ref_name", text),
                    ("ref_type", text),
                    ("snapshot_id", pa.int64()),
                    ("committed_at", timestamp),
                ]
            ),
        ),
        "aura_history": (
            history_rows,
            pa.schema(
                [
                    ("table_name", text),
                    ("made_current_at", timestamp),
                    ("snapshot_id", pa.int64()),
                    ("parent_id", pa.int64()),
                    ("is_current_ancestor", pa.bool_()),
                    ("intermediate", pa.bool_()),
                    ("operation", text),
                    ("aura_commit", text),
                    ("run_id", text),
                ]
            ),
        ),
        "aura_views": (
            [
                {
                    "table_name": v.table,
                    "source": v.source,
                    "snapshot_id": v.snapshot_id,
                    "reader": v.reader,
                    "data_files": v.data_files,
                    "error": v.error,
                }
                for v in views.values()
            ],
            pa.schema(
                [
                    ("table_name", text),
                    ("source", text),
                    ("snapshot_id", pa.int64()),
                    ("reader", text),
                    ("data_files", pa.int64()),
                    ("error", text),
                ]
            ),
        ),
    }
    clash = set(tables) & set(states)
    if clash:
        raise ConfigurationError(
            f"aura tables {sorted(clash)} collide with the metadata views; rename the tables"
        )
    for view_name, (rows, schema) in tables.items():
        data = pa.Table.from_pylist(rows, schema=schema)
        con.register("_aura_rows", data)
        con.execute(f"CREATE TABLE {view_name} AS SELECT * FROM _aura_rows")
        con.unregister("_aura_rows")


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.lstrip("-").isdigit() else None
