"""Memory event ingestion: the stream's events of one day into ``memory_events``, audited.

:func:`ingest_memory_events` is the one ingest path, used by the Dagster asset and by any
Python program (the same steps as routing's, over the shared mechanisms):

1. read every unacknowledged entry of ``aura:events:memory`` (a
   :class:`~lakehouse.ingest.streams.StreamConsumer`);
2. write-audit-publish the day (:mod:`lakehouse.publish.wap`): merge the day's events into the
   partition keyed on ``event_id`` (:func:`lakehouse.table.writer.merge_day`) on an audit branch,
   run
   the given audit, publish only when it passes;
3. record malformed entries in ``memory_events_rejected`` (:func:`~lakehouse.ingest.streams.
   record_dead_letters`);
4. acknowledge dead letters, and the day's events once published; hand events of other days
   (and of a failed audit) back to the group.

``store`` events of an erased memory (:mod:`lakehouse.memory.tombstones`) are acknowledged and
never written; one erased while this ingestion ran is erased from ``memory_events`` again after
the publish, so an erase racing ingestion never leaves the memory behind.

A crash before the acknowledgement replays the entries; the keyed merge absorbs the replay, so
each event is in the table exactly once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

import pyarrow as pa
import redis
from pyiceberg.expressions import In

from lakehouse.core import Lakehouse
from lakehouse.ingest.stream_day import publish_day
from lakehouse.ingest.streams import EventStream, StreamConsumer
from lakehouse.memory import tombstones
from lakehouse.memory.cold import erase_rows
from lakehouse.memory.crypto import MemoryCipher
from lakehouse.memory.events import STREAM, event_day, events_to_arrow, parse_entries
from lakehouse.memory.tables import MEMORY_EVENTS, MEMORY_EVENTS_REJECTED, ensure_tables
from lakehouse.publish.wap import Audit, WapResult
from lakehouse.table.writer import Lineage, WriteResult, day_filter

log = logging.getLogger(__name__)


EVENTS = EventStream(STREAM, event_day)
"""The memory stream; its consumer, backlog and backlog days below serve ingest and sensors."""
consumer = EVENTS.consumer
stream_backlog = EVENTS.backlog
backlog_days = EVENTS.backlog_days


@dataclass(frozen=True)
class EventIngestReport:
    """What one ingestion of ``memory_events`` did."""

    day: date
    read: int
    written: int
    duplicates: int
    rejected: int
    deferred: int
    erased: int
    published: bool
    wap: WapResult | None
    rejected_write: WriteResult | None
    events: pa.Table

    @property
    def write(self) -> WriteResult | None:
        """The published write (None when nothing new was written)."""
        return self.wap.write if self.wap is not None and self.wap.published else None


def ingest_memory_events(
    lh: Lakehouse,
    client: redis.Redis,
    day: date,
    *,
    audit: Audit,
    lineage: Lineage | None = None,
    branch: str | None = None,
    reader: StreamConsumer | None = None,
) -> EventIngestReport:
    """Ingest the stream's events of ``day`` into ``memory_events`` exactly once.

    Args:
        lh: the lakehouse.
        client: Redis holding the stream.
        day: the day partition to ingest.
        audit: judges the written day before it is published (``quality.audit.gx_audit``).
        lineage: who writes (default: asset ``memory_events``, partition ``day``).
        branch: the branch to publish into (default ``lh.settings.branch``).
        reader: the stream consumer (default a fresh one of the ingestion group).
    """
    ensure_tables(lh)
    lineage = lineage or Lineage(asset=MEMORY_EVENTS.name, partition=day.isoformat())
    branch = branch or lh.settings.branch
    reader = reader or consumer(client)
    entries = list(reader.read_unacked())
    cipher = MemoryCipher.from_settings(lh.settings)  # opens sealed payloads to check them
    parsed = parse_entries(entries, datetime.now(UTC), cipher, partial(tombstones.recorded, client))
    todays = [r for r in parsed.rows if r["ts"].date() == day]
    buried = _erased(client, todays)
    gone = [r for r in todays if r["op"] == "store" and r["memory_id"] in buried]
    dropped = [r["stream_id"] for r in gone]
    todays = [r for r in todays if not (r["op"] == "store" and r["memory_id"] in buried)]
    deferred = [r["stream_id"] for r in parsed.rows if r["ts"].date() != day]
    events = events_to_arrow(todays)
    day_result = publish_day(
        lh,
        MEMORY_EVENTS,
        MEMORY_EVENTS_REJECTED,
        STREAM,
        events,
        parsed.rejections,
        day,
        audit=audit,
        lineage=lineage,
        branch=branch,
    )
    published, wap, rejected_write = day_result.published, day_result.wap, day_result.rejected_write
    ids = [r["stream_id"] for r in todays]
    day_result.settle(
        reader, dead=parsed.rejections, day_ids=ids, deferred_ids=deferred, also_ack=dropped
    )
    late = _erased(client, todays) if published else set()
    if late:  # erased while this ingestion wrote them: erase the copies it published
        erase_rows(lh.table(MEMORY_EVENTS.name), In("memory_id", sorted(late)))
    added = day_result.merge.added
    report = EventIngestReport(
        day=day,
        read=len(entries),
        written=added if published else 0,
        duplicates=len(todays) - added,
        rejected=len(parsed.rejections),
        deferred=len(deferred),
        erased=len(dropped) + len(late),
        published=published,
        wap=wap,
        rejected_write=rejected_write,
        events=events,
    )
    log.info(
        "memory ingest %s: read %d, wrote %d, %d duplicates, %d rejected, %d deferred",
        day,
        report.read,
        report.written,
        report.duplicates,
        report.rejected,
        report.deferred,
    )
    return report


def _erased(client: redis.Redis, rows: list[dict[str, Any]]) -> set[str]:
    """Memory ids of ``store`` rows that a tombstone covers."""
    stores = [
        (r["tenant_id"], r["memory_id"], round(r["ts"].timestamp() * 1000))
        for r in rows
        if r["op"] == "store" and r["memory_id"]
    ]
    return tombstones.erased(client, stores)


def read_day_events(lh: Lakehouse, day: date, branch: str | None = None) -> pa.Table:
    """The ``memory_events`` rows of ``day`` on ``branch`` (default the settings' branch)."""
    table = lh.table(MEMORY_EVENTS.name)
    head = lh.head(MEMORY_EVENTS.name, branch)
    if head is None:
        return MEMORY_EVENTS.arrow_schema.empty_table()
    return table.scan(row_filter=day_filter(MEMORY_EVENTS, day), snapshot_id=head).to_arrow()
