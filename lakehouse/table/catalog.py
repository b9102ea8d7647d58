"""Access to the Iceberg catalog that holds every aura table: a SQL catalog (SQLite or
PostgreSQL) or a REST catalog (``AURA_CATALOG_URI=http(s)://...``).

Data and metadata files are read and written only through the catalog's FileIO (pyiceberg's
pyarrow file systems), with the S3 endpoint and credentials of :meth:`Settings.s3_properties`,
so a ``file://`` and an ``s3://`` warehouse take the same code path. Secrets go to the clients
only; errors show the catalog URL with passwords redacted and never a credential.

Before a process uses a SQL catalog, :func:`open_catalog` checks that the home is usable
(:func:`check_home`): no restore into it is unfinished (``aura restore`` marks the namespace
before it writes anything and clears the mark when every table is registered), and every table
the catalog names lies under ``AURA_WAREHOUSE`` (a copied AURA_HOME's catalog still names the
original's files, so its writes would land in the original's warehouse). A REST catalog is
checked for an unfinished restore only: it is not part of an AURA_HOME and its server decides
where tables lie.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from urllib.parse import urlsplit

from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import IcebergTables, SqlCatalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError
from pyiceberg.io import FileIO, load_file_io
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, IntegrityError
from sqlalchemy.orm import Session

from lakehouse.exceptions import HomeStateError, StoreUnavailableError
from lakehouse.settings import NAMESPACE, Settings, redact_text, redact_url
from lakehouse.table.paths import normalise

# A catalog server that does not answer within this many seconds is reported as unreachable.
CONNECT_TIMEOUT_S = 5
# No catalog statement (metadata reads and pointer swaps) may run longer than this.
STATEMENT_TIMEOUT_MS = 60_000


RESTORE_MARKER = "aura.restore-in-progress"
"""Namespace property ``aura restore`` sets before it writes and removes when it has finished."""

_CHECKED: set[tuple[str, str, str]] = set()  # catalogs this process found usable


def open_catalog(settings: Settings, *, check: bool = True) -> Catalog:
    """Open (and initialise on first use) the catalog named by ``settings``.

    The SQLite catalog file and the file warehouse are created under ``AURA_HOME`` when needed.
    Catalogs are cached per process; SQL catalogs share one connection pool per database URL.
    The first open of a SQL catalog in a process checks the home (:func:`check_home`);
    ``check=False`` is for ``aura restore`` alone, which repairs what the check refuses.

    Raises:
        StoreUnavailableError: the catalog (or, for a REST catalog, its token endpoint) does
            not answer or refuses the credential.
        HomeStateError: a restore into this SQL catalog did not finish, or the catalog names
            tables outside ``AURA_WAREHOUSE``.
    """
    io = tuple(sorted(settings.s3_properties().items())) if _needs_s3(settings) else ()
    key = (with_timeouts(settings.catalog_uri), settings.catalog_name, settings.warehouse)
    if settings.rest_catalog:
        from lakehouse.table.rest import open_rest_catalog

        rest = open_rest_catalog(
            settings.catalog_uri,
            settings.catalog_name,
            tables_warehouse(settings),
            settings.catalog_credential,
            io,
        )
        if check and key not in _CHECKED:
            check_restore_marker(rest, settings)
            _CHECKED.add(key)
        return rest
    catalog = _open_catalog(*key, io)
    if check and key not in _CHECKED:
        check_home(catalog, settings)
        _CHECKED.add(key)
    return catalog


def forget_checks(settings: Settings) -> None:
    """Make the next :func:`open_catalog` of ``settings`` check the home again."""
    _CHECKED.discard(
        (with_timeouts(settings.catalog_uri), settings.catalog_name, settings.warehouse)
    )


def check_home(catalog: SqlCatalog, settings: Settings) -> None:
    """Refuse a home whose restore did not finish, or whose tables lie in another warehouse.

    Raises:
        HomeStateError: what is wrong and the command that repairs it.
    """
    check_restore_marker(catalog, settings)
    query = (
        select(IcebergTables.table_name, IcebergTables.metadata_location)
        .where(IcebergTables.catalog_name == catalog.name)
        .where(IcebergTables.table_namespace == NAMESPACE)
    )
    with Session(catalog.engine) as session:
        rows = session.execute(query).all()
    root = normalise(settings.warehouse) + "/"
    foreign = sorted(
        (name, location)
        for name, location in rows
        if location and not normalise(location).startswith(root)
    )
    if foreign:
        name, location = foreign[0]
        raise HomeStateError(
            f"the catalog {settings.catalog_name!r} at {redact_url(settings.catalog_uri)} keeps "
            f"{len(foreign)} table(s) outside AURA_WAREHOUSE {settings.warehouse} (aura.{name} "
            f"at {location}); writes would land in that other warehouse. A copied AURA_HOME "
            "still names the original's files: copy a home with `aura backup DEST` and `aura "
            "restore DEST --home NEW` instead, or set AURA_WAREHOUSE to the warehouse the "
            "catalog names"
        )


def check_restore_marker(catalog: Catalog, settings: Settings) -> None:
    """Refuse a catalog (SQL or REST) into which a restore started and did not finish.

    Raises:
        HomeStateError: what is wrong and the command that repairs it.
    """
    marker = catalog.load_namespace_properties(NAMESPACE).get(RESTORE_MARKER)
    if marker is None:
        return
    try:
        found = json.loads(marker)
        source, started = found["source"], found["started_at"]
    except (ValueError, KeyError, TypeError):
        source, started = "BACKUP", "an unknown time"
    where, again = f"AURA_HOME {settings.home}", "again"
    if settings.rest_catalog:
        where = (
            f"the REST catalog {redact_url(settings.catalog_uri)} (warehouse "
            f"{tables_warehouse(settings)})"
        )
        again = "again with the same AURA_CATALOG_URI and AURA_CATALOG_WAREHOUSE"
    raise HomeStateError(
        f"a restore from {source} into {where} started at {started} and did not finish; its "
        f"tables are incomplete. Run `aura restore {source} --home {settings.home}` {again}: "
        "it starts over and finishes"
    )


def tables_warehouse(settings: Settings) -> str:
    """Where the catalog keeps the tables: the REST catalog's own warehouse when it has one
    (``AURA_CATALOG_WAREHOUSE``), else ``AURA_WAREHOUSE``."""
    if settings.rest_catalog and settings.catalog_warehouse:
        return settings.catalog_warehouse
    return settings.warehouse


def warehouse_io(settings: Settings) -> FileIO:
    """The file-system layer of the warehouse (pyiceberg's FileIO for ``file:`` and ``s3://``),
    configured with the S3 endpoint and credentials."""
    return load_file_io(warehouse_properties(settings), settings.warehouse)


def warehouse_properties(settings: Settings) -> dict[str, str]:
    """FileIO properties of the warehouse (the S3 endpoint and keys when it is in a bucket), for
    pyiceberg and :mod:`lakehouse.table.storage`. Holds the secret key: never log them."""
    return settings.s3_properties() if _needs_s3(settings) else {}


def close_catalog(catalog: Catalog) -> None:
    """Release a catalog's connections (a SQL catalog's pool; a REST catalog holds none)."""
    if isinstance(catalog, SqlCatalog):
        catalog.engine.dispose()


def _needs_s3(settings: Settings) -> bool:
    return settings.object_store or settings.rest_catalog or bool(settings.s3_endpoint)


def with_timeouts(uri: str) -> str:
    """A PostgreSQL URL with a connect timeout and a statement timeout unless it sets them.

    A server that accepts the connection but never answers then fails within
    :data:`CONNECT_TIMEOUT_S` seconds instead of hanging; other URLs are returned unchanged.
    """
    if not uri.startswith(("postgresql", "postgres:")):
        return uri
    try:
        url = make_url(uri)
    except ArgumentError:
        return uri  # malformed: opening it fails with a clear error later
    query = dict(url.query)
    query.setdefault("connect_timeout", str(CONNECT_TIMEOUT_S))
    if "options" not in query:
        query["options"] = f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"
    return url.set(query=query).render_as_string(hide_password=False)


@functools.cache
def _engine(uri: str) -> Engine:
    return create_engine(uri, pool_pre_ping=True)


@functools.cache
def _open_catalog(
    uri: str, name: str, warehouse: str, io: tuple[tuple[str, str], ...] = ()
) -> SqlCatalog:
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if warehouse.startswith("file:"):
        Path(urlsplit(warehouse).path).mkdir(parents=True, exist_ok=True)
    try:
        with _engine(uri).connect():  # one attempt, bounded by connect_timeout, before pyiceberg's
            pass
        catalog = _sql_catalog(name, uri, warehouse, io)
    except Exception as exc:  # SQLAlchemy raises many driver-specific types
        raise StoreUnavailableError(
            f"cannot open the Iceberg catalog at {redact_url(uri)}: {type(exc).__name__} "
            f"({_reason(exc)}). Check AURA_CATALOG_URI / AURA_PG_URL and that the database is "
            "reachable."
        ) from None
    catalog.engine.dispose()  # pyiceberg made a private engine; use the shared pool instead
    catalog.engine = _engine(uri)
    try:
        catalog.create_namespace(NAMESPACE)
    except NamespaceAlreadyExistsError:
        pass
    except IntegrityError:  # another process inserted it between pyiceberg's check and insert
        if not catalog.namespace_exists(NAMESPACE):
            raise
    return catalog


def _sql_catalog(
    name: str, uri: str, warehouse: str, io: tuple[tuple[str, str], ...]
) -> SqlCatalog:
    """pyiceberg's SQL catalog, creating its own tables in a fresh database.

    Two processes opening a fresh home at once both find no catalog tables and both create
    them; the loser's CREATE fails with "already exists", and opening again finds the winner's.
    """

    def sql_catalog() -> SqlCatalog:
        return SqlCatalog(
            name, uri=uri, warehouse=warehouse, init_catalog_tables="true", **dict(io)
        )

    try:
        return sql_catalog()
    except DatabaseError as exc:
        if "already exists" not in str(exc) and "duplicate key" not in str(exc):
            raise
    return sql_catalog()


def _reason(exc: Exception) -> str:
    """The first line of the driver's own message (passwords redacted), for the error text."""
    origin = getattr(exc, "orig", None) or exc
    lines = str(origin).strip().splitlines()
    return redact_text(lines[0]) if lines else type(origin).__name__
