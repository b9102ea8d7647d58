"""Resources registered once for the whole code location.

Every ``AURA_*`` variable set where the code location loads is bound to its resource field with
``EnvVar``: the UI shows the variable's name (never a URL's password), and a run's config can
still override a field (e.g. ``lakehouse.config.branch``). Unset variables are left unbound, so
the embedded defaults work with no environment at all (an ``EnvVar`` of an unset variable would
fail every run at launch).
"""

from typing import Any

from dagster import EnvVar

from aura_resources.iceberg import IcebergIOManager
from aura_resources.lakehouse import (
    DuckDBResource,
    LakehouseResource,
    QdrantResource,
    RedisResource,
)
from lakehouse.settings import configured

_LAKEHOUSE_FIELDS = (
    "home",
    "pg_url",
    "catalog_uri",
    "catalog_name",
    "warehouse",
    "branch",
    "redis_url",
    "qdrant_url",
)


def env_bound(fields: dict[str, str]) -> dict[str, Any]:
    """``EnvVar`` for each resource field (key) whose settings variable (value) is set."""
    variables = configured()
    return {field: EnvVar(variables[name]) for field, name in fields.items() if name in variables}


def build_resources() -> dict[str, Any]:
    """The code location's resources, bound to the ``AURA_*`` variables that are set."""
    lakehouse_fields = env_bound({f: f for f in _LAKEHOUSE_FIELDS})
    lakehouse = LakehouseResource(**lakehouse_fields)
    return {
        "lakehouse": lakehouse,
        "redis": RedisResource(**env_bound({"url": "redis_url", "home": "home"})),
        "qdrant": QdrantResource(**env_bound({"url": "qdrant_url", "home": "home"})),
        "duckdb": DuckDBResource(**lakehouse_fields),
        "io_manager": IcebergIOManager(lakehouse=lakehouse),
    }


RESOURCES = build_resources()
