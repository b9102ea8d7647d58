"""Memory event ingestion: the stream's events of one day into ``memory_events``, audited.

The memory stream's :data:`CONTRACT` is all this domain adds to the one ingest path
(:func:`lakehouse.ingest.stream_day.ingest_day`: read, parse, split by day, key check,
write-audit-publish, dead letters in ``memory_events_rejected``, settle, wait for entries another
run holds). An ``event_id`` is unique across every day: an event stored before with the same
content is a replay, with other content a conflicting duplicate (a dead letter; the first
version is kept).

Its parser is bound to the home (:func:`~lakehouse.memory.events.bound_parser`: sealed payloads
must open with a configured key, a ``forget`` needs its recorded erase), and a dead letter keeps
every tenant its payload names (:func:`~lakehouse.memory.events.keep_tenants`). Its hook is the
erase: ``store`` events of an erased memory (:mod:`lakehouse.memory.tombstones`)
are acknowledged and never written; one erased while this ingestion ran is erased from
``memory_events`` again after the publish, so an erase racing ingestion never leaves the memory
behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from functools import partial
from typing import Any

import pyarrow as pa
from pyiceberg.expressions import In

from lakehouse.core import Lakehouse
from lakehouse.ingest import stream_day
from lakehouse.ingest.contract import StreamContract
from lakehouse.ingest.stream_day import IngestReport
from lakehouse.memory import tombstones
from lakehouse.memory.cold import erase_rows
from lakehouse.memory.crypto import MemoryCipher
from lakehouse.memory.events import (
    CONTENT_FIELDS,
    STREAM,
    bound_parser,
    event_day,
    events_to_arrow,
    keep_tenants,
    parse_event,
)
from lakehouse.memory.tables import MEMORY_EVENTS, MEMORY_EVENTS_REJECTED, ensure_tables
from lakehouse.stores import RedisClient
from lakehouse.table.writer import day_filter

__all__ = [
    "CONTRACT",
    "IngestReport",
    "backlog_days",
    "consumer",
    "ingest_memory_events",
    "read_day_events",
    "stream_backlog",
]


class ErasedMemories:
    """The contract's hook: memories erased before (or while) their events are ingested."""

    def drop(self, client: RedisClient, rows: Sequence[dict[str, Any]]) -> set[str]:
        """Stream ids of ``store`` events whose memory a tombstone covers."""
        buried = _erased(client, rows)
        return {r["stream_id"] for r in rows if r["op"] == "store" and r["memory_id"] in buried}

    def after_publish(
        self, lh: Lakehouse, client: RedisClient, rows: Sequence[dict[str, Any]]
    ) -> int:
        """Erase again the published events of memories erased while this ingestion wrote."""
        late = _erased(client, rows)
        if late:
            erase_rows(lh.table(MEMORY_EVENTS.name), In("memory_id", sorted(late)))
        return len(late)


def _erased(client: RedisClient, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Memory ids of ``store`` rows that a tombstone covers."""
    stores = [
        (r["tenant_id"], r["memory_id"], round(r["ts"].timestamp() * 1000))
        for r in rows
        if r["op"] == "store" and r["memory_id"]
    ]
    return tombstones.erased(client, stores)


CONTRACT = StreamContract(
    stream=STREAM,
    table=MEMORY_EVENTS,
    rejected=MEMORY_EVENTS_REJECTED,
    parse=parse_event,
    to_arrow=events_to_arrow,
    compare=CONTENT_FIELDS,
    event_day=event_day,
    hook=ErasedMemories(),
    prepare=ensure_tables,
    bind=lambda lh, client: bound_parser(
        MemoryCipher.from_settings(lh.settings), partial(tombstones.recorded, client)
    ),
    dead_letters=keep_tenants,
)
"""The memory stream, its tables, its event contract and its erase hook."""

consumer = CONTRACT.consumer
stream_backlog = CONTRACT.backlog
backlog_days = CONTRACT.backlog_days


ingest_memory_events = stream_day.ingest_of(CONTRACT)
"""Ingest the stream's entries of a day (``lh, client, day, *, audit, ...``); see
:func:`lakehouse.ingest.stream_day.ingest_day`."""


def read_day_events(lh: Lakehouse, day: date, branch: str | None = None) -> pa.Table:
    """The ``memory_events`` rows of ``day`` on ``branch`` (default the settings' branch)."""
    table, head = lh.table_at_head(MEMORY_EVENTS.name, branch)
    if head is None:
        return MEMORY_EVENTS.arrow_schema.empty_table()
    return table.scan(row_filter=day_filter(MEMORY_EVENTS, day), snapshot_id=head).to_arrow()
