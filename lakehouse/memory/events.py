"""The memory event contract: one stream entry per memory write, and its validation.

Every ``store``, ``forget`` and ``forget_tenant`` appends one entry to ``aura:events:memory``
whose field ``data`` holds a JSON object with ``event_id``, ``ts_ms``, ``tenant_id`` and ``op``
(plus the memory's fields for a store). An entry that breaks the contract becomes a
:class:`~lakehouse.ingest.streams.DeadLetter` whose reason names the problem.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pyarrow as pa

from lakehouse.exceptions import ValidationError
from lakehouse.ingest import guards as v
from lakehouse.ingest.streams import (
    DeadLetter,
    Entry,
    Parsed,
    parse_stream_entries,
    to_arrow_or_dead_letters,
)
from lakehouse.memory.model import check_tenant
from lakehouse.memory.tables import MEMORY_EVENTS

STREAM = "aura:events:memory"
OPS = ("store", "forget", "forget_tenant")
_REQUIRED = ("event_id", "ts_ms", "tenant_id", "op")


EventError = v.InvalidEvent
"""One event breaks the contract; the message is the reason kept with the dead letter."""

_OPTIONAL = ("memory_id", "content", "importance", "expires_ms", "signature")


def publish_event(client: Any, event: dict[str, Any], pipe: Any = None) -> None:
    """Append one event to ``aura:events:memory`` (field ``data``, JSON), or to ``pipe``."""
    (pipe or client).xadd(STREAM, {"data": json.dumps(event, separators=(",", ":"))})


def parse_event(raw: str | bytes | None, *, now: datetime | None = None) -> dict[str, Any]:
    """Parse and validate one payload into a ``memory_events`` row (without stream fields).

    Identifiers are bounded and printable, times lie in the partitioned window, numbers in
    range, the payload's size bounded (:mod:`lakehouse.ingest.guards`).

    Raises:
        EventError: with the reason.
    """
    if raw is None:
        raise EventError("entry has no 'data' field")
    event = v.load_object(raw)
    v.require(event, _REQUIRED)
    if event["op"] not in OPS:
        raise EventError(f"unknown op {str(event['op'])[:40]!r}: use one of {list(OPS)}")
    try:
        tenant = check_tenant(event["tenant_id"])
    except ValidationError as exc:
        raise EventError(str(exc)[:300]) from None
    meta = event.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise EventError(f"metadata must be a JSON object, got {type(meta).__name__}")
    has = {name: event.get(name) is not None for name in _OPTIONAL}
    return {
        "event_id": v.identifier(event, "event_id"),
        "ts": v.check_time("ts_ms", v.epoch_ms(event, "ts_ms"), now=now),
        "tenant_id": tenant,
        "op": event["op"],
        "memory_id": v.identifier(event, "memory_id") if has["memory_id"] else None,
        "content": v.text(event, "content") if has["content"] else None,
        "metadata": None if meta is None else json.dumps(meta, allow_nan=False),
        "importance": (
            v.number(event, "importance", minimum=0, maximum=1) if has["importance"] else None
        ),
        "expires_at": v.epoch_ms(event, "expires_ms") if has["expires_ms"] else None,
        "signature": v.text(event, "signature", max_chars=1024) if has["signature"] else None,
    }


def event_day(payload: bytes) -> date | None:
    """The UTC day of a payload, None when malformed (for sensors)."""
    try:
        return parse_event(payload)["ts"].date()
    except Exception:  # a sensor never raises on stream content
        return None


@dataclass
class ParsedBatch:
    """Stream entries split into event rows (dicts in the table's schema) and dead letters."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    rejections: list[DeadLetter] = field(default_factory=list)


def parse_entries(entries: Sequence[Entry], now: datetime) -> ParsedBatch:
    """Validate stream entries into ``memory_events`` rows and dead letters; no entry can stop
    the batch (the shared :func:`~lakehouse.ingest.streams.parse_stream_entries` and
    :func:`~lakehouse.ingest.streams.to_arrow_or_dead_letters`: any exception, in parsing or in the
    Arrow conversion, makes that entry a dead letter with the reason)."""
    parsed, dead = parse_stream_entries(entries, lambda payload: parse_event(payload, now=now))
    records = [
        Parsed(p.stream_id, p.value | _stream_fields(p.stream_id, now), p.raw) for p in parsed
    ]
    _, unfit = to_arrow_or_dead_letters(records, events_to_arrow)
    refused = {d.stream_id for d in unfit}
    return ParsedBatch(
        rows=[r.value for r in records if r.stream_id not in refused], rejections=dead + unfit
    )


_SCHEMA = MEMORY_EVENTS.arrow_schema


def _stream_fields(stream_id: str, now: datetime) -> dict[str, Any]:
    return {"stream_id": stream_id, "ingested_at": now}


def events_to_arrow(rows: list[dict[str, Any]]) -> pa.Table:
    """Event rows as an Arrow table of ``memory_events`` (the first row of an event id wins)."""
    unique = list({r["event_id"]: r for r in reversed(rows)}.values())[::-1]
    return pa.Table.from_pylist(unique, schema=_SCHEMA)


def mentions(raw: str | None, tenant_id: str, memory_id: str | None) -> bool:
    """Whether a dead letter's raw payload names this tenant (and memory, if given): erase."""
    if raw is None:
        return False
    if memory_id is not None:
        return memory_id in raw
    try:
        obj = json.loads(raw)
    except ValueError:
        obj = None
    if isinstance(obj, dict):
        return obj.get("tenant_id") == tenant_id
    compact = raw.replace(" ", "")
    return f'"tenant_id":"{tenant_id}"' in compact
