"""The asset pair every stream-ingesting domain declares: its table and its dead letters.

A stream ingest is one multi-asset of two specs (the day's published rows and the dead letters
of the entries that broke the event contract), each backed by an aura Iceberg table, daily
partitioned, sharing one code version. :func:`stream_ingest_specs` declares both, so routing,
topology and memory (and the next stream domain) state only what differs.
"""

from dagster import AssetKey, AssetSpec

from aura_assets.partitions import DAILY

__all__ = ["stream_ingest_specs"]


def stream_ingest_specs(
    table: AssetKey,
    rejected: AssetKey,
    *,
    description: str,
    rejected_description: str,
    code_version: str,
    group: str,
    owner: str,
) -> list[AssetSpec]:
    """The specs of ``table`` (read from Redis) and of its dead-letter table ``rejected``."""

    def spec(key: AssetKey, text: str, kinds: set[str]) -> AssetSpec:
        return AssetSpec(
            key,
            description=text,
            code_version=code_version,
            partitions_def=DAILY,
            group_name=group,
            owners=[owner],
            kinds=kinds,
            metadata={"iceberg/table": f"aura.{key.path[-1]}"},
        )

    return [
        spec(table, description, {"iceberg", "redis"}),
        spec(rejected, rejected_description, {"iceberg"}),
    ]
