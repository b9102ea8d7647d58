"""Store clients of the library (no Dagster): Qdrant beside Redis, and Postgres URL forms."""

from __future__ import annotations

import pytest
from helpers import dead_port

from lakehouse import Settings
from lakehouse.exceptions import ConfigurationError, StoreUnavailableError
from lakehouse.settings import libpq_url, postgres_urls, sqlalchemy_url
from lakehouse.stores import open_qdrant, open_redis


def test_every_postgres_url_form_from_any_form() -> None:
    for given in (
        "postgres://aura:pw@db:5432/aura",
        "postgresql://aura:pw@db:5432/aura",
        "postgresql+psycopg://aura:pw@db:5432/aura",
        "postgresql+psycopg2://aura:pw@db:5432/aura",
    ):
        urls = postgres_urls(given)
        assert urls.libpq == "postgresql://aura:pw@db:5432/aura"
        assert urls.sqlalchemy == "postgresql+psycopg://aura:pw@db:5432/aura"
        assert urls.psycopg2 == "postgresql+psycopg2://aura:pw@db:5432/aura"
    assert sqlalchemy_url("sqlite:////x/catalog.db") == "sqlite:////x/catalog.db"
    assert libpq_url("postgresql+psycopg://h/db") == "postgresql://h/db"
    with pytest.raises(ConfigurationError, match="not a PostgreSQL URL") as err:
        postgres_urls("mysql://u:secret@h/db")
    assert "secret" not in str(err.value)


def test_without_a_qdrant_url_there_is_no_client_and_the_error_names_the_engine(
    settings: Settings,
) -> None:
    with pytest.raises(ConfigurationError, match="open_store"):
        open_qdrant(settings.with_overrides(qdrant_url=None))


def test_an_unreachable_qdrant_url_says_what_to_do(settings: Settings) -> None:
    bad = settings.with_overrides(qdrant_url="http://127.0.0.1:9")
    with pytest.raises(StoreUnavailableError, match="unset AURA_QDRANT_URL"):
        open_qdrant(bad)


def test_an_unreachable_redis_cluster_is_named_without_its_password(settings: Settings) -> None:
    url = f"redis+cluster://aura:s3cretpw@127.0.0.1:{dead_port()}"
    with pytest.raises(StoreUnavailableError, match="cannot reach the Redis Cluster") as err:
        open_redis(settings.with_overrides(redis_url=url))
    assert "s3cretpw" not in str(err.value) and "AURA_REDIS_URL" in str(err.value)
