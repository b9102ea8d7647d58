"""Access to the Iceberg SQL catalog that holds every aura table."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError

from lakehouse.exceptions import ConfigurationError
from lakehouse.settings import NAMESPACE, Settings, redact_url


def open_catalog(settings: Settings) -> SqlCatalog:
    """Open (and initialise on first use) the SQL catalog named by ``settings``.

    The SQLite catalog file and the file warehouse are created under ``AURA_HOME`` when needed.
    """
    if settings.catalog_uri.startswith("sqlite:///"):
        Path(settings.catalog_uri.removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True
        )
    if settings.warehouse.startswith("file:"):
        Path(urlsplit(settings.warehouse).path).mkdir(parents=True, exist_ok=True)
    try:
        catalog = SqlCatalog(
            settings.catalog_name,
            uri=settings.catalog_uri,
            warehouse=settings.warehouse,
            init_catalog_tables="true",
        )
    except Exception as exc:  # SQLAlchemy raises many driver-specific types
        raise ConfigurationError(
            f"cannot open the Iceberg catalog at {redact_url(settings.catalog_uri)}: "
            f"{type(exc).__name__}. Check AURA_CATALOG_URI / AURA_PG_URL and that the "
            "database is reachable."
        ) from None
    try:
        catalog.create_namespace(NAMESPACE)
    except NamespaceAlreadyExistsError:
        pass
    return catalog
