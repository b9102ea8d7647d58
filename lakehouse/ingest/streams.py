"""Redis Streams consumption into Iceberg: the consumer-group reader and dead letters.

The mechanism every stream-fed domain shares (routing decisions, workflow traces, memory
events), separate from any event contract:

* :class:`StreamConsumer` reads a stream through a consumer group. Each run is its own consumer.
  It reads, in order: its own pending entries, entries that earlier runs handed back
  (:meth:`StreamConsumer.release`), entries of a run of this host whose process is gone (a
  consumer's name carries its host, pid and process start), entries pending on another consumer
  for longer than ``claim_idle_ms`` (a run elsewhere that died before acknowledging; claimed
  with ``XAUTOCLAIM``), then new entries. Entries are acknowledged (:meth:`StreamConsumer.ack`)
  only after the commits that store them, so a crash loses nothing and a replay is
  deduplicated by the table's key.
* :func:`parse_stream_entries` applies a domain's event parser to each entry: an entry that is
  deleted, has no ``data`` field or more than one, is larger than
  :data:`lakehouse.ingest.guards.MAX_EVENT_BYTES`, or makes the parser raise anything at all
  becomes a :class:`DeadLetter` with the reason; the batch goes on.
  :func:`to_arrow_or_dead_letters` does the same for the Arrow conversion (a value that passed
  validation but does not fit its column costs that event only). The guards themselves
  (identifiers, 64-bit integers, finite numbers, time window) are in :mod:`lakehouse.ingest.guards`.
* :func:`record_dead_letters` stores entries that break the contract, with the reason, in a
  ``<x>_rejected`` table whose schema :func:`rejected_table_spec` gives every domain alike;
  an entry already recorded is not recorded twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import pyarrow as pa
import redis
from pyiceberg.expressions import And, BooleanExpression, EqualTo, In, Or
from pyiceberg.schema import Schema
from pyiceberg.types import StringType, TimestamptzType
from redis.cluster import RedisCluster

from lakehouse.ingest.guards import MAX_EVENT_BYTES, InvalidEvent, bounded_raw
from lakehouse.stores import RedisClient
from lakehouse.table.expectations import not_null, unique
from lakehouse.table.journal import process_start
from lakehouse.table.registry import TableSpec, column
from lakehouse.table.writer import Lineage, WriteResult

if TYPE_CHECKING:
    from lakehouse.core import Lakehouse

log = logging.getLogger(__name__)

GROUP = "aura-lakehouse"
READ_BATCH = 10_000
CLAIM_IDLE_MS = 60_000
PAYLOAD_FIELD = "data"

Entry = tuple[bytes, dict[bytes, Any] | None]
"""A stream entry as :class:`StreamConsumer` reads it: (entry id, fields), fields None once
deleted. A field the producer gave more than once (Redis keeps every pair) maps to the list of
its values, in order, where redis-py would keep only the last (see :func:`entry_fields`)."""
T = TypeVar("T")


def text(value: object) -> str:
    """A Redis reply value as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def payloads_of(fields: dict | None, name: str = PAYLOAD_FIELD) -> list[bytes | str]:
    """Every value of one field of an entry (bytes or str keys), in order; [] if absent."""
    if not fields:
        return []
    value = fields.get(name.encode(), fields.get(name))
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def field_of(fields: dict | None, name: str = PAYLOAD_FIELD) -> bytes | str | None:
    """One field of an entry, None if absent, deleted or given more than once."""
    values = payloads_of(fields, name)
    return values[0] if len(values) == 1 else None


def raw_text(value: object) -> str | None:
    """A payload or a whole entry as text, exactly as received (undecodable bytes escaped).

    An entry's fields become a JSON object; a field given more than once, a list of its values.
    """
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    if isinstance(value, dict):
        return json.dumps(
            {
                raw_text(k): [raw_text(x) for x in v] if isinstance(v, list) else raw_text(v)
                for k, v in value.items()
            }
        )
    return str(value)


