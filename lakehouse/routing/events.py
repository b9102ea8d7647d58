"""The routing event contract: what the model router publishes, and how it is validated.

The router publishes one entry per decision to ``aura:events:routing``; each entry has one
field ``data`` holding the event as a JSON object with the fields of :data:`REQUIRED_FIELDS`
and optionally those of :data:`OPTIONAL_FIELDS`: ``propensity``, the probability in (0, 1] with
which the router chose ``chosen_model`` (what off-policy evaluation of other routers needs).
Events without it, older than that field, stay valid and are stored with a null.
An event that breaks the contract becomes a :class:`~lakehouse.ingest.streams.DeadLetter` whose
reason
names the field and the problem. The guards are :mod:`lakehouse.ingest.guards`'s: identifiers are
short and printable, ``prompt_tokens`` fits a 64-bit column, numbers are finite, ``ts`` falls
between the first day partition and now plus a small allowance, the payload is bounded. Nothing
an entry holds can make parsing raise: :func:`parse_entries` turns any failure into a dead letter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pyarrow as pa

from lakehouse.ingest import guards as v
from lakehouse.ingest.streams import (
    DeadLetter,
    parse_stream_entries,
)
from lakehouse.routing.tables import ROUTING_DECISIONS

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
CONTENT_FIELDS = tuple(name for name in REQUIRED_FIELDS if name != "decision_id")
"""What makes two events with one ``decision_id`` the same decision (a replay) or a conflict."""

EventError = v.InvalidEvent
"""One event breaks the contract; the message is the reason stored with the dead letter."""


@dataclass
class ParsedBatch:
    """Stream entries split into valid decisions (as dicts) and dead letters."""

    decisions: list[dict[str, Any]] = field(default_factory=list)
    rejections: list[DeadLetter] = field(default_factory=list)
    raw: dict[str, str | None] = field(default_factory=dict)


def parse_event(raw: str | bytes, *, now: datetime | None = None) -> dict[str, Any]:
    """Parse and validate one event payload.

    Raises:
        EventError: with a reason naming the field and the problem.
    """
    event = v.load_object(raw)
    v.require(event, REQUIRED_FIELDS)
    out: dict[str, Any] = {name: v.identifier(event, name) for name in _STRING_FIELDS}
    out["ts"] = v.timestamp(event, "ts", now=now)
    out["prompt_tokens"] = v.integer(event, "prompt_tokens", minimum=0)
    for name in _NUMBER_FIELDS:
        out[name] = v.number(event, name, minimum=0)
    if out["quality_score"] > 1:
        raise EventError(f"quality_score must be in [0, 1], got {out['quality_score']}")
    out["candidate_models"] = v.identifier_list(event, "candidate_models")
    if out["chosen_model"] not in out["candidate_models"]:
        raise EventError(f"chosen_model {out['chosen_model']!r} is not among candidate_models")
    out["fallback_used"] = v.boolean(event, "fallback_used")
    propensity = event.get("propensity")
    if propensity is not None:
        if (
            isinstance(propensity, bool)
            or not isinstance(propensity, int | float)
            or not math.isfinite(propensity)
            or not 0 < propensity <= 1
        ):
            raise EventError(f"propensity must be a number in (0, 1], got {str(propensity)[:40]}")
        propensity = float(propensity)
    return {**{name: out[name] for name in REQUIRED_FIELDS}, "propensity": propensity}


def parse_ts(value: object) -> datetime:
    """An event's ``ts``: ISO-8601 with a UTC offset inside the partitioned range, in UTC."""
    return v.check_timestamp("ts", value)


def event_day(payload: bytes) -> date | None:
    """The day of an event payload, None when it is malformed or out of range (for sensors).

    Never raises, whatever the payload holds.
    """
    try:
        return parse_ts(v.load_object(payload)["ts"]).date()
    except Exception:  # a sensor must never fail on stream content
        return None


def parse_entries(entries: Sequence[tuple[bytes | str, dict | None]]) -> ParsedBatch:
    """Validate raw stream entries ``(entry_id, fields)``; never raises on their content."""
    parsed, dead = parse_stream_entries(entries, parse_event)
    batch = ParsedBatch(rejections=dead)
    for record in parsed:
        record.value["stream_id"] = record.stream_id
        batch.decisions.append(record.value)
        batch.raw[record.stream_id] = record.raw
    return batch


def decisions_to_arrow(decisions: list[dict[str, Any]], ingested_at: datetime) -> pa.Table:
    """Valid decisions as an Arrow table in the schema of ``routing_decisions``."""
    schema = ROUTING_DECISIONS.arrow_schema
    columns = {name: [d[name] for d in decisions] for name in REQUIRED_FIELDS}
    columns["propensity"] = [d.get("propensity") for d in decisions]
    columns["stream_id"] = [d.get("stream_id") for d in decisions]
    columns["ingested_at"] = [ingested_at] * len(decisions)
    return pa.Table.from_pydict(columns, schema=schema)
