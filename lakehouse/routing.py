"""Routing decisions: the event contract and ingestion from the Redis Stream into Iceberg.

The model router publishes one entry per decision to ``aura:events:routing``; each entry has one
field ``data`` holding the event as a JSON object. :func:`ingest_day` drains the stream through a
consumer group, writes one day partition (merged with what the day already holds and
deduplicated on ``decision_id``), records malformed events in ``routing_decisions_rejected``
with the reason, and acknowledges entries only after the Iceberg commits. Entries of other days
stay pending for the run of their own day, so nothing is dropped.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, cast

import orjson
import polars as pl
import pyarrow as pa
import redis

from lakehouse import refs, writer
from lakehouse.core import Lakehouse
from lakehouse.exceptions import CommitConflictError
from lakehouse.settings import MAIN_BRANCH
from lakehouse.tables import ROUTING_DECISIONS, ROUTING_DECISIONS_REJECTED
from lakehouse.writer import Lineage, WriteResult, day_filter

log = logging.getLogger(__name__)

STREAM = "aura:events:routing"
GROUP = "aura-lakehouse"
CONSUMER = "ingest"
READ_BATCH = 10_000
MERGE_ATTEMPTS = 8

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


Entry = tuple[bytes, dict[bytes, bytes] | None]
"""A stream entry as redis-py returns it: (entry id, fields), fields None once deleted."""


class EventError(ValueError):
    """One event breaks the contract; the message is the reason stored with the dead letter."""


@dataclass(frozen=True)
class Rejection:
    stream_id: str
    raw: str | None
    reason: str


@dataclass
class ParsedBatch:
    """Stream entries split into valid decisions (as dicts) and rejections."""

    decisions: list[dict[str, Any]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


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
    event["ts"] = _parse_ts(event["ts"])
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
    return {name: event[name] for name in REQUIRED_FIELDS}


def _parse_ts(value: object) -> datetime:
    if not isinstance(value, str):
        raise EventError(f"ts must be an ISO-8601 string, got {value!r}")
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise EventError(f"ts is not ISO-8601: {value!r}") from None
    if ts.tzinfo is None:
        raise EventError(f"ts must carry a UTC offset (e.g. +00:00): {value!r}")
    return ts.astimezone(UTC)


def parse_entries(entries: Iterable[tuple[bytes | str, dict | None]]) -> ParsedBatch:
    """Validate raw stream entries ``(entry_id, fields)``."""
    batch = ParsedBatch()
    for entry_id, fields in entries:
        sid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        payload = _field(fields, "data")
        if payload is None:
            reason = (
                "entry was deleted from the stream before ingestion"
                if fields is None
                else "entry has no 'data' field"
            )
            batch.rejections.append(Rejection(sid, _raw_text(fields), reason))
            continue
        try:
            event = parse_event(payload)
        except EventError as exc:
            batch.rejections.append(Rejection(sid, _raw_text(payload), str(exc)))
            continue
        event["stream_id"] = sid
        batch.decisions.append(event)
    return batch


def _field(fields: dict | None, name: str) -> bytes | str | None:
    if not fields:
        return None
    return fields.get(name.encode(), fields.get(name))


def _raw_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    if isinstance(value, dict):
        return json.dumps({_raw_text(k): _raw_text(v) for k, v in value.items()})
    return str(value)


def decisions_to_arrow(decisions: list[dict[str, Any]], ingested_at: datetime) -> pa.Table:
    """Valid decisions as an Arrow table in the schema of ``routing_decisions``."""
    schema = ROUTING_DECISIONS.arrow_schema
    columns = {name: [d[name] for d in decisions] for name in REQUIRED_FIELDS}
    columns["stream_id"] = [d.get("stream_id") for d in decisions]
    columns["ingested_at"] = [ingested_at] * len(decisions)
    return pa.Table.from_pydict(columns, schema=schema)


# ---------------------------------------------------------------------------------------------
# The stream side


def ensure_group(client: redis.Redis, stream: str = STREAM, group: str = GROUP) -> None:
    """Create the consumer group (and the stream) if they do not exist yet."""
    try:
        client.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def read_unacked(
    client: redis.Redis, stream: str = STREAM, group: str = GROUP, batch: int = READ_BATCH
) -> Iterator[Entry]:
    """Yield every entry not yet acknowledged: pending ones first, then new ones."""
    ensure_group(client, stream, group)
    for start in ("0", ">"):
        last: str | bytes = start
        while True:
            reply = cast(list[Any], client.xreadgroup(group, CONSUMER, {stream: last}, count=batch))
            entries: list[Entry] = reply[0][1] if reply else []
            if not entries:
                break
            yield from entries
            if start == "0":
                last = entries[-1][0]


def stream_backlog(client: redis.Redis, stream: str = STREAM, group: str = GROUP) -> int:
    """Entries not yet acknowledged by the ingestion group (pending plus never delivered)."""
    if not client.exists(stream):
        return 0
    info = _group_info(client, stream, group)
    if info is None:
        return int(cast(int, client.xlen(stream)))
    lag = info.get("lag")
    if lag is None:  # Redis < 7 cannot tell; count the entries after the last delivered id
        lag = len(_xrange(client, stream, f"({_text(info['last-delivered-id'])}"))
    return int(info.get("pending", 0)) + int(lag)


def _group_info(client: redis.Redis, stream: str, group: str) -> dict[str, Any] | None:
    groups = cast(list[dict[str, Any]], client.xinfo_groups(stream))
    return next((g for g in groups if _text(g.get("name")) == group), None)


def _xrange(client: redis.Redis, stream: str, start: str, end: str = "+") -> list[Entry]:
    return cast(list[Entry], client.xrange(stream, min=start, max=end))


def backlog_days(client: redis.Redis, stream: str = STREAM, group: str = GROUP) -> set[date]:
    """Days of the unacknowledged events, without claiming them (for sensors)."""
    ensure_group(client, stream, group)
    info = _group_info(client, stream, group)
    assert info is not None  # ensure_group created it
    entries = _xrange(client, stream, f"({_text(info['last-delivered-id'])}")
    pending = cast(
        list[dict[str, Any]],
        client.xpending_range(stream, group, min="-", max="+", count=1_000_000),
    )
    if pending:  # one range read over the pending ids, not one round trip per entry
        wanted = {_text(p["message_id"]) for p in pending}
        first, last = _text(pending[0]["message_id"]), _text(pending[-1]["message_id"])
        entries += [e for e in _xrange(client, stream, first, last) if _text(e[0]) in wanted]
    days = set()
    for _, fields in entries:
        try:
            days.add(_parse_ts(json.loads(_field(fields, "data") or "null")["ts"]).date())
        except (EventError, TypeError, KeyError, ValueError):
            continue  # malformed: any run records it as rejected
    return days


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class StreamBatch:
    """The unacknowledged stream entries of one ingestion, parsed and split for ``day``."""

    day: date
    stream: str
    read: int
    decisions: pa.Table
    rejections: list[Rejection]
    deferred: int
    received_at: datetime


@dataclass(frozen=True)
class IngestReport:
    """What one ingestion run did, for logs and Dagster metadata."""

    day: date
    read: int
    new_decisions: int
    duplicates: int
    rejected: int
    deferred: int
    rows_in_partition: int
    decisions_write: WriteResult | None
    rejected_write: WriteResult | None


def collect(client: redis.Redis, day: date, stream: str = STREAM) -> StreamBatch:
    """Read every unacknowledged entry; keep ``day``'s decisions and all malformed entries."""
    entries = list(read_unacked(client, stream))
    parsed = parse_entries(entries)
    now = datetime.now(UTC)
    todays = [d for d in parsed.decisions if d["ts"].date() == day]
    return StreamBatch(
        day=day,
        stream=stream,
        read=len(entries),
        decisions=decisions_to_arrow(todays, now),
        rejections=parsed.rejections,
        deferred=len(parsed.decisions) - len(todays),
        received_at=now,
    )


