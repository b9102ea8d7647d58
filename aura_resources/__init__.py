"""Typed Dagster resources for the AURA lakehouse, and the Iceberg IO manager."""

from aura_resources.iceberg import IcebergIOManager
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
]
