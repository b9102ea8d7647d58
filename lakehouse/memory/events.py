"""The memory event contract: one stream entry per memory write, and its validation.

Every ``store``, ``forget`` and ``forget_tenant`` appends one entry to ``aura:events:memory``
whose field ``data`` holds a JSON object with ``event_id``, ``ts_ms``, ``tenant_id`` and ``op``
(plus the memory's fields for a store). An entry that breaks the contract becomes a
:class:`~lakehouse.ingest.streams.DeadLetter` whose reason names the problem.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

import pyarrow as pa

from lakehouse.exceptions import MemoryKeyError, ValidationError
from lakehouse.ingest import guards as v
from lakehouse.ingest.streams import DeadLetter, Entry, field_of, raw_text, text
from lakehouse.memory.crypto import MemoryCipher, is_sealed
from lakehouse.memory.model import check_content, check_metadata, parse_id
from lakehouse.memory.tables import MEMORY_EVENTS
from lakehouse.table.tenants import check_tenant

STREAM = "aura:events:memory"
OPS = ("store", "forget", "forget_tenant")
_REQUIRED = ("event_id", "ts_ms", "tenant_id", "op")


EventError = v.InvalidEvent
"""One event breaks the contract; the message is the reason kept with the dead letter."""

_OPTIONAL = ("memory_id", "content", "importance", "expires_ms", "signature")


def encode_event(event: dict[str, Any]) -> str:
    """An event as published: compact JSON, UTF-8 as is (so its size is its text's size)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def publish_event(client: Any, event: dict[str, Any], pipe: Any = None) -> None:
    """Append one event to ``aura:events:memory`` (field ``data``, JSON), or to ``pipe``."""
    (pipe or client).xadd(STREAM, {"data": encode_event(event)})


def parse_event(
    raw: str | bytes | None,
    *,
    now: datetime | None = None,
    cipher: MemoryCipher | None = None,
    window: bool = True,
) -> dict[str, Any]:
    """Parse and validate one payload into a ``memory_events`` row (without stream fields).

    The one validation of a memory event, applied by ingestion and by ``store`` to the event it
    is about to publish (so what ``store`` accepts, ingestion accepts). Identifiers are bounded
    and printable, memory ids are UUIDs (stored in their canonical lower-case spelling), times
    lie in the partitioned window (unless ``window`` is False), numbers in range, the payload's
    size bounded (:mod:`lakehouse.ingest.guards`); content and metadata pass
    :func:`~lakehouse.memory.model.check_content` and
    :func:`~lakehouse.memory.model.check_metadata`. With a ``cipher``, sealed content and
    metadata must open with a configured key (a forged ``aura-enc:v1:`` token or
    ``aura_sealed`` object does not), and their plaintext is checked too.

    Raises:
        EventError: with the reason.
    """
    if raw is None:
        raise EventError("entry has no 'data' field")
    event = v.load_object(raw)
    v.require(event, _REQUIRED)
    op = event["op"]
    if op not in OPS:
        raise EventError(f"unknown op {str(op)[:40]!r}: use one of {list(OPS)}")
    try:
        tenant = check_tenant(event["tenant_id"])
    except ValidationError as exc:
        raise EventError(str(exc)[:300]) from None
    has = {name: event.get(name) is not None for name in _OPTIONAL}
    memory_id = _memory_id(event, required=op in ("store", "forget"))
    meta = event.get("metadata")
    if op == "store":
        if not has["content"]:
            raise EventError("a store event needs its content")
        _check_payload(event, tenant, memory_id, cipher)
    elif meta is not None and not isinstance(meta, dict):
        raise EventError(f"metadata must be a JSON object, got {type(meta).__name__}")
    return {
        "event_id": v.identifier(event, "event_id"),
        "ts": (
            v.check_time("ts_ms", v.epoch_ms(event, "ts_ms"), now=now)
            if window
            else v.epoch_ms(event, "ts_ms")
        ),
        "tenant_id": tenant,
        "op": op,
        "memory_id": memory_id,
        "content": v.text(event, "content", max_chars=v.MAX_EVENT_BYTES)
        if has["content"]
        else None,
        "metadata": None if meta is None else json.dumps(meta, allow_nan=False),
        "importance": (
            v.number(event, "importance", minimum=0, maximum=1) if has["importance"] else None
        ),
        "expires_at": v.epoch_ms(event, "expires_ms") if has["expires_ms"] else None,
        "signature": v.text(event, "signature", max_chars=1024) if has["signature"] else None,
    }


def _memory_id(event: dict[str, Any], *, required: bool) -> str | None:
    value = event.get("memory_id")
    if value is None:
        if required:
            raise EventError(f"a {event['op']} event needs its memory_id")
        return None
    memory_id = parse_id(value) if isinstance(value, str) else None
    if memory_id is None:
        raise EventError(f"memory_id must be a UUID, got {str(value)[:80]!r}")
    return memory_id


def _check_payload(
    event: dict[str, Any], tenant: str, memory_id: str | None, cipher: MemoryCipher | None
) -> None:
    """Content and metadata of a store event, opened when sealed and a cipher is given."""
    rec = {
        "tenant_id": tenant,
        "memory_id": memory_id,
        "content": event.get("content"),
        "metadata": event.get("metadata") or {},
    }
    sealed = is_sealed(rec["content"]) or is_sealed(rec["metadata"])
    if sealed and cipher is None:
        return  # no keys to judge it by (a sensor reading days): ingestion judges it
    if sealed:
        try:
            rec = cipher.open_record(rec)  # type: ignore[union-attr]
        except MemoryKeyError as exc:
            raise EventError(
                "sealed content or metadata that no configured key opens (forged, or written "
                f"with a key this home does not have): {str(exc)[:200]}"
            ) from None
        except (ValueError, TypeError):
            raise EventError("sealed metadata does not open into a JSON object") from None
    try:
        check_content(rec["content"])
        check_metadata(rec["metadata"])
    except ValidationError as exc:
        raise EventError(str(exc)[:300]) from None


def event_day(payload: bytes) -> date | None:
    """The UTC day of a payload, None when malformed (for sensors)."""
    try:
        return parse_event(payload)["ts"].date()
    except Exception:  # a sensor never raises on stream content
        return None


def bound_parser(
    cipher: MemoryCipher | None, erase_recorded: Callable[[str, str | None], bool] | None
) -> Callable[..., dict[str, Any]]:
    """The ingestion's parser of one payload: :func:`parse_event` with the home's ``cipher``
    (sealed payloads must open), and ``erase_recorded(tenant, memory_id)``, which says whether
    an erase was recorded (its tombstone): a ``forget`` or ``forget_tenant`` event without one
    is forged, and a dead letter."""

    def parse(payload: bytes | str, *, now: datetime | None = None) -> dict[str, Any]:
        row = parse_event(payload, now=now, cipher=cipher)
        recorded = erase_recorded
        if recorded and row["op"] != "store" and not recorded(row["tenant_id"], row["memory_id"]):
            raise EventError(f"{row['op']} event without a recorded erase (forged)")
        return row

    return parse


def keep_tenants(entries: Sequence[Entry], dead: list[DeadLetter]) -> list[DeadLetter]:
    """Dead letters whose stored ``raw`` (cut at :data:`~lakehouse.ingest.guards.MAX_RAW_CHARS`)
    lost a tenant the whole payload names: the cut is moved so its note names them, so an erase
    of the tenant finds it."""
    whole = {text(sid): raw_text(field_of(fields) or fields) for sid, fields in entries}
    out = []
    for letter in dead:
        full = whole.get(letter.stream_id)
        lost = named_tenants(full or "") - named_tenants(letter.raw or "")
        if full is None or not lost:
            out.append(letter)
            continue
        names = ",".join(f'"tenant_id":"{t}"' for t in sorted(lost))
        note = f"... [truncated: {len(full)} characters in all; names {names}]"
        kept = full[: max(0, v.MAX_RAW_CHARS - len(note))] + note
        out.append(DeadLetter(letter.stream_id, kept, letter.reason, letter.payload_sha256))
    return out


_SCHEMA = MEMORY_EVENTS.arrow_schema

CONTENT_FIELDS = tuple(
    name for name in _SCHEMA.names if name not in ("event_id", "stream_id", "ingested_at")
)
"""What makes two events with one ``event_id`` the same event (a replay) or a conflict."""


def events_to_arrow(rows: list[dict[str, Any]], ingested_at: datetime) -> pa.Table:
    """Parsed event rows (with ``stream_id``) as an Arrow table of ``memory_events``."""
    return pa.Table.from_pylist([r | {"ingested_at": ingested_at} for r in rows], schema=_SCHEMA)


# A tenant named in a payload: ``"tenant_id": "x"`` with any JSON whitespace around the colon,
# also inside a JSON string (escaped quotes), the value with JSON escapes.
_NAMED = re.compile(r'\\*"tenant_id\\*"\s*:\s*\\*"((?:[^"\\]|\\u[0-9a-fA-F]{4}){1,800})\\*"')


def named_tenants(raw: str) -> set[str]:
    """Every tenant a payload names as ``tenant_id``, wherever it appears in the raw text (also
    in invalid JSON, split over lines, or nested in a string of another field)."""
    found: set[str] = set()
    for match in _NAMED.finditer(raw):
        try:
            found.add(json.loads(f'"{match.group(1)}"'))
        except ValueError:
            continue
    return found


def mentions(raw: str | None, tenant_id: str, memory_id: str | None) -> bool:
    """Whether a dead letter's or an entry's raw payload names this tenant (and memory, in any
    spelling of its UUID, if given): erase it."""
    if raw is None:
        return False
    if memory_id is not None:
        return memory_id.lower() in raw.lower() or memory_id.replace("-", "") in raw.lower()
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        obj = None
    if isinstance(obj, dict) and obj.get("tenant_id") == tenant_id:
        return True
    if isinstance(obj, dict) and "tenant_id" not in obj:  # an entry's fields (no or repeated
        values = (  # 'data'): each value's payload
            v for value in obj.values() for v in (value if isinstance(value, list) else [value])
        )
        if any(mentions(v, tenant_id, None) for v in values if isinstance(v, str)):
            return True
    return tenant_id in named_tenants(raw)