def entry_fields(flat: Sequence[Any] | None) -> dict[Any, Any] | None:
    """An entry's flat ``[field, value, ...]`` reply as a dict that loses no value.

    Redis keeps every pair of an ``XADD``, repeated field names included; redis-py's own reply
    parsing keeps the last value of a repeated field and drops the others without a trace. Here
    a repeated field maps to the list of all its values, so the ingestion can refuse the entry
    with a reason instead of storing one payload and losing the other.
    """
    if flat is None:
        return None
    fields: dict[Any, Any] = {}
    for name, value in zip(flat[::2], flat[1::2], strict=True):
        if name in fields:
            before = fields[name]
            fields[name] = [*before, value] if isinstance(before, list) else [before, value]
        else:
            fields[name] = value
    return fields


def _entries(reply: Sequence[Any] | None) -> list[Any]:
    return [(e[0], entry_fields(e[1])) if e is not None else (None, None) for e in (reply or [])]


def _streams(reply: Any, **_: Any) -> list[Any]:
    items = reply.items() if isinstance(reply, dict) else (reply or [])
    return [[name, _entries(entries)] for name, entries in items]


def _claimed(reply: Any, **options: Any) -> Any:
    return reply if options.get("parse_justid") else _entries(reply)


def _autoclaimed(reply: Any, **options: Any) -> Any:
    if options.get("parse_justid"):
        return reply[1]
    return [reply[0], _entries(reply[1]), *reply[2:]]


_ENTRY_REPLIES: dict[str, Callable[..., Any]] = {
    "XREADGROUP": _streams,
    "XRANGE": lambda reply, **_: _entries(reply),
    "XCLAIM": _claimed,
    "XAUTOCLAIM": _autoclaimed,
}


def entry_reader(client: RedisClient, stream: str) -> RedisClient:
    """A client on ``client``'s connection pool whose stream replies keep repeated fields
    (:func:`entry_fields`); ``client`` itself is left as it is.

    On a Redis Cluster it is the pool of the master that serves ``stream``'s slot: a reshard
    while a run reads makes its reads fail (MOVED), and the next run reads from the new master.
    """
    if isinstance(client, RedisCluster):
        node = client.get_node_from_key(stream)
        if node is None or node.redis_connection is None:
            raise redis.ConnectionError(f"no Redis Cluster node serves the slot of {stream}")
        server = node.redis_connection
    else:
        server = client
    reader = redis.Redis(connection_pool=server.connection_pool)
    for command, callback in _ENTRY_REPLIES.items():
        reader.set_response_callback(command, callback)
    return reader


def consumer_name() -> str:
    """A new consumer name naming this host and process: ``run-<id>@<host>:<pid>:<start>``.

    A later run on the same host that finds the process gone (or the pid reused by a process
    started at another time) takes the consumer's entries at once instead of waiting
    ``claim_idle_ms``. The process's identity is the one publish journals use
    (:func:`lakehouse.table.journal.process_start`).
    """
    pid = os.getpid()
    return f"run-{uuid.uuid4().hex[:12]}@{socket.gethostname()}:{pid}:{process_start(pid)}"


def consumer_is_dead(name: str) -> bool:
    """Whether ``name`` (see :func:`consumer_name`) is a consumer of this host whose process
    has ended; consumers of other hosts, and names of another form, are never presumed dead."""
    _, at, where = name.partition("@")
    host, _, start = where.rpartition(":")
    host, _, pid = host.rpartition(":")
    if not at or host != socket.gethostname() or not pid.isdigit():
        return False
    now = process_start(int(pid))
    return now is None or bool(start and now and now != start)


