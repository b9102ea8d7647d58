"""The asset pair every stream-ingesting domain declares: its table and its dead letters.

A stream ingest is one multi-asset of two specs (the day's published rows and the dead letters
of the entries that broke the event contract), each backed by an aura Iceberg table, daily
partitioned, sharing one code version. :func:`stream_ingest_specs` declares both, so routing,
topology and memory (and the next stream domain) state only what differs.

:func:`dead_letter_check` is the warning each ingest adds: the run's dead-letter share against
the usual share of earlier runs of other days (``quality.checks.dead_letter_result``).
"""

from typing import Any

from dagster import AssetCheckResult, AssetKey, AssetRecordsFilter, AssetSpec

from aura_assets.partitions import DAILY
from quality.checks import dead_letter_result

__all__ = ["dead_letter_check", "stream_ingest_specs"]

READ = "stream/entries_read"
REJECTED = "stream/rejected"
HISTORY_RUNS = 30
"""How many earlier materialisations (other days) make the usual level."""


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


def dead_letter_check(context: Any, key: AssetKey, read: int, rejected: int) -> AssetCheckResult:
    """The dead-letter check of ``key``'s run: ``rejected`` of ``read`` entries against the
    shares recorded (metadata ``stream/entries_read`` and ``stream/rejected``) by the latest
    earlier run of each other day."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key), limit=HISTORY_RUNS * 3, ascending=False
    ).records
    shares: dict[str, float] = {}
    for record in records:
        event = record.asset_materialization
        if event is None or event.partition in (None, context.partition_key):
            continue
        if event.partition in shares:  # the latest run of each day only
            continue
        meta = event.metadata
        seen = meta.get(READ)
        dead = meta.get(REJECTED)
        if seen is None or dead is None or not seen.value:
            continue
        shares[event.partition] = float(dead.value) / float(seen.value)
        if len(shares) == HISTORY_RUNS:
            break
    return dead_letter_result(key, read, rejected, shares.values())
