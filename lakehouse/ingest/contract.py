"""What a stream domain states to be ingested: its :class:`StreamContract`.

:func:`lakehouse.ingest.stream_day.ingest_day` is the one ingest mechanism (read, parse, split
by day, key check, write-audit-publish, dead letters, settle). A domain gives it only what is
its own:

* the stream and how to tell an entry's day without claiming it (for sensors and for waiting on
  entries another run holds);
* the target table and its dead-letter table (``<x>_rejected``, :func:`~lakehouse.ingest.
  streams.rejected_table_spec`);
* the parser of one payload (raises :class:`~lakehouse.exceptions.InvalidEvent` with the
  reason), and the Arrow conversion of parsed rows;
* the columns whose equality makes a repeated key a replay rather than a conflicting duplicate
  (:func:`lakehouse.table.keys.split_known`; the key is the table's);
* optionally a :class:`RowHook`: memory's tombstone filter drops ``store`` events of erased
  memories (acknowledged, never written) and erases again what an erase racing the ingestion
  let through.

Invariant the mechanism keeps for every contract: each entry read ends in the table (new, or a
replay of an equal stored row), in the dead-letter table with a reason, handed back for a later
run (another day's, or a failed audit's), or dropped by the hook, which the report counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

from lakehouse.ingest.guards import MAX_EVENT_BYTES
from lakehouse.ingest.streams import GROUP, DeadLetter, Entry, EventStream, StreamConsumer
from lakehouse.stores import RedisClient
from lakehouse.table.registry import TableSpec

if TYPE_CHECKING:
    from lakehouse.core import Lakehouse

__all__ = ["EventParser", "RowHook", "StreamContract"]

Row = dict[str, Any]


class EventParser(Protocol):
    """A domain's parser of one payload: a row, or :class:`~lakehouse.exceptions.InvalidEvent`.

    ``now`` is the ingestion time (the end of the accepted time window).
    """

    def __call__(self, raw: bytes | str, *, now: datetime | None = None) -> Row: ...


class RowHook(Protocol):
    """A domain's say over rows that passed the contract (memory: its erase tombstones)."""

    def drop(self, client: RedisClient, rows: Sequence[Row]) -> set[str]:
        """Stream ids of ``rows`` to acknowledge without writing them."""

    def after_publish(self, lh: Lakehouse, client: RedisClient, rows: Sequence[Row]) -> int:
        """Called once ``rows`` are published; returns how many it removed again."""


@dataclass(frozen=True)
class StreamContract:
    """One stream domain's part of the ingestion (see the module docstring).

    Args:
        stream: the Redis stream key.
        table: the table the day's rows go to; its one-column key is unique across every day.
        rejected: the dead-letter table.
        parse: one payload to a row of ``table`` (without ``stream_id``/``ingested_at``), given
            the ingestion time as ``now``; raises :class:`~lakehouse.exceptions.InvalidEvent`.
        to_arrow: parsed rows (with ``stream_id``) and the ingestion time to an Arrow table in
            ``table``'s schema.
        compare: the columns that make a repeated key a replay (equal) or a conflict.
        event_day: a payload's day, None when malformed; never raises (default: ``parse``).
        max_bytes: the largest payload accepted.
        hook: optional :class:`RowHook`.
        prepare: optional setup before the first write (e.g. table properties).
        bind: optional parser bound to the run's home and Redis (memory: its keys and erase
            tombstones); it replaces ``parse`` during ingestion.
        dead_letters: optional reshaping of the run's dead letters given the entries read
            (memory: a cut payload keeps the tenants it names).
    """

    stream: str
    table: TableSpec
    rejected: TableSpec
    parse: EventParser
    to_arrow: Callable[[list[Row], datetime], pa.Table]
    compare: tuple[str, ...]
    event_day: Callable[[bytes], date | None] | None = None
    max_bytes: int = MAX_EVENT_BYTES
    hook: RowHook | None = None
    prepare: Callable[[Lakehouse], None] | None = None
    bind: Callable[[Lakehouse, RedisClient], EventParser] | None = None
    dead_letters: Callable[[Sequence[Entry], list[DeadLetter]], list[DeadLetter]] | None = None
    group: str = GROUP

    def __post_init__(self) -> None:
        if len(self.table.key) != 1 or self.table.time_column is None:
            raise ValueError(
                f"a stream contract needs a table with a one-column key and a time column; "
                f"{self.table.name} has key {self.table.key} and time column "
                f"{self.table.time_column}"
            )

    @property
    def events(self) -> EventStream:
        """The stream as its sensors and readers see it."""
        return EventStream(self.stream, self.event_day or self._parsed_day, self.group)

    def day_of(self, row: Row) -> date:
        """The day partition of a parsed row."""
        ts: datetime = row[self.table.time_column or ""]
        return ts.date()

    def consumer(self, client: RedisClient) -> StreamConsumer:
        """A fresh consumer of the stream in the ingestion group (each run is its own)."""
        return self.events.consumer(client)

    def backlog(self, client: RedisClient) -> int:
        """Entries not yet acknowledged by the ingestion group."""
        return self.events.backlog(client)

    def backlog_days(self, client: RedisClient) -> set[date]:
        """Days of the unacknowledged entries, without claiming them (for sensors)."""
        return self.events.backlog_days(client)

    def _parsed_day(self, payload: bytes) -> date | None:
        try:
            return self.day_of(self.parse(payload, now=datetime.now(UTC)))
        except Exception:  # a sensor never fails on stream content
            return None
