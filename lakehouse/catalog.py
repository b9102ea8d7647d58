"""Access to the Iceberg SQL catalog that holds every aura table."""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from urllib.parse import urlsplit

from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError
from sqlalchemy import Engine, create_engine

from lakehouse.exceptions import ConfigurationError
from lakehouse.settings import NAMESPACE, Settings, redact_url


def open_catalog(settings: Settings) -> SqlCatalog:
    """Open (and initialise on first use) the SQL catalog named by ``settings``.

    The SQLite catalog file and the file warehouse are created under ``AURA_HOME`` when needed.
    Catalogs are cached per process and share one connection pool per database URL.
    """
    return _open_catalog(settings.catalog_uri, settings.catalog_name, settings.warehouse)


@functools.cache
def _engine(uri: str) -> Engine:
    return create_engine(uri, pool_pre_ping=True)


@functools.cache
def _open_catalog(uri: str, name: str, warehouse: str) -> SqlCatalog:
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if warehouse.startswith("file:"):
        Path(urlsplit(warehouse).path).mkdir(parents=True, exist_ok=True)
    try:
        catalog = SqlCatalog(name, uri=uri, warehouse=warehouse, init_catalog_tables="true")
    except Exception as exc:  # SQLAlchemy raises many driver-specific types
        raise ConfigurationError(
            f"cannot open the Iceberg catalog at {redact_url(uri)}: {type(exc).__name__}. "
            "Check AURA_CATALOG_URI / AURA_PG_URL and that the database is reachable."
        ) from None
    catalog.engine.dispose()  # pyiceberg made a private engine; use the shared pool instead
    catalog.engine = _engine(uri)
    with contextlib.suppress(NamespaceAlreadyExistsError):
        catalog.create_namespace(NAMESPACE)
    return catalog
