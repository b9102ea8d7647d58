"""Resources registered once for the whole code location."""

from aura_resources.iceberg import IcebergIOManager
from aura_resources.lakehouse import (
    DuckDBResource,
    LakehouseResource,
    QdrantResource,
    RedisResource,
)

lakehouse = LakehouseResource()

RESOURCES = {
    "lakehouse": lakehouse,
    "redis": RedisResource(),
    "qdrant": QdrantResource(),
    "duckdb": DuckDBResource(),
    "io_manager": IcebergIOManager(lakehouse=lakehouse),
}
