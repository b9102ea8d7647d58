"""Local glue between the memory tiers and the shared mechanisms (swap point for integration).

Everything here stands in for a shared mechanism that is being built elsewhere; nothing else
in ``lakehouse.memory`` consumes streams, opens Qdrant or moves rows between tiers by itself:

- :func:`open_qdrant` → ``lakehouse.open_qdrant(settings)``;
- :func:`ingest_memory_events` → ``lakehouse.streams`` (consumer group, claim, ack after commit,
  dead letters) with ``writer.merge_day``;
- :func:`tier_move` → ``lakehouse.tiering`` (copy, verify in the destination, then trim);
- :func:`memory_table` / :func:`append_new` → the registry's automatic domain discovery and
  ``writer.merge_day``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar, cast

import pyarrow as pa
import redis
from pyiceberg.expressions import In
from pyiceberg.table import Table

from lakehouse import validation as v
from lakehouse.core import Lakehouse
from lakehouse.exceptions import ValidationError
from lakehouse.memory.model import check_tenant
from lakehouse.memory.tables import (
    MEMORY_EVENTS,
    MEMORY_EVENTS_REJECTED,
    NO_STATS_COLUMNS,
)
from lakehouse.settings import Settings
from lakehouse.streams import dead_letter_reason
from lakehouse.writer import Lineage, WriteResult, day_filter

log = logging.getLogger(__name__)

STREAM = "aura:events:memory"
GROUP = "aura-memory-ingest"
CONSUMER = "ingest"
READ_BATCH = 1000
T = TypeVar("T")


def open_qdrant(settings: Settings) -> Any:
    """Qdrant at ``AURA_QDRANT_URL``, else local mode in ``AURA_HOME/qdrant``."""
    from qdrant_client import QdrantClient

    if settings.qdrant_url:
        return QdrantClient(url=settings.qdrant_url)
    settings.qdrant_path.mkdir(parents=True, exist_ok=True)
    return QdrantClient(path=str(settings.qdrant_path))


def memory_table(lh: Lakehouse, name: str) -> Table:
    """A memory table, created on first use, with text columns kept out of manifest stats."""
    table = lh.table(name)
    wanted = {f"write.metadata.metrics.column.{c}": "none" for c in NO_STATS_COLUMNS[name]}
    stale = {k: v for k, v in wanted.items() if table.properties.get(k) != v}
    if stale:
        with table.transaction() as tx:
            tx.set_properties(stale)
        table.refresh()
    return table


def existing_keys(table: Table, key: str, values: Iterable[str]) -> set[str]:
    """Which of ``values`` the table's main head already holds in column ``key``."""
    wanted = set(values)
    if not wanted or table.current_snapshot() is None:
        return set()
    scan = table.scan(row_filter=In(key, wanted), selected_fields=(key,))
    return set(cast(list[str], scan.to_arrow().column(key).to_pylist()))


def append_new(lh: Lakehouse, name: str, key: str, rows: pa.Table, lineage: Lineage) -> int:
    """Append the rows whose ``key`` the table does not hold yet; returns how many."""
    table = memory_table(lh, name)
    known = existing_keys(table, key, rows.column(key).to_pylist())
    if known:
        mask = pa.array([v not in known for v in rows.column(key).to_pylist()])
        rows = rows.filter(mask)
    if rows.num_rows:
        lh.append(name, rows, lineage=lineage)
    return rows.num_rows


def tier_move(
    items: Sequence[T],
    copy: Callable[[Sequence[T]], object],
    verify: Callable[[Sequence[T]], set[str]],
    trim: Callable[[Sequence[str]], object],
    key: Callable[[T], str],
) -> int:
    """Copy ``items`` to the destination, keep those it verifiably holds, trim only those.

    ``copy`` must be idempotent: a crash after it and before ``trim`` leaves both tiers holding
    the item, and the next run copies it again without duplicating it.
    """
    if not items:
        return 0
    copy(items)
    held = verify(items)
    moved = [key(i) for i in items if key(i) in held]
    missing = len(items) - len(moved)
    if missing:
        log.warning("tier move: %d item(s) not verified in the destination; kept", missing)
    trim(moved)
    return len(moved)