def acknowledge(client: redis.Redis, batch: StreamBatch, *, decisions: bool = True) -> int:
    """XACK the batch's dead letters, and its decisions when ``decisions`` (they are stored).

    Call it only after the commits that store them. Returns how many entries were acknowledged.
    """
    ids = [r.stream_id for r in batch.rejections]
    if decisions:
        ids += batch.decisions.column("stream_id").to_pylist()
    for start in range(0, len(ids), READ_BATCH):
        client.xack(batch.stream, GROUP, *ids[start : start + READ_BATCH])
    return len(ids)


def ingest_day(
    lakehouse: Lakehouse,
    client: redis.Redis,
    day: date,
    *,
    lineage: Lineage | None = None,
    branch: str | None = None,
    stream: str = STREAM,
) -> IngestReport:
    """Ingest the stream's decisions of ``day`` into ``routing_decisions`` (idempotent).

    Every malformed entry seen is recorded in ``routing_decisions_rejected``. Entries are
    acknowledged only after the commits that store them; a crash before the acknowledgement
    means the next run sees them again, and the deduplication keeps the table exact. (The
    Dagster asset runs the same steps with an audit between the write and the publish.)
    """
    lineage = lineage or Lineage(asset="routing_decisions", partition=day.isoformat())
    branch = branch or lakehouse.settings.branch
    batch = collect(client, day, stream)
    merged, added, decisions_write = write_decisions(
        lakehouse, day, batch.decisions, lineage=lineage, branch=branch
    )
    rejected_write = record_rejections(lakehouse, batch, lineage, branch)
    acknowledge(client, batch)
    report = IngestReport(
        day=day,
        read=batch.read,
        new_decisions=added,
        duplicates=batch.decisions.num_rows - added,
        rejected=len(batch.rejections),
        deferred=batch.deferred,
        rows_in_partition=merged.num_rows,
        decisions_write=decisions_write,
        rejected_write=rejected_write,
    )
    log.info("routing ingest %s: %s", day, report)
    return report


