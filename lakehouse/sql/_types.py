"""Iceberg types as DuckDB type names (for typed empty views and the Parquet field-id map)."""

from __future__ import annotations

from pyiceberg.schema import Schema
from pyiceberg.types import (
    BinaryType,
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    FixedType,
    FloatType,
    IcebergType,
    IntegerType,
    ListType,
    LongType,
    MapType,
    StringType,
    StructType,
    TimestampNanoType,
    TimestampType,
    TimestamptzNanoType,
    TimestamptzType,
    TimeType,
    UUIDType,
)

from lakehouse.sql._guard import quote_identifier

_PRIMITIVES: dict[type, str] = {
    BooleanType: "BOOLEAN",
    IntegerType: "INTEGER",
    LongType: "BIGINT",
    FloatType: "FLOAT",
    DoubleType: "DOUBLE",
    DateType: "DATE",
    TimeType: "TIME",
    TimestampType: "TIMESTAMP",
    TimestamptzType: "TIMESTAMPTZ",
    TimestampNanoType: "TIMESTAMP_NS",
    StringType: "VARCHAR",
    UUIDType: "UUID",
    FixedType: "BLOB",
    BinaryType: "BLOB",
}


class UnsupportedTypeError(Exception):
    """An Iceberg type with no exact DuckDB equivalent (callers fall back to iceberg_scan)."""


def duckdb_type(iceberg_type: IcebergType) -> str:
    """The DuckDB type name that ``iceberg_scan`` produces for ``iceberg_type``."""
    if isinstance(iceberg_type, DecimalType):
        return f"DECIMAL({iceberg_type.precision}, {iceberg_type.scale})"
    if isinstance(iceberg_type, ListType):
        return f"{duckdb_type(iceberg_type.element_type)}[]"
    if isinstance(iceberg_type, MapType):
        return f"MAP({duckdb_type(iceberg_type.key_type)}, {duckdb_type(iceberg_type.value_type)})"
    if isinstance(iceberg_type, StructType):
        fields = ", ".join(
            f"{quote_identifier(f.name)} {duckdb_type(f.field_type)}" for f in iceberg_type.fields
        )
        return f"STRUCT({fields})"
    if isinstance(iceberg_type, TimestamptzNanoType):
        raise UnsupportedTypeError("DuckDB has no nanosecond TIMESTAMPTZ")
    for python_type, name in _PRIMITIVES.items():
        if isinstance(iceberg_type, python_type):
            return name
    raise UnsupportedTypeError(f"no DuckDB type for Iceberg type {iceberg_type}")


def has_struct(schema: Schema) -> bool:
    """Whether any column, at any depth, is a struct (read through iceberg_scan, by field id)."""

    def nested(t: IcebergType) -> bool:
        if isinstance(t, StructType):
            return True
        if isinstance(t, ListType):
            return nested(t.element_type)
        if isinstance(t, MapType):
            return nested(t.key_type) or nested(t.value_type)
        return False

    return any(nested(f.field_type) for f in schema.fields)