# ---------------------------------------------------------------------------------------------
# Event stream → memory_events


def publish_event(client: redis.Redis, event: dict[str, Any], pipe: Any = None) -> None:
    """Append one event to ``aura:events:memory`` (field ``data``, JSON)."""
    (pipe or client).xadd(STREAM, {"data": json.dumps(event, separators=(",", ":"))})


@dataclass(frozen=True)
class EventIngestReport:
    """What one ingestion of ``memory_events`` did."""

    day: date
    read: int
    written: int
    duplicates: int
    rejected: int
    deferred: int
    write: WriteResult | None


def _ensure_group(client: redis.Redis) -> None:
    try:
        client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _read_unacked(client: redis.Redis) -> list[tuple[str, bytes | None]]:
    _ensure_group(client)
    out: list[tuple[str, bytes | None]] = []
    for start in ("0", ">"):
        last: str = start
        while True:
            reply = cast(list[Any], client.xreadgroup(GROUP, CONSUMER, {STREAM: last}, READ_BATCH))
            entries = reply[0][1] if reply else []
            if not entries:
                break
            for sid, fields in entries:
                sid = sid.decode() if isinstance(sid, bytes) else sid
                out.append((sid, (fields or {}).get(b"data") if fields else None))
            if start == "0":
                last = out[-1][0]
    return out


def _ms_dt(value: object) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(int(cast(int, value)) / 1000, UTC)


OPS = ("store", "forget", "forget_tenant")


def _parse(raw: bytes | None, sid: str, now: datetime) -> dict[str, Any]:
    """One entry as a ``memory_events`` row; :class:`InvalidEvent` names what is wrong."""
    if raw is None:
        raise v.InvalidEvent("entry has no 'data' field")
    event = v.load_object(raw)
    v.require(event, ("event_id", "ts_ms", "tenant_id", "op"))
    if event["op"] not in OPS:
        raise v.InvalidEvent(f"unknown op {str(event['op'])[:40]!r}: use one of {list(OPS)}")
    try:
        tenant = check_tenant(event["tenant_id"])
    except ValidationError as exc:
        raise v.InvalidEvent(str(exc)[:300]) from None
    meta = event.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise v.InvalidEvent(f"metadata must be a JSON object, got {type(meta).__name__}")
    optional = {name: event.get(name) is not None for name in _OPTIONAL}
    return {
        "event_id": v.identifier(event, "event_id"),
        "ts": v.check_time("ts_ms", v.epoch_ms(event, "ts_ms"), now=now),
        "tenant_id": tenant,
        "op": event["op"],
        "memory_id": v.identifier(event, "memory_id") if optional["memory_id"] else None,
        "content": v.text(event, "content") if optional["content"] else None,
        "metadata": None if meta is None else json.dumps(meta, allow_nan=False),
        "importance": (
            v.number(event, "importance", minimum=0, maximum=1) if optional["importance"] else None
        ),
        "expires_at": v.epoch_ms(event, "expires_ms") if optional["expires_ms"] else None,
        "signature": v.text(event, "signature", max_chars=1024) if optional["signature"] else None,
        "stream_id": sid,
        "ingested_at": now,
    }


_OPTIONAL = ("memory_id", "content", "importance", "expires_ms", "signature")


def _rejected_row(sid: str, raw: bytes | None, reason: str, now: datetime) -> dict[str, Any]:
    text = raw.decode(errors="replace") if raw is not None else None
    tenant, memory = _best_effort_ids(text)
    return {"stream_id": sid, "stream": STREAM, "rejected_at": now, "reason": reason} | {
        "raw": v.bounded_raw(text),
        "tenant_id": tenant,
        "memory_id": memory,
    }