def write_decisions(
    lakehouse: Lakehouse,
    day: date,
    incoming: pa.Table,
    *,
    lineage: Lineage,
    branch: str | None = None,
) -> tuple[pa.Table, int, WriteResult | None]:
    """Merge ``incoming`` decisions into the day's partition and commit if anything is new.

    Optimistic concurrency: the commit requires the branch head it read (Iceberg's
    ``AssertRefSnapshotId``), so a concurrent ingestion of the same day makes it re-read and
    re-merge instead of overwriting rows it never saw.

    Returns the day's rows after the merge, how many were new, and the write (None if none).
    """
    branch = branch or lakehouse.settings.branch
    for _ in range(MERGE_ATTEMPTS):
        table = lakehouse.table(ROUTING_DECISIONS.name)
        # A branch that does not exist yet starts from main when written to.
        head = refs.head(table, branch) or refs.head(table)
        existing = (
            table.scan(row_filter=day_filter(ROUTING_DECISIONS, day), snapshot_id=head).to_arrow()
            if head is not None
            else ROUTING_DECISIONS.arrow_schema.empty_table()
        )
        merged, added = _merge(existing, incoming)
        if not added:
            return merged, 0, None
        try:
            write = writer.overwrite_day(
                ROUTING_DECISIONS, table, merged, day, lineage, branch, retries=1
            )
            return merged, added, write
        except CommitConflictError:
            log.info("routing_decisions %s changed while merging; re-reading", day)
    raise CommitConflictError(
        f"routing_decisions {day} kept changing under {MERGE_ATTEMPTS} merge attempts; "
        "another ingestion of the same day is running: retry the run when it has finished"
    )


def _merge(existing: pa.Table, incoming: pa.Table) -> tuple[pa.Table, int]:
    """Union of the day's rows and the incoming ones; the first row of a decision_id wins.

    The rows stay in Arrow; Polars only computes the keep-masks (its hashing of string keys is
    several times faster than Arrow's).
    """
    ids = pl.Series(incoming.column("decision_id"))
    keep = ids.is_first_distinct() if ids.n_unique() != len(ids) else None
    if existing.num_rows:
        fresh = ~ids.is_in(pl.Series(existing.column("decision_id")).implode())
        keep = fresh if keep is None else keep & fresh
    if keep is not None:
        incoming = incoming.filter(keep.to_arrow())
    if incoming.num_rows == 0:
        return existing, 0
    if existing.num_rows == 0:
        return incoming, incoming.num_rows
    return pa.concat_tables([existing.cast(incoming.schema), incoming]), incoming.num_rows


def record_rejections(
    lakehouse: Lakehouse, batch: StreamBatch, lineage: Lineage, branch: str | None = None
) -> WriteResult | None:
    """Append the batch's dead letters not recorded before (replays add no duplicates)."""
    rejections, stream, now = batch.rejections, batch.stream, batch.received_at
    if not rejections:
        return None
    known = _known_rejections(lakehouse, stream, [r.stream_id for r in rejections], branch)
    fresh = [r for r in rejections if r.stream_id not in known]
    if not fresh:
        return None
    rows = pa.Table.from_pydict(
        {
            "stream_id": [r.stream_id for r in fresh],
            "stream": [stream] * len(fresh),
            "rejected_at": [now] * len(fresh),
            "reason": [r.reason for r in fresh],
            "raw": [r.raw for r in fresh],
            "run_id": [lineage.run_id] * len(fresh),
        },
        schema=ROUTING_DECISIONS_REJECTED.arrow_schema,
    )
    return lakehouse.append(ROUTING_DECISIONS_REJECTED.name, rows, lineage=lineage, branch=branch)


def _known_rejections(
    lakehouse: Lakehouse, stream: str, ids: list[str], branch: str | None
) -> set[str]:
    from pyiceberg.expressions import And, EqualTo, In

    table = lakehouse.table(ROUTING_DECISIONS_REJECTED.name)
    snapshot_id = refs.head(table, branch or MAIN_BRANCH)
    if snapshot_id is None:
        return set()
    scan = table.scan(
        row_filter=And(EqualTo("stream", stream), In("stream_id", set(ids))),
        selected_fields=("stream_id",),
        snapshot_id=snapshot_id,
    )
    return set(scan.to_arrow().column("stream_id").to_pylist())