class StreamConsumer:
    """One run's reader of ``stream`` in consumer group ``group``.

    Args:
        client: a Redis client (``decode_responses=False``).
        stream: the stream key.
        group: the consumer group shared by every run of one ingestion.
        consumer: this run's consumer name (default unique per instance, naming this host and
            process: see :func:`consumer_name`).
        claim_idle_ms: entries pending on another consumer this long are taken over (their
            reader is presumed dead).
        batch: entries per Redis call.
    """

    def __init__(
        self,
        client: RedisClient,
        stream: str,
        group: str = GROUP,
        consumer: str | None = None,
        *,
        claim_idle_ms: int = CLAIM_IDLE_MS,
        batch: int = READ_BATCH,
    ) -> None:
        self.client = client
        self._entries = entry_reader(client, stream)
        self.stream = stream
        self.group = group
        self.consumer = consumer or consumer_name()
        self.claim_idle_ms = claim_idle_ms
        self.batch = batch

    @property
    def parked(self) -> str:
        """The consumer that holds entries handed back by :meth:`release`."""
        return f"{self.group}:released"

    def ensure_group(self) -> None:
        """Create the consumer group (and the stream) if they do not exist yet."""
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read_unacked(self) -> Iterator[Entry]:
        """Yield every entry not yet acknowledged that this run may take (see the module doc)."""
        self.ensure_group()
        yield from self._read("0")
        yield from self._claim_released()
        for dead in self._dead_consumers():
            yield from self._claim_from(dead)
        yield from self._claim_stale()
        yield from self._read(">")

    def _read(self, start: str) -> Iterator[Entry]:
        last: str | bytes = start
        while True:
            reply = cast(
                list[Any],
                self._entries.xreadgroup(
                    self.group, self.consumer, {self.stream: last}, count=self.batch
                ),
            )
            entries: list[Entry] = reply[0][1] if reply else []
            if not entries:
                return
            yield from entries
            if start != ">":
                last = entries[-1][0]

    def _claim_released(self) -> Iterator[Entry]:
        yield from self._claim_from(self.parked)

    def _dead_consumers(self) -> list[str]:
        """Consumers of the group holding entries whose run's process on this host is gone."""
        consumers = cast(list[dict[str, Any]], self.client.xinfo_consumers(self.stream, self.group))
        return [
            name
            for c in consumers
            if int(c.get("pending") or 0) and consumer_is_dead(name := text(c["name"]))
        ]

    def _claim_from(self, consumer: str) -> Iterator[Entry]:
        """Every entry pending on ``consumer``, taken over now (deleted ones as ``None``)."""
        while True:
            pending = cast(
                list[dict[str, Any]],
                self.client.xpending_range(
                    self.stream, self.group, "-", "+", self.batch, consumername=consumer
                ),
            )
            if not pending:
                return
            ids = [p["message_id"] for p in pending]
            reply = cast(
                list[Any], self._entries.xclaim(self.stream, self.group, self.consumer, 0, ids)
            )
            claimed: list[Entry] = [e for e in reply if e is not None and e[0] is not None]
            yield from claimed
            gone = set(map(text, ids)) - {text(e[0]) for e in claimed}
            yield from ((i.encode(), None) for i in sorted(gone))  # deleted from the stream

    def _claim_stale(self) -> Iterator[Entry]:
        cursor: str | bytes = "0-0"
        while True:
            reply = cast(
                list[Any],
                self._entries.xautoclaim(
                    self.stream,
                    self.group,
                    self.consumer,
                    self.claim_idle_ms,
                    start_id=cursor,
                    count=self.batch,
                ),
            )
            cursor, entries = reply[0], reply[1]
            yield from (e for e in entries if e is not None)
            deleted = reply[2] if len(reply) > 2 else []  # Redis 7 drops deleted ids itself
            yield from ((i if isinstance(i, bytes) else str(i).encode(), None) for i in deleted)
            if text(cursor) == "0-0":
                return

    def ack(self, ids: Sequence[str | bytes]) -> int:
        """Acknowledge entries (call only after the commits that store them)."""
        for start in range(0, len(ids), self.batch):
            self.client.xack(self.stream, self.group, *ids[start : start + self.batch])
        return len(ids)

    def release(self, ids: Sequence[str | bytes]) -> int:
        """Hand entries this run read but did not store back to the group, for the next run.

        They stay pending (unacknowledged) on a parking consumer that the next reader claims
        from at once, without waiting ``claim_idle_ms``.
        """
        for start in range(0, len(ids), self.batch):
            chunk: list[Any] = list(ids[start : start + self.batch])
            self.client.xclaim(self.stream, self.group, self.parked, 0, chunk, justid=True)
        return len(ids)

    def backlog(self) -> int:
        """Entries not yet acknowledged by the group (pending plus never delivered)."""
        if not self.client.exists(self.stream):
            return 0
        info = self._group_info()
        if info is None:
            return int(cast(int, self.client.xlen(self.stream)))
        lag = info.get("lag")
        if lag is None:  # Redis < 7 cannot tell; count the entries after the last delivered id
            lag = len(self._xrange(f"({text(info['last-delivered-id'])}"))
        return int(info.get("pending", 0)) + int(lag)

    def backlog_days(self, ts_of: Callable[[bytes], date | None]) -> set[date]:
        """Days of the unacknowledged entries, without claiming them (for sensors).

        ``ts_of`` maps an entry's payload (its ``data`` field) to its day, or None when the
        payload is malformed (such entries count for no day).
        """
        self.ensure_group()
        info = self._group_info()
        assert info is not None  # ensure_group created it
        entries = self._xrange(f"({text(info['last-delivered-id'])}")
        pending = cast(
            list[dict[str, Any]],
            self.client.xpending_range(self.stream, self.group, "-", "+", 1_000_000),
        )
        if pending:  # one range read over the pending ids, not one round trip per entry
            wanted = {text(p["message_id"]) for p in pending}
            first, last = text(pending[0]["message_id"]), text(pending[-1]["message_id"])
            entries += [e for e in self._xrange(first, last) if text(e[0]) in wanted]
        days = set()
        for _, fields in entries:
            payload = field_of(fields)
            if payload is None:
                continue
            day = ts_of(payload if isinstance(payload, bytes) else payload.encode())
            if day is not None:
                days.add(day)
        return days

    def pending_of_day(self, ts_of: Callable[[bytes], date | None], day: date) -> tuple[int, int]:
        """Entries of ``day`` pending elsewhere: (ready to take, held by other runs).

        Another run holds entries between its read and its acknowledgement or release; a run
        of ``day`` takes the handed-back ones, those of a run of this host whose process is
        gone, and those idle for ``claim_idle_ms`` (their holder is presumed dead), at once,
        and waits for the held ones (:func:`lakehouse.ingest.stream_day.ingest_day`) rather
        than report success while its day is pending.
        """
        self.ensure_group()
        pending = cast(
            list[dict[str, Any]],
            self.client.xpending_range(self.stream, self.group, "-", "+", 1_000_000),
        )
        holder = {
            text(p["message_id"]): text(p["consumer"])
            for p in pending
            if text(p["consumer"]) != self.consumer
        }
        dead = set(self._dead_consumers()) if holder else set()
        stale = {
            text(p["message_id"])
            for p in pending
            if int(p.get("time_since_delivered") or 0) >= self.claim_idle_ms
            or text(p["consumer"]) in dead
        }
        if not holder:
            return 0, 0
        first, last = min(holder, key=_id_order), max(holder, key=_id_order)
        released = held = 0
        for entry_id, fields in self._xrange(first, last):
            who = holder.get(text(entry_id))
            payload = field_of(fields)
            if who is None or payload is None:
                continue
            if ts_of(payload if isinstance(payload, bytes) else payload.encode()) != day:
                continue
            if who == self.parked or text(entry_id) in stale:
                released += 1
            else:
                held += 1
        return released, held

    def _group_info(self) -> dict[str, Any] | None:
        groups = cast(list[dict[str, Any]], self.client.xinfo_groups(self.stream))
        return next((g for g in groups if text(g.get("name")) == self.group), None)

    def _xrange(self, start: str, end: str = "+") -> list[Entry]:
        return cast(list[Entry], self._entries.xrange(self.stream, min=start, max=end))


