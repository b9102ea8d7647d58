"""The routing event contract: what the model router publishes, and how it is validated.

The router publishes one entry per decision to ``aura:events:routing``; each entry has one
field ``data`` holding the event as a JSON object with the fields of :data:`REQUIRED_FIELDS`
and optionally those of :data:`OPTIONAL_FIELDS`: ``propensity``, the probability in (0, 1] with
which the router chose ``chosen_model`` (what off-policy evaluation of other routers needs).
Events without it, older than that field, stay valid and are stored with a null.
An event that breaks the contract becomes a :class:`~lakehouse.streams.DeadLetter` whose reason
names the field and the problem.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pyarrow as pa

from lakehouse.routing.tables import ROUTING_DECISIONS
from lakehouse.streams import DeadLetter, field_of, raw_text

STREAM = "aura:events:routing"

_STRING_FIELDS = ("decision_id", "tenant_id", "task_type", "chosen_model")
_NUMBER_FIELDS = ("cost_usd", "latency_ms", "quality_score")
REQUIRED_FIELDS = (
    "decision_id",
    "ts",
    "tenant_id",
    "task_type",
    "prompt_tokens",
    "candidate_models",
    "chosen_model",
    "cost_usd",
    "latency_ms",
    "quality_score",
    "fallback_used",
)
OPTIONAL_FIELDS = ("propensity",)


class EventError(ValueError):
    """One event breaks the contract; the message is the reason stored with the dead letter."""


@dataclass
class ParsedBatch:
    """Stream entries split into valid decisions (as dicts) and dead letters."""

    decisions: list[dict[str, Any]] = field(default_factory=list)
    rejections: list[DeadLetter] = field(default_factory=list)


def parse_event(raw: str | bytes) -> dict[str, Any]:
    """Parse and validate one event payload.

    Raises:
        EventError: with a reason naming the field and the problem.
    """
    try:
        event = orjson.loads(raw)
    except (orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EventError(f"invalid JSON: {exc.msg if hasattr(exc, 'msg') else exc}") from None
    if not isinstance(event, dict):
        raise EventError(f"event must be a JSON object, got {type(event).__name__}")
    missing = [name for name in REQUIRED_FIELDS if event.get(name) is None]
    if missing:
        raise EventError(f"missing field(s): {', '.join(missing)}")
    for name in _STRING_FIELDS:
        if not isinstance(event[name], str) or not event[name].strip():
            raise EventError(f"{name} must be a non-empty string, got {event[name]!r}")
    event["ts"] = parse_ts(event["ts"])
    tokens = event["prompt_tokens"]
    if isinstance(tokens, bool) or not isinstance(tokens, int):
        raise EventError(f"prompt_tokens must be an integer, got {tokens!r}")
    if tokens < 0:
        raise EventError(f"prompt_tokens must be >= 0, got {tokens}")
    for name in _NUMBER_FIELDS:
        value = event[name]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise EventError(f"{name} must be a finite number, got {value!r}")
        if value < 0:
            raise EventError(f"{name} must be >= 0, got {value}")
        event[name] = float(value)
    if event["quality_score"] > 1:  # type: ignore[operator]
        raise EventError(f"quality_score must be in [0, 1], got {event['quality_score']}")
    candidates = event["candidate_models"]
    if (
        not isinstance(candidates, list)
        or not candidates
        or not all(isinstance(c, str) and c for c in candidates)
    ):
        raise EventError(
            f"candidate_models must be a non-empty list of strings, got {candidates!r}"
        )
    if event["chosen_model"] not in candidates:
        raise EventError(f"chosen_model {event['chosen_model']!r} is not among candidate_models")
    if not isinstance(event["fallback_used"], bool):
        raise EventError(f"fallback_used must be true or false, got {event['fallback_used']!r}")
    propensity = event.get("propensity")
    if propensity is not None:
        if (
            isinstance(propensity, bool)
            or not isinstance(propensity, int | float)
            or not math.isfinite(propensity)
            or not 0 < propensity <= 1
        ):
            raise EventError(f"propensity must be a number in (0, 1], got {propensity!r}")
        propensity = float(propensity)
    return {**{name: event[name] for name in REQUIRED_FIELDS}, "propensity": propensity}


def parse_ts(value: object) -> datetime:
    """An event's ``ts``: ISO-8601 with a UTC offset, returned in UTC."""
    if not isinstance(value, str):
        raise EventError(f"ts must be an ISO-8601 string, got {value!r}")
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise EventError(f"ts is not ISO-8601: {value!r}") from None
    if ts.tzinfo is None:
        raise EventError(f"ts must carry a UTC offset (e.g. +00:00): {value!r}")
    return ts.astimezone(UTC)


def event_day(payload: bytes) -> date | None:
    """The day of an event payload, None when it is malformed (for backlog sensors)."""
    try:
        return parse_ts(orjson.loads(payload)["ts"]).date()
    except (EventError, TypeError, KeyError, ValueError):
        return None


def parse_entries(entries: Iterable[tuple[bytes | str, dict | None]]) -> ParsedBatch:
    """Validate raw stream entries ``(entry_id, fields)``."""
    batch = ParsedBatch()
    for entry_id, fields in entries:
        sid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        payload = field_of(fields, "data")
        if payload is None:
            reason = (
                "entry was deleted from the stream before ingestion"
                if fields is None
                else "entry has no 'data' field"
            )
            batch.rejections.append(DeadLetter(sid, raw_text(fields), reason))
            continue
        try:
            event = parse_event(payload)
        except EventError as exc:
            batch.rejections.append(DeadLetter(sid, raw_text(payload), str(exc)))
            continue
        event["stream_id"] = sid
        batch.decisions.append(event)
    return batch


def decisions_to_arrow(decisions: list[dict[str, Any]], ingested_at: datetime) -> pa.Table:
    """Valid decisions as an Arrow table in the schema of ``routing_decisions``."""
    schema = ROUTING_DECISIONS.arrow_schema
    columns = {name: [d[name] for d in decisions] for name in REQUIRED_FIELDS}
    columns["propensity"] = [d.get("propensity") for d in decisions]
    columns["stream_id"] = [d.get("stream_id") for d in decisions]
    columns["ingested_at"] = [ingested_at] * len(decisions)
    return pa.Table.from_pydict(columns, schema=schema)
