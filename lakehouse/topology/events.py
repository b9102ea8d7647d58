"""The workflow-trace event contract: one JSON object per workflow run.

Events arrive on the Redis Stream :data:`STREAM` (``aura:events:workflows``), one field ``data``
holding JSON such as::

    {"run_id": "w-1", "ts": "2026-11-20T14:05:00+00:00", "tenant_id": "acme",
     "workflow": "support", "status": "ok",
     "nodes": [{"id": "plan", "kind": "agent"}, {"id": "search", "kind": "tool"}],
     "edges": [{"src": "plan", "dst": "search", "calls": 3, "latency_ms": 120.5, "errors": 0}]}

Invariants a parsed event satisfies (anything else raises :class:`WorkflowEventError` with the
reason, which the ingestion writes next to the dead letter):

* the payload is at most :data:`MAX_PAYLOAD_BYTES` of UTF-8 JSON, one object with exactly the
  fields above (no unknown field: a typo must not pass silently), no key twice in any object
  (a parser would keep one value and drop the other silently);
* ``run_id``, ``tenant_id``, ``workflow`` (and node ids and kinds) are non-empty printable
  strings (:func:`lakehouse.ingest.guards.check_identifier`: no control or format characters, no
  unpaired surrogates) of at most :data:`MAX_NAME_CHARS`;
* ``ts`` is ISO 8601 with a UTC offset (naive times are ambiguous), year in
  :data:`MIN_YEAR`..:data:`MAX_YEAR`, and inside the partitioned window
  (:func:`lakehouse.ingest.guards.check_time`: from the first day partition to now plus a small
  allowance; a run of a day without a partition would stay pending forever); it is normalised
  to UTC;
* ``status`` is ``ok``, ``error`` or ``interrupted``;
* ``nodes`` is a non-empty list of ``{id, kind}`` with unique ids;
* ``edges`` are directed and unique per ``(src, dst)`` (a caller aggregates repeated transitions
  into ``calls``), both ends are declared nodes, ``calls >= 1`` and ``0 <= errors <= calls`` are
  integers up to ``2**62`` (booleans refused), ``latency_ms`` is a finite number in
  ``[0, MAX_LATENCY_MS]`` (the mean per call; the bound keeps every sum and mean over a run's
  edges finite, so a valid event never turns into an infinite ``mean_latency_ms``).
  Self-loops (``tools -> tools``) and cycles are allowed.

NaN and infinities are refused at the JSON level (``NaN`` is not JSON, though Python accepts it).
The guards shared by every stream are :mod:`lakehouse.ingest.guards`'s; this module adds the
workflow-specific ones and keeps its messages (the reason stored with a dead letter).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, NoReturn

import pyarrow as pa

from lakehouse.ingest import guards as v

STREAM = "aura:events:workflows"
FIELD = "data"
STATUSES = ("ok", "error", "interrupted")
MAX_PAYLOAD_BYTES = 1 << 20
MAX_NODES = 10_000
MAX_EDGES = 100_000
MAX_NAME_CHARS = 256
MAX_COUNT = 2**62
MAX_LATENCY_MS = 1e12
"""Largest mean latency per call (about 30 years): the sum over :data:`MAX_EDGES` edges of
such values stays a finite double, so a run's mean latency never overflows to infinity."""
MIN_YEAR = 2000
MAX_YEAR = 2100
_FIELDS = frozenset({"run_id", "ts", "tenant_id", "workflow", "status", "nodes", "edges"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

NODE_TYPE = pa.struct([pa.field("id", pa.string(), False), pa.field("kind", pa.string(), False)])
EDGE_TYPE = pa.struct(
    [
        pa.field("src", pa.string(), False),
        pa.field("dst", pa.string(), False),
        pa.field("calls", pa.int64(), False),
        pa.field("latency_ms", pa.float64(), False),
        pa.field("errors", pa.int64(), False),
    ]
)
WORKFLOW_RUNS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), False),
        pa.field("tenant_id", pa.string(), False),
        pa.field("workflow", pa.string(), False),
        pa.field("status", pa.string(), False),
        pa.field("nodes", pa.list_(pa.field("element", NODE_TYPE, False)), False),
        pa.field("edges", pa.list_(pa.field("element", EDGE_TYPE, False)), False),
    ]
)
"""Arrow schema of parsed workflow runs, one row per run.

``nodes`` is ``list<struct<id: string, kind: string>>`` and ``edges`` is
``list<struct<src, dst: string, calls: int64, latency_ms: float64, errors: int64>>``, in the
event's order; ``ts`` is microseconds in UTC. Every field is required.
"""