def _rows_table(
    rows: list[dict[str, Any]], raws: dict[str, bytes | None], now: datetime
) -> tuple[pa.Table, list[dict[str, Any]]]:
    """The rows as Arrow; a row that does not convert is a dead letter (the others go on)."""
    schema = MEMORY_EVENTS.arrow_schema
    try:
        return pa.Table.from_pylist(rows, schema=schema), []
    except Exception:  # isolate the rows that do not fit below
        log.warning("memory events: Arrow conversion failed; isolating the bad rows")
    good, dead = [], []
    for row in rows:
        try:
            pa.Table.from_pylist([row], schema=schema)
        except Exception as exc:  # this row is the dead letter
            reason = f"does not fit the table ({type(exc).__name__}: {str(exc)[:200]})"
            dead.append(_rejected_row(row["stream_id"], raws.get(row["stream_id"]), reason, now))
            continue
        good.append(row)
    return pa.Table.from_pylist(good, schema=schema), dead


def ingest_memory_events(
    lh: Lakehouse, client: redis.Redis, day: date, *, lineage: Lineage | None = None
) -> EventIngestReport:
    """Ingest the stream's events of ``day`` into ``memory_events`` exactly once.

    Rows are deduplicated on ``event_id`` against the table; entries are acknowledged only after
    the commit, so a crash before the XACK replays them and the deduplication absorbs the replay.
    Events of other days stay pending; malformed entries go to ``memory_events_rejected``.
    """
    lineage = lineage or Lineage(asset="memory_events", partition=day.isoformat())
    entries = _read_unacked(client)
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    ack: list[str] = []
    deferred = 0
    raws: dict[str, bytes | None] = {}
    for sid, raw in entries:
        try:
            row = _parse(raw, sid, now)
        except Exception as exc:  # no entry can stop the ingest: it is a dead letter
            rejected.append(_rejected_row(sid, raw, dead_letter_reason(exc), now))
            ack.append(sid)
            continue
        if row["ts"].date() != day:
            deferred += 1
            continue
        rows.append(row)
        raws[sid] = raw
        ack.append(sid)
    table, unfit = _rows_table(rows, raws, now)
    rejected += unfit
    rows = table.to_pylist()
    unique = {r["event_id"]: r for r in rows}
    if len(unique) != len(rows):
        table = pa.Table.from_pylist(list(unique.values()), schema=MEMORY_EVENTS.arrow_schema)
    written = append_new(lh, MEMORY_EVENTS.name, "event_id", table, lineage) if rows else 0
    write = None
    if written:
        tbl = memory_table(lh, MEMORY_EVENTS.name)
        write = WriteResult(
            MEMORY_EVENTS.name, "main", written, tbl.metadata.current_snapshot_id, "append"
        )
    if rejected:
        rej = pa.Table.from_pylist(rejected, schema=MEMORY_EVENTS_REJECTED.arrow_schema)
        append_new(lh, MEMORY_EVENTS_REJECTED.name, "stream_id", rej, lineage)
    for start in range(0, len(ack), READ_BATCH):
        client.xack(STREAM, GROUP, *ack[start : start + READ_BATCH])
    return EventIngestReport(
        day=day,
        read=len(entries),
        written=written,
        duplicates=len(rows) - written,
        rejected=len(rejected),
        deferred=deferred,
        write=write,
    )


def _best_effort_ids(text: str | None) -> tuple[str | None, str | None]:
    """Tenant and memory ids of a malformed event when its JSON still names them (for erase)."""
    try:
        obj = json.loads(text or "")
    except Exception:  # anything unreadable names nobody
        return None, None
    if not isinstance(obj, dict):
        return None, None
    tenant, memory = obj.get("tenant_id"), obj.get("memory_id")
    return (
        tenant if isinstance(tenant, str) and len(tenant) <= v.MAX_ID_CHARS else None,
        memory if isinstance(memory, str) and len(memory) <= v.MAX_ID_CHARS else None,
    )


def read_day_events(lh: Lakehouse, day: date) -> pa.Table:
    """The ``memory_events`` rows of ``day`` (for tests and the asset layer)."""
    table = memory_table(lh, MEMORY_EVENTS.name)
    if table.current_snapshot() is None:
        return MEMORY_EVENTS.arrow_schema.empty_table()
    return table.scan(row_filter=day_filter(MEMORY_EVENTS, day)).to_arrow()