@dataclass(frozen=True)
class EventStream:
    """A domain's event stream: its Redis key, read by the ingestion group.

    ``event_day`` maps an entry's payload to its day, or None when the payload is malformed,
    and never raises (sensors call it on whatever the stream holds).
    """

    name: str
    event_day: Callable[[bytes], date | None]
    group: str = GROUP

    def consumer(self, client: RedisClient) -> StreamConsumer:
        """A fresh consumer of the stream in the ingestion group (each run is its own)."""
        return StreamConsumer(client, self.name, self.group)

    def backlog(self, client: RedisClient) -> int:
        """Entries not yet acknowledged by the ingestion group (pending plus never delivered)."""
        return self.consumer(client).backlog()

    def backlog_days(self, client: RedisClient) -> set[date]:
        """Days of the unacknowledged events, without claiming them (for sensors)."""
        return self.consumer(client).backlog_days(self.event_day)


def _id_order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


# ---------------------------------------------------------------------------------------------
# Dead letters


@dataclass(frozen=True)
class DeadLetter:
    """A stream entry that broke the contract: its id, payload as received, and why.

    Built from the whole payload: ``payload_sha256`` is the digest of all of it (unless given),
    then ``raw`` is cut to :data:`~lakehouse.ingest.guards.MAX_RAW_CHARS` (saying so). Two
    oversized payloads that differ only past the cut keep different digests.
    """

    stream_id: str
    raw: str | None
    reason: str
    payload_sha256: str | None = None

    def __post_init__(self) -> None:
        if self.payload_sha256 is None and self.raw is not None:
            object.__setattr__(self, "payload_sha256", _payload_hash(self.raw))
        object.__setattr__(self, "raw", bounded_raw(self.raw))