class WorkflowEventError(v.InvalidEvent):
    """A workflow-trace event violates the contract; ``reason`` says how.

    An :class:`~lakehouse.exceptions.InvalidEvent` (an ``AuraError``): the shared stream
    mechanism stores its message, the reason, with the dead letter.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _refused(exc: v.InvalidEvent) -> NoReturn:
    """A shared guard's refusal as this contract's error (same reason)."""
    raise WorkflowEventError(str(exc)) from None


def _refuse_constant(name: str) -> Any:
    raise WorkflowEventError(f"{name} is not a JSON number; send finite numbers only")


def _name(event: Mapping[str, Any], key: str, where: str = "") -> str:
    value = event.get(key)
    label = f"{where}{key}"
    if not isinstance(value, str):
        raise WorkflowEventError(f"{label} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise WorkflowEventError(f"{label} must not be empty")
    if len(value) > MAX_NAME_CHARS:
        raise WorkflowEventError(f"{label} is longer than {MAX_NAME_CHARS} characters")
    if _CONTROL.search(value):
        raise WorkflowEventError(f"{label} contains control characters")
    try:  # format characters, unpaired surrogates, private use, line separators
        return v.check_identifier(label, value, max_chars=MAX_NAME_CHARS)
    except v.InvalidEvent as exc:
        _refused(exc)


def _ts(value: Any, now: datetime | None) -> datetime:
    if not isinstance(value, str):
        raise WorkflowEventError(f"ts must be an ISO 8601 string, got {type(value).__name__}")
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise WorkflowEventError(f"ts {value[:40]!r} is not ISO 8601") from None
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise WorkflowEventError(f"ts {value!r} has no UTC offset; add one (e.g. +00:00)")
    if not MIN_YEAR <= ts.year <= MAX_YEAR:
        raise WorkflowEventError(
            f"ts year {ts.year} is outside {MIN_YEAR}..{MAX_YEAR}; the clock that made it is wrong"
        )
    try:
        return v.check_time("ts", ts.astimezone(UTC), now=now)
    except v.InvalidEvent as exc:
        _refused(exc)


def _count(edge: dict[str, Any], key: str, where: str) -> int:
    value = edge.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise WorkflowEventError(f"{where}.{key} must be an integer, got {type(value).__name__}")
    if value < 0:
        raise WorkflowEventError(f"{where}.{key} must not be negative, got {str(value)[:40]}")
    try:
        return v.integer(edge, key, maximum=MAX_COUNT)
    except v.InvalidEvent:
        raise WorkflowEventError(f"{where}.{key} is out of range (at most {MAX_COUNT})") from None


def _nodes(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise WorkflowEventError(f"nodes must be a list, got {type(value).__name__}")
    if not value:
        raise WorkflowEventError("nodes must not be empty: a run visits at least one node")
    if len(value) > MAX_NODES:
        raise WorkflowEventError(f"{len(value)} nodes exceed the limit of {MAX_NODES}")
    nodes: list[dict[str, str]] = []
    seen: set[str] = set()
    for i, node in enumerate(value):
        where = f"nodes[{i}]."
        if not isinstance(node, dict):
            raise WorkflowEventError(f"nodes[{i}] must be an object, got {type(node).__name__}")
        extra = set(node) - {"id", "kind"}
        if extra:
            raise WorkflowEventError(f"nodes[{i}] has unknown fields {sorted(extra)}")
        node_id = _name(node, "id", where)
        if node_id in seen:
            raise WorkflowEventError(f"duplicate node id {node_id!r}")
        seen.add(node_id)
        nodes.append({"id": node_id, "kind": _name(node, "kind", where)})
    return nodes


def _edges(value: Any, ids: set[str]) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise WorkflowEventError(f"edges must be a list, got {type(value).__name__}")
    if len(value) > MAX_EDGES:
        raise WorkflowEventError(f"{len(value)} edges exceed the limit of {MAX_EDGES}")
    edges: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for i, edge in enumerate(value):
        where = f"edges[{i}]"
        if not isinstance(edge, dict):
            raise WorkflowEventError(f"{where} must be an object, got {type(edge).__name__}")
        extra = set(edge) - {"src", "dst", "calls", "latency_ms", "errors"}
        if extra:
            raise WorkflowEventError(f"{where} has unknown fields {sorted(extra)}")
        src, dst = _name(edge, "src", f"{where}."), _name(edge, "dst", f"{where}.")
        for end in (src, dst):
            if end not in ids:
                raise WorkflowEventError(f"{where} names unknown node {end!r}; declare it in nodes")
        if (src, dst) in seen:
            raise WorkflowEventError(f"duplicate edge {src!r} -> {dst!r}; aggregate into calls")
        seen.add((src, dst))
        calls = _count(edge, "calls", where)
        if calls < 1:
            raise WorkflowEventError(f"{where}.calls must be at least 1; omit edges never taken")
        errors = _count(edge, "errors", where)
        if errors > calls:
            raise WorkflowEventError(f"{where}.errors ({errors}) exceed its calls ({calls})")
        latency = edge.get("latency_ms")
        if isinstance(latency, bool) or not isinstance(latency, int | float):
            raise WorkflowEventError(
                f"{where}.latency_ms must be a number, got {type(latency).__name__}"
            )
        try:
            latency = v.number(edge, "latency_ms")
        except v.InvalidEvent:  # an integer no double holds
            latency = math.inf
        if not math.isfinite(latency) or latency < 0:
            shown = str(edge.get("latency_ms"))[:40]
            raise WorkflowEventError(f"{where}.latency_ms must be finite and >= 0, got {shown}")
        if latency > MAX_LATENCY_MS:
            raise WorkflowEventError(
                f"{where}.latency_ms {latency:.6g} is more than {MAX_LATENCY_MS:.0e} ms (about "
                "30 years) per call: send milliseconds, and a measured mean"
            )
        edges.append(
            {"src": src, "dst": dst, "calls": calls, "latency_ms": latency, "errors": errors}
        )
    return edges


def parse_workflow_event(raw: bytes | str, *, now: datetime | None = None) -> dict[str, Any]:
    """Parse and validate one event; return it with ``ts`` as an aware UTC ``datetime``.

    ``now`` is the end of the accepted time window (default the clock).

    Raises:
        WorkflowEventError: The event violates the contract (see the module docstring); its
            ``reason`` names the field and what to fix.
    """
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > MAX_PAYLOAD_BYTES:
        raise WorkflowEventError(f"payload of {size} bytes exceeds {MAX_PAYLOAD_BYTES} bytes")
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise WorkflowEventError("payload is not UTF-8") from None
    try:
        event = json.loads(raw, parse_constant=_refuse_constant, object_pairs_hook=v.unique_object)
    except WorkflowEventError:
        raise
    except v.InvalidEvent as exc:  # a key given twice
        _refused(exc)
    except (ValueError, RecursionError) as exc:
        raise WorkflowEventError(f"payload is not JSON ({str(exc)[:80]})") from None
    if not isinstance(event, dict):
        raise WorkflowEventError(f"payload must be a JSON object, got {type(event).__name__}")
    missing = _FIELDS - set(event)
    if missing:
        raise WorkflowEventError(f"missing fields {sorted(missing)}")
    extra = set(event) - _FIELDS
    if extra:
        raise WorkflowEventError(f"unknown fields {sorted(extra)}")
    status = event["status"]
    if status not in STATUSES:
        raise WorkflowEventError(f"status {str(status)[:40]!r} is not one of {list(STATUSES)}")
    nodes = _nodes(event["nodes"])
    return {
        "run_id": _name(event, "run_id"),
        "ts": _ts(event["ts"], now),
        "tenant_id": _name(event, "tenant_id"),
        "workflow": _name(event, "workflow"),
        "status": status,
        "nodes": nodes,
        "edges": _edges(event["edges"], {n["id"] for n in nodes}),
    }


def dump_workflow_event(event: Mapping[str, Any]) -> str:
    """The JSON payload of an event (``ts`` as ISO 8601 when it is a ``datetime``)."""
    out = dict(event)
    if isinstance(out["ts"], datetime):
        out["ts"] = out["ts"].isoformat()
    return json.dumps(out, separators=(",", ":"), allow_nan=False)


def workflow_runs_to_arrow(events: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Parsed events as a table of :data:`WORKFLOW_RUNS_SCHEMA`, one row per run."""
    rows = list(events)
    columns = {name: [row[name] for row in rows] for name in WORKFLOW_RUNS_SCHEMA.names}
    return pa.Table.from_pydict(columns, schema=WORKFLOW_RUNS_SCHEMA)
