"""Opening the SQL catalog from several processes at once (lakehouse.table.catalog)."""

from __future__ import annotations

import pytest
from helpers import SERVERS
from pyiceberg.catalog.sql import SqlCatalog
from sqlalchemy.exc import OperationalError

from lakehouse import Settings
from lakehouse.settings import NAMESPACE
from lakehouse.table import catalog

LOST = "table iceberg_tables already exists"


def test_a_namespace_another_process_created_during_the_open_is_not_an_error(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes opening a fresh home both saw no namespace, and both inserted it; the
    second insert's unique violation (found by the two-process memory test) is that race lost,
    not an unavailable catalog."""
    if settings.rest_catalog:
        pytest.skip("a REST catalog answers a second create with NamespaceAlreadyExistsError")
    catalog.open_catalog(settings)  # the namespace exists now
    exists = SqlCatalog.namespace_exists
    checks: list[object] = []

    def racing(self: SqlCatalog, namespace: object) -> bool:
        checks.append(namespace)  # the first is pyiceberg's, as it looked before the other insert
        return len(checks) > 1 and exists(self, namespace)  # type: ignore[arg-type]

    monkeypatch.setattr(SqlCatalog, "namespace_exists", racing)
    catalog._open_catalog.cache_clear()
    opened = catalog.open_catalog(settings)
    assert NAMESPACE in {ns[0] for ns in opened.list_namespaces()}


def test_catalog_tables_another_process_created_during_the_open_are_not_an_error(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both processes found no catalog tables; the other created them first, so this one's
    CREATE failed (found by the two-process memory test on the Redis Cluster pass)."""
    if settings.rest_catalog or SERVERS:
        pytest.skip("a fresh catalog database is the embedded pass's: a server's was made before")
    create = SqlCatalog.create_tables
    calls: list[int] = []

    def lose_the_race(self: SqlCatalog) -> None:
        calls.append(1)
        create(self)  # the winner's tables
        if len(calls) == 1:
            raise OperationalError("CREATE TABLE iceberg_tables", {}, Exception(LOST))

    monkeypatch.setattr(SqlCatalog, "create_tables", lose_the_race)
    catalog._open_catalog.cache_clear()
    opened = catalog.open_catalog(settings)
    assert NAMESPACE in {ns[0] for ns in opened.list_namespaces()}
    assert calls  # the fresh database did take the create path