def rejected_table_spec(name: str, description: str) -> TableSpec:
    """The spec of a domain's dead-letter table (``<x>_rejected``): one schema for all."""
    return TableSpec(
        name=name,
        schema=Schema(
            column(1, "stream_id", StringType(), doc="Redis stream entry id of the rejected event"),
            column(2, "stream", StringType()),
            column(3, "rejected_at", TimestamptzType()),
            column(4, "reason", StringType(), doc="Why the event was rejected"),
            column(5, "raw", StringType(), required=False, doc="The payload exactly as received"),
            column(6, "run_id", StringType(), required=False),
            column(
                7,
                "payload_sha256",
                StringType(),
                required=False,
                doc="SHA-256 of the payload (a re-published identical payload is recorded once)",
            ),
        ),
        time_column="rejected_at",
        key=("stream", "stream_id"),
        description=description,
        expectations=(not_null("stream_id"), not_null("reason"), unique("stream", "stream_id")),
    )


def record_dead_letters(
    lh: Lakehouse,
    table_name: str,
    stream: str,
    dead: Sequence[DeadLetter],
    lineage: Lineage,
    branch: str | None = None,
) -> WriteResult | None:
    """Append the dead letters not recorded before; None if none.

    A dead letter is known when its entry (key ``stream, stream_id``) or its payload (SHA-256 of
    ``raw``, within the stream) is already recorded: a replayed entry and a re-published identical
    payload (a replayed workload, a producer retry) are each recorded once, with the first entry
    id seen. Entries without a payload are deduplicated by entry id only.

    ``payload_sha256`` is the digest of the whole payload as received, while the stored ``raw``
    is cut (:class:`DeadLetter`): two oversized payloads that differ only past the cut are two
    dead letters, never one.
    """
    if not dead:
        return None
    branch = branch or lh.settings.branch
    hashes = {d.stream_id: d.payload_sha256 for d in dead}
    known_ids, known_hashes = _known(
        lh,
        table_name,
        stream,
        [d.stream_id for d in dead],
        {h for h in hashes.values() if h},
        branch,
    )
    fresh: dict[str, DeadLetter] = {}
    seen: set[str] = set(known_hashes)
    for d in dead:
        digest = hashes[d.stream_id]
        if d.stream_id in known_ids or d.stream_id in fresh or (digest and digest in seen):
            continue
        fresh[d.stream_id] = d
        if digest:
            seen.add(digest)
    if not fresh:
        return None
    letters = list(fresh.values())
    now = datetime.now(UTC)
    rows = pa.Table.from_pydict(
        {
            "stream_id": [d.stream_id for d in letters],
            "stream": [stream] * len(letters),
            "rejected_at": [now] * len(letters),
            "reason": [d.reason for d in letters],
            "raw": [d.raw for d in letters],
            "run_id": [lineage.run_id] * len(letters),
            "payload_sha256": [hashes[d.stream_id] for d in letters],
        },
        schema=lh.spec(table_name).arrow_schema,
    )
    return lh.append(table_name, rows, lineage=lineage, branch=branch)


def _payload_hash(raw: str | None) -> str | None:
    return hashlib.sha256(raw.encode()).hexdigest() if raw is not None else None


