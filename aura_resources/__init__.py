"""Typed Dagster resources for the AURA lakehouse."""

from aura_resources.iceberg import IcebergIOManager, materialize
from aura_resources.lakehouse import (
    DuckDBResource,
    LakehouseResource,
    QdrantResource,
    RedisResource,
)

__all__ = [
    "DuckDBResource",
    "IcebergIOManager",
    "LakehouseResource",
    "QdrantResource",
    "RedisResource",
    "materialize",
]
