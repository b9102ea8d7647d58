"""The memory event contract: one stream entry per memory write, and its validation.

Every ``store``, ``forget`` and ``forget_tenant`` appends one entry to ``aura:events:memory``
whose field ``data`` holds a JSON object with ``event_id``, ``ts_ms``, ``tenant_id`` and ``op``
(plus the memory's fields for a store). An entry that breaks the contract becomes a
:class:`~lakehouse.streams.DeadLetter` whose reason names the problem.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

from lakehouse.memory.tables import MEMORY_EVENTS
from lakehouse.streams import DeadLetter, Entry, field_of, raw_text, text

STREAM = "aura:events:memory"
OPS = ("store", "forget", "forget_tenant")
_REQUIRED = ("event_id", "ts_ms", "tenant_id", "op")


class EventError(ValueError):
    """One event breaks the contract; the message is the reason kept with the dead letter."""


def publish_event(client: Any, event: dict[str, Any], pipe: Any = None) -> None:
    """Append one event to ``aura:events:memory`` (field ``data``, JSON), or to ``pipe``."""
    (pipe or client).xadd(STREAM, {"data": json.dumps(event, separators=(",", ":"))})


def parse_event(raw: str | bytes | None) -> dict[str, Any]:
    """Parse and validate one payload.

    Raises:
        EventError: with the reason.
    """
    if raw is None:
        raise EventError("entry has no 'data' field")
    try:
        event = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EventError(f"invalid JSON: {exc}") from None
    if not isinstance(event, dict):
        raise EventError(f"event must be a JSON object, got {type(event).__name__}")
    missing = [name for name in _REQUIRED if event.get(name) is None]
    if missing:
        raise EventError(f"missing field(s): {', '.join(missing)}")
    if event["op"] not in OPS:
        raise EventError(f"unknown op {event['op']!r}; ops are {OPS}")
    if isinstance(event["ts_ms"], bool) or not isinstance(event["ts_ms"], int):
        raise EventError(f"ts_ms must be an integer (ms since the epoch), got {event['ts_ms']!r}")
    return event


def _dt(ms: object) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(int(ms) / 1000, UTC)  # type: ignore[call-overload]


def event_day(payload: bytes) -> date | None:
    """The UTC day of a payload, None when malformed (for sensors)."""
    try:
        event = parse_event(payload)
    except EventError:
        return None
    day = _dt(event["ts_ms"])
    return day.date() if day else None


@dataclass
class ParsedBatch:
    """Stream entries split into event rows (dicts in the table's schema) and dead letters."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    rejections: list[DeadLetter] = field(default_factory=list)


def parse_entries(entries: Iterable[Entry], now: datetime) -> ParsedBatch:
    """Validate stream entries into ``memory_events`` rows and dead letters."""
    out = ParsedBatch()
    for sid, fields in entries:
        stream_id = text(sid)
        payload = field_of(fields)
        try:
            event = parse_event(payload)
        except EventError as exc:
            out.rejections.append(
                DeadLetter(stream_id, raw_text(payload if fields else fields), str(exc))
            )
            continue
        meta = event.get("metadata")
        out.rows.append(
            {
                "event_id": str(event["event_id"]),
                "ts": _dt(event["ts_ms"]),
                "tenant_id": str(event["tenant_id"]),
                "op": event["op"],
                "memory_id": event.get("memory_id"),
                "content": event.get("content"),
                "metadata": None if meta is None else json.dumps(meta),
                "importance": event.get("importance"),
                "expires_at": _dt(event.get("expires_ms")),
                "signature": event.get("signature"),
                "stream_id": stream_id,
                "ingested_at": now,
            }
        )
    return out


def events_to_arrow(rows: list[dict[str, Any]]) -> pa.Table:
    """Event rows as an Arrow table of ``memory_events`` (the first row of an event id wins)."""
    unique = list({r["event_id"]: r for r in reversed(rows)}.values())[::-1]
    return pa.Table.from_pylist(unique, schema=MEMORY_EVENTS.arrow_schema)


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