def _known(
    lh: Lakehouse, table_name: str, stream: str, ids: list[str], hashes: set[str], branch: str
) -> tuple[set[str], set[str]]:
    """Entry ids and payload hashes among ``ids`` / ``hashes`` already recorded for ``stream``."""
    table, snapshot_id = lh.table_at_head(table_name, branch)
    if snapshot_id is None:
        return set(), set()
    names = {f.name for f in table.schema().fields}
    match: BooleanExpression = In("stream_id", set(ids))
    fields: tuple[str, ...] = ("stream_id",)
    if hashes and "payload_sha256" in names:  # tables written before the column existed
        match = Or(match, In("payload_sha256", hashes))
        fields = ("stream_id", "payload_sha256")
    scan = table.scan(
        row_filter=And(EqualTo("stream", stream), match),
        selected_fields=fields,
        snapshot_id=snapshot_id,
    )
    found = scan.to_arrow()
    known_hashes = (
        {h for h in found.column("payload_sha256").to_pylist() if h}
        if "payload_sha256" in found.column_names
        else set()
    )
    return set(found.column("stream_id").to_pylist()), known_hashes


# ---------------------------------------------------------------------------------------------
# Parsing entries: no entry can stop a batch


@dataclass(frozen=True)
class Parsed(Generic[T]):
    """One entry that passed its parser: the stream id, the parsed value and the raw payload."""

    stream_id: str
    value: T
    raw: str | None


def dead_letter_reason(exc: BaseException) -> str:
    """The reason stored for an entry whose parsing raised ``exc``."""
    if isinstance(exc, InvalidEvent):
        return str(exc)
    return f"could not be parsed ({type(exc).__name__}: {str(exc)[:300]})"


def parse_stream_entries(
    entries: Sequence[tuple[bytes | str, dict | None]],
    parse: Callable[[bytes | str], T],
    *,
    max_bytes: int = MAX_EVENT_BYTES,
) -> tuple[list[Parsed[T]], list[DeadLetter]]:
    """Apply ``parse`` to each entry's payload; every failure is a dead letter with a reason.

    ``parse`` raises :class:`~lakehouse.exceptions.InvalidEvent` for a contract violation; any
    other ``Exception`` it raises is caught too (the reason names it), so one hostile entry
    never stops the batch.
    """
    parsed: list[Parsed[T]] = []
    dead: list[DeadLetter] = []
    for entry_id, fields in entries:
        sid = text(entry_id)
        payloads = payloads_of(fields, PAYLOAD_FIELD)
        if len(payloads) != 1:
            if fields is None:
                reason = "entry was deleted from the stream before ingestion"
            elif payloads:
                reason = (
                    f"entry has {len(payloads)} {PAYLOAD_FIELD!r} fields; send one payload per "
                    "entry (each payload in its own XADD)"
                )
            else:
                reason = f"entry has no {PAYLOAD_FIELD!r} field"
            dead.append(DeadLetter(sid, raw_text(fields), reason))
            continue
        payload = payloads[0]
        size = len(payload) if isinstance(payload, bytes) else len(payload.encode(errors="replace"))
        if size > max_bytes:
            reason = f"event is {size} bytes, more than the {max_bytes} allowed"
            dead.append(DeadLetter(sid, raw_text(payload), reason))
            continue
        try:
            value = parse(payload)
        except Exception as exc:  # any failure of one entry is its dead letter
            dead.append(DeadLetter(sid, raw_text(payload), dead_letter_reason(exc)))
            continue
        parsed.append(Parsed(sid, value, raw_text(payload)))
    return parsed, dead


def to_arrow_or_dead_letters(
    records: Sequence[Parsed[T]], build: Callable[[list[T]], pa.Table]
) -> tuple[pa.Table, list[DeadLetter]]:
    """``build`` the records' Arrow table; a record that makes it fail becomes a dead letter.

    The whole batch is converted at once; only when that fails is each record converted alone
    to find the ones that do not fit (e.g. a number a validator missed), which are rejected.
    """
    try:
        return build([r.value for r in records]), []
    except Exception:  # isolate the offending records below
        log.warning("Arrow conversion of %d records failed; isolating the bad ones", len(records))
    good: list[T] = []
    dead: list[DeadLetter] = []
    for record in records:
        try:
            build([record.value])
        except Exception as exc:  # this record is the dead letter
            reason = f"does not fit the table ({type(exc).__name__}: {str(exc)[:300]})"
            dead.append(DeadLetter(record.stream_id, record.raw, reason))
            continue
        good.append(record.value)
    return build(good), dead
