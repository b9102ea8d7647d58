"""What every stream-ingesting domain declares once: its asset pair, its sensor, its metadata.

A stream ingest is one multi-asset of two specs (the day's published rows and the dead letters
of the entries that broke the event contract), each backed by an aura Iceberg table, daily
partitioned, sharing one code version (:func:`stream_ingest_specs`); a sensor that requests one
run per day with unacknowledged entries (:func:`stream_sensor`); and the run's figures from the
library's one :class:`~lakehouse.ingest.stream_day.IngestReport` (:func:`ingest_metadata`).
Routing, topology and memory (and the next stream domain) state only what differs: their
:class:`~lakehouse.ingest.contract.StreamContract`.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from dagster import (
    AssetKey,
    AssetSpec,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from aura_assets.partitions import DAILY
from aura_resources.lakehouse import RedisResource
from lakehouse.ingest.contract import StreamContract
from lakehouse.ingest.stream_day import IngestReport

__all__ = [
    "ingest_log_line",
    "ingest_metadata",
    "last_entry_id",
    "stream_ingest_specs",
    "stream_sensor",
]


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


def stream_sensor(
    name: str,
    contract: StreamContract,
    job: Any,
    *,
    minimum_interval_seconds: int = 30,
) -> SensorDefinition:
    """A sensor requesting one run of ``job`` (a ``define_asset_job``) per day with
    unacknowledged entries on the stream.

    The run key is the day and the stream's last entry id, so a request repeated while nothing
    new arrived is a no-op. When only malformed entries wait (they name no day), today's run is
    requested: any day's run records them as dead letters.
    """

    @sensor(
        name=name,
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        description=f"One {job.name} run per day with unacknowledged entries on {contract.stream}.",
    )
    def _stream_sensor(
        context: SensorEvaluationContext, redis: RedisResource
    ) -> SkipReason | SensorResult:
        client = redis.client()
        if contract.backlog(client) == 0:
            return SkipReason(f"no unacknowledged entries on {contract.stream}")
        last = last_entry_id(client, contract.stream)
        days = sorted(contract.backlog_days(client)) or [datetime.now(UTC).date()]
        return SensorResult(
            run_requests=[
                RunRequest(run_key=f"{day}@{last}", partition_key=day.isoformat()) for day in days
            ]
        )

    return _stream_sensor


def last_entry_id(client: Any, stream: str) -> str:
    """The stream's last entry id (``0-0`` while it does not exist): a run key's suffix."""
    if not client.exists(stream):
        return "0-0"
    last = client.xinfo_stream(stream)["last-generated-id"]
    return last.decode() if isinstance(last, bytes) else str(last)


def ingest_metadata(reports: Sequence[IngestReport], noun: str) -> dict[str, Any]:
    """Run metadata of one or more days' ingestion (``noun`` names the rows: ``decisions``)."""
    return {
        "stream/entries_read": sum(r.read for r in reports),
        f"stream/new_{noun}": sum(r.written for r in reports),
        "stream/duplicates": sum(r.duplicates for r in reports),
        "stream/rejected": sum(r.rejected for r in reports),
        "stream/conflicts": sum(r.conflicts for r in reports),
        "stream/deferred_other_days": reports[-1].deferred,
        f"stream/acknowledged_{noun}": sum(r.acknowledged for r in reports),
        "stream/held_elsewhere": reports[-1].held_elsewhere,
    }


def ingest_log_line(report: IngestReport, noun: str) -> str:
    """One log line of a day's ingestion."""
    r = report
    return (
        f"{r.day}: read {r.read} entries, {r.written} new {noun}, {r.duplicates} duplicates, "
        f"{r.rejected} rejected ({r.conflicts} conflicting duplicates), {r.deferred} of other "
        f"days left pending"
        + (f", {r.dropped} dropped by the contract" if r.dropped else "")
        + (f", {r.held_elsewhere} still held by another run" if r.held_elsewhere else "")
        + ("" if r.published else f"; audit FAILED, {noun} left pending")
    )
