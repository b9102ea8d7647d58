"""The memory event contract: one stream entry per memory write, and its validation.

Every ``store``, ``forget`` and ``forget_tenant`` appends one entry to ``aura:events:memory``
whose field ``data`` holds a JSON object with ``event_id``, ``ts_ms``, ``tenant_id`` and ``op``
(plus the memory's fields for a store). An entry that breaks the contract becomes a
:class:`~lakehouse.ingest.streams.DeadLetter` whose reason names the problem.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import pyarrow as pa

from lakehouse.exceptions import ValidationError
from lakehouse.ingest import guards as v
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
        return parse_event(payload)["ts"].date()  # type: ignore[no-any-return]
    except Exception:  # a sensor never raises on stream content
        return None


_SCHEMA = MEMORY_EVENTS.arrow_schema

CONTENT_FIELDS = tuple(
    name for name in _SCHEMA.names if name not in ("event_id", "stream_id", "ingested_at")
)
"""What makes two events with one ``event_id`` the same event (a replay) or a conflict."""


def events_to_arrow(rows: list[dict[str, Any]], ingested_at: datetime) -> pa.Table:
    """Parsed event rows (with ``stream_id``) as an Arrow table of ``memory_events``."""
    return pa.Table.from_pylist([r | {"ingested_at": ingested_at} for r in rows], schema=_SCHEMA)


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
    if isinstance(obj, dict) and "tenant_id" in obj:
        return obj.get("tenant_id") == tenant_id
    if isinstance(obj, dict):  # an entry's fields (no or repeated 'data'): each value's payload
        values = (
            v for value in obj.values() for v in (value if isinstance(value, list) else [value])
        )
        return any(mentions(v, tenant_id, None) for v in values if isinstance(v, str))
    compact = raw.replace(" ", "")
    return f'"tenant_id":"{tenant_id}"' in compact
