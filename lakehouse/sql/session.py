"""The read-only DuckDB session over every aura table, and :func:`connect` that builds it.

Building a session: load every table's state once (:mod:`._state`), create its view and macros
(:mod:`._views`) and the metadata views (:mod:`._metadata`), then confine file access and lock
the configuration (:mod:`._confine`). Every statement then passes the read-only guard (and, in
a tenant session, the tenant guard) of :mod:`._guard`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from types import TracebackType

import duckdb
import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog

from lakehouse.exceptions import (
    ConfigurationError,
    QueryTimeoutError,
    ReadOnlyError,
    RefError,
    UnknownTableError,
)
from lakehouse.settings import Settings
from lakehouse.sql._confine import (
    allowed_directories,
    confine,
    extension_path,
    locations,
    open_duckdb,
    outside,
)
from lakehouse.sql._guard import check_read_only, check_ref_name, check_tenant_query
from lakehouse.sql._metadata import METADATA_VIEWS, create_metadata
from lakehouse.sql._remote import Remote, remote_for
from lakehouse.sql._state import TableState, TimeTravelError, format_ms, load_states, to_millis
from lakehouse.sql._views import (
    MACRO_SUFFIXES,
    MARKER,
    ViewInfo,
    create_macros,
    create_view,
    tenant_scope,
)
from lakehouse.table import journal
from lakehouse.table.catalog import open_catalog
from lakehouse.table.tenants import check_tenant

_STABLE_ATTEMPTS = 20
DEFAULT_STATEMENT_TIMEOUT = 300.0
"""Seconds a statement may run before it is stopped (``aura sql --timeout``; 0 or None: none)."""
_ERRORS: dict[str, type[Exception]] = {"TimeTravelError": TimeTravelError, "RefError": RefError}
_MISSING_TABLE = re.compile(r"Table(?: Function)? with name (\S+) does not exist")


class SqlSession:
    """A read-only DuckDB session over every aura table (see :mod:`lakehouse.sql`)."""

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        views: Mapping[str, ViewInfo],
        description: str,
        tenant: str | None = None,
        relations: frozenset[str] = frozenset(),
        statement_timeout: float | None = DEFAULT_STATEMENT_TIMEOUT,
    ) -> None:
        self._connection = connection
        self.statement_timeout = statement_timeout or None
        self._armed = False
        self._timed_out = False
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
            QueryTimeoutError: the statement ran longer than ``statement_timeout`` seconds.
        """
        self._check(query)
        if len(self._connection.extract_statements(query)) > 1:
            raise ReadOnlyError(
                "one statement per call: SqlSession.statements() splits a script into statements "
                "to run one by one"
            )
        with self._deadline():
            try:
                return self._connection.execute(query, parameters)
            except duckdb.Error as exc:
                raise self._translate(exc) from None

    @contextmanager
    def _deadline(self) -> Iterator[None]:
        """Interrupt DuckDB when the statement inside runs past ``statement_timeout``."""
        if self.statement_timeout is None or self._armed:
            yield
            return
        lock = threading.Lock()
        running = True

        def stop() -> None:
            with lock:
                if running:
                    self._timed_out = True
                    self._connection.interrupt()

        timer = threading.Timer(self.statement_timeout, stop)
        timer.daemon = True
        self._armed, self._timed_out = True, False
        timer.start()
        try:
            yield
        except duckdb.InterruptException:
            if not self._timed_out:
                raise
            raise QueryTimeoutError(
                f"the statement ran longer than {self.statement_timeout:g} s and was stopped; "
                "make it cheaper (a LIMIT, a narrower WHERE) or allow more time with "
                "--timeout SECONDS (statement_timeout=; 0 means no limit)"
            ) from None
        finally:
            with lock:
                running = False
            timer.cancel()
            self._armed = False

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
        with self._deadline():  # the time limit covers fetching the result too
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
        marker = MARKER.search(message)
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
    statement_timeout: float | None = DEFAULT_STATEMENT_TIMEOUT,
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
            shows none. It is validated as the memory commands validate tenant ids.
        statement_timeout: seconds a statement may run before it is stopped with
            :class:`~lakehouse.exceptions.QueryTimeoutError` (0 or None: no limit).

    Raises:
        ConfigurationError: both ``as_of`` and ``ref`` were given, or an extension is missing.
        RefError: no aura table has the branch or tag ``ref``, or its name is malformed.
        TimeTravelError: ``as_of`` is before every table's first snapshot, or a pinned snapshot
            does not exist.
        UnknownTableError: a pinned table is not an aura table.
        ValidationError: ``tenant`` is not a valid tenant id.
    """
    if tenant is not None:
        check_tenant(tenant)
    if as_of is not None and ref is not None:
        raise ConfigurationError("give either as_of or ref, not both")
    when = parse_time(as_of) if as_of is not None else None
    if ref is not None:
        check_ref_name(ref)
    owned = catalog is None
    catalog = catalog or open_catalog(settings or Settings.from_env())
    try:
        states, publishing = _states_for_readers(catalog)
        if when is None and ref is None:
            for name, before in publishing.before().items():
                if name in states:
                    states[name] = states[name].with_main(before)
        allowed = allowed_directories(catalog, states)
        session = _build(
            states,
            when=when,
            ref=ref,
            pins=snapshots or {},
            allowed=allowed,
            tenant=tenant,
            remote=remote_for(catalog, locations(catalog, states)),
        )
        session.statement_timeout = statement_timeout or None
        if when is None and ref is None and publishing.live():
            experiments = ", ".join(j.experiment for j in publishing.live())
            session.description += f"; main as before the publish under way of {experiments}"
        return session
    finally:
        if owned and isinstance(catalog, SqlCatalog):
            catalog.engine.dispose()


def _states_for_readers(catalog: Catalog) -> tuple[dict[str, TableState], journal.Journals]:
    """Every table's state, and the publishes under way while they were read.

    Publishes whose process died are settled first. The journals are read before and after the
    tables: when they differ (a publish began or ended meanwhile) the tables are read again, so
    that a session never holds some tables from before a publish and others from after it.
    """
    for _ in range(_STABLE_ATTEMPTS):
        first = journal.settle_dead(catalog)
        states = load_states(catalog)
        last = journal.read(catalog)
        if (first.generation, first.journals) == (last.generation, last.journals):
            return states, last
    return states, last


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
        known = sorted({r for s in states.values() for r in s.refs})
        listed = "" if tenant is not None else f" ({', '.join(known) or 'none yet'})"
        raise RefError(
            f"no aura table has a branch or tag {ref!r}; the aura_refs view lists them{listed}"
        )
    if when is not None:
        firsts = [s.boundaries()[0][0] for s in states.values() if s.boundaries()]
        if firsts and to_millis(when) < min(firsts):
            raise TimeTravelError(
                f"no aura table has a state at {format_ms(to_millis(when))}; the oldest snapshot "
                f"is from {format_ms(min(firsts))}"
            )

    con = open_duckdb()
    try:
        if remote is not None:
            remote.prepare(con, str(extension_path("httpfs")))
        con.execute("CREATE SCHEMA aura")
        views = {}
        read_files: set[str] = set()
        for name, state in states.items():
            scope = tenant_scope(state, tenant)
            views[name] = create_view(
                con,
                state,
                when=when,
                ref=ref,
                pin=pins.get(name),
                read_files=read_files,
                scope=scope,
                remote=remote,
            )
            create_macros(con, state, scope)
        create_metadata(con, states, views, tenant=tenant is not None)
        confine(con, allowed, outside(read_files, allowed))
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
