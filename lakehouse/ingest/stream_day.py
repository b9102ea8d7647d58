"""One day of a stream, ingested: read, parse, split by day, key check, publish, settle.

:func:`ingest_day` is the one ingest path of every stream domain (routing decisions, workflow
runs, memory events), used alike by the Dagster assets and by any Python program. A domain states
only its :class:`~lakehouse.ingest.contract.StreamContract`. One run of a day:

1. reads every unacknowledged entry of the stream (a :class:`~lakehouse.ingest.streams.
   StreamConsumer`: its own pending entries, those handed back, those of a dead run, new ones);
2. parses each payload with the contract's parser: whatever fails, in parsing or in the Arrow
   conversion, is a dead letter with its reason
   (:func:`~lakehouse.ingest.streams.parse_stream_entries`); no entry can stop the run;
3. keeps the day's rows, hands the other days' back; the contract's hook may drop rows (memory:
   erased memories, acknowledged and never written);
4. looks the keys up in every day of the table (:func:`lakehouse.table.keys.split_known`): a key
   stored (or earlier in the batch) with equal content is a replay, acknowledged; with other
   content a conflicting duplicate, a dead letter (the first version is kept);
5. :func:`publish_day`: merges the day's rows into the partition on an audit branch, publishes
   when the audit passes, records the dead letters;
6. settles: dead letters are acknowledged; the day's entries once published, else handed back;
7. waits for entries of the day that another run holds (read, not yet settled), up to
   ``wait_for_others_s``, and ingests them in further rounds, so a run does not report success
   while its day is pending elsewhere (a dead holder's entries are claimed once idle).

Every entry read thus ends in the table, in the dead-letter table with a reason, handed back for
a later run, or dropped by the hook (counted). A crash before the acknowledgement replays the
entries; the keyed merge and the key check keep the table exact.

:func:`publish_day` (step 5 and 6) is also usable alone:

1. merge the day's parsed rows into the domain's table on an audit branch, keyed on the table's
   key (:func:`lakehouse.table.streaming.merge_day_batches`), and publish it if the audit passes
   (:func:`lakehouse.publish.wap.audit_and_publish`);
2. record the dead letters with their reasons
   (:func:`lakehouse.ingest.streams.record_dead_letters`);
3. settle the stream (:meth:`PublishedDay.settle`): dead letters are acknowledged; the day's
   entries are acknowledged once published, else handed back with the other days' entries, so
   nothing is acknowledged before the commit that holds it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa

from lakehouse.ingest.contract import StreamContract
from lakehouse.ingest.streams import (
    DeadLetter,
    Parsed,
    StreamConsumer,
    parse_stream_entries,
    record_dead_letters,
    to_arrow_or_dead_letters,
)
from lakehouse.publish.wap import Audit, WapResult, audit_and_publish
from lakehouse.stores import RedisClient
from lakehouse.table.keys import split_known
from lakehouse.table.registry import TableSpec
from lakehouse.table.streaming import StreamMergeResult, merge_day_batches
from lakehouse.table.writer import Lineage, WriteResult

if TYPE_CHECKING:
    from lakehouse.core import Lakehouse

__all__ = ["DayIngest", "IngestReport", "PublishedDay", "ingest_day", "ingest_of", "publish_day"]

log = logging.getLogger(__name__)

WAIT_FOR_OTHERS_S = 90.0
"""How long a run waits for its day's entries that another run holds (> the claim idle time)."""
WAIT_POLL_S = 0.25
MAX_ROUNDS = 8


@dataclass(frozen=True)
class PublishedDay:
    """What :func:`publish_day` did: the write-audit-publish, the last merge, the dead letters."""

    wap: WapResult | None
    merge: StreamMergeResult
    rejected_write: WriteResult | None

    @property
    def published(self) -> bool:
        """Whether the day is on the target (nothing new to write counts as published)."""
        return self.wap is None or self.wap.published

    def settle(
        self,
        reader: StreamConsumer,
        *,
        dead: Sequence[DeadLetter],
        day_ids: Sequence[str],
        deferred_ids: Sequence[str],
        also_ack: Sequence[str] = (),
    ) -> None:
        """Acknowledge the dead letters, ``also_ack`` and (if published) the day's entries;
        hand back the other days' entries and (if not published) the day's."""
        published = self.published
        reader.ack(
            [d.stream_id for d in dead] + list(also_ack) + (list(day_ids) if published else [])
        )
        reader.release(list(deferred_ids) + ([] if published else list(day_ids)))


def publish_day(
    lh: Lakehouse,
    spec: TableSpec,
    rejected: TableSpec,
    stream: str,
    rows: pa.Table,
    dead: Sequence[DeadLetter],
    day: date,
    *,
    audit: Audit,
    lineage: Lineage,
    branch: str,
) -> PublishedDay:
    """Merge ``rows`` into ``day`` of ``spec`` through write-audit-publish into ``branch``, then
    record ``dead`` in ``rejected``. A replayed write (the target moved during the audit)
    merges again with the new head; the report keeps the last merge."""
    merges: list[StreamMergeResult] = []

    def write(audit_branch: str) -> WriteResult | None:
        # streamed: the day's existing rows are checked by key, never read whole
        merged = merge_day_batches(spec, lh, rows.to_batches(), day, lineage, audit_branch)
        merges.append(merged)
        return merged.write

    wap = audit_and_publish(
        lh, spec.name, write, audit=audit, day=day, lineage=lineage, target=branch
    )
    rejected_write = record_dead_letters(lh, rejected.name, stream, list(dead), lineage, branch)
    return PublishedDay(wap, merges[-1], rejected_write)


@dataclass(frozen=True)
class IngestReport:
    """What one ingestion of a stream day did, in every domain (for logs and Dagster metadata).

    ``written`` rows were new in the day (on the target once ``published``, else on the audit
    branch); ``duplicates`` were already stored (``replays`` of them on any day, by key) and are
    acknowledged; ``rejected`` dead letters were recorded (``conflicts`` of them conflicting
    duplicates); ``deferred`` valid entries of other days were handed back; ``dropped`` were
    acknowledged unwritten by the contract's hook (memory: erased); ``held_elsewhere`` entries
    of the day were still held by another run when this one stopped waiting.
    """

    day: date
    table: str
    read: int
    written: int
    duplicates: int
    rejected: int
    deferred: int
    rows_in_partition: int
    replays: int
    conflicts: int
    dropped: int
    published: bool
    wap: WapResult | None
    rejected_write: WriteResult | None
    rows: pa.Table
    held_elsewhere: int = 0

    @property
    def write(self) -> WriteResult | None:
        """The write of the day's new rows (None when there was nothing new to write)."""
        return self.wap.write if self.wap is not None else None

    @property
    def acknowledged(self) -> int:
        """The day's rows acknowledged on the stream (all of them when published, else none)."""
        return self.written + self.duplicates if self.published else 0


def ingest_day(
    lh: Lakehouse,
    contract: StreamContract,
    day: date,
    client: RedisClient,
    *,
    audit: Audit,
    lineage: Lineage | None = None,
    branch: str | None = None,
    reader: StreamConsumer | None = None,
    wait_for_others_s: float = WAIT_FOR_OTHERS_S,
) -> IngestReport:
    """Ingest the stream's entries of ``day`` into the contract's table, exactly once.

    Args:
        lh: the lakehouse.
        contract: the stream domain (see :mod:`lakehouse.ingest.contract`).
        day: the day partition to ingest.
        client: Redis holding the stream.
        audit: judges the written day before it is published (``quality.audit.gx_audit``).
        lineage: who writes (default: the table's asset, partition ``day``).
        branch: the branch to publish into (default ``lh.settings.branch``).
        reader: the stream consumer (default a fresh one of the ingestion group).
        wait_for_others_s: how long to wait for entries of ``day`` held by other runs.

    Raises:
        CommitConflictError: other writers of the same day kept committing first.
    """
    if contract.prepare is not None:
        contract.prepare(lh)
    lineage = lineage or Lineage(asset=contract.table.name, partition=day.isoformat())
    branch = branch or lh.settings.branch
    reader = reader or contract.consumer(client)
    day_of = contract.events.event_day

    def one_round() -> IngestReport:
        return _ingest_round(lh, contract, client, reader, day, audit, lineage, branch)

    report = one_round()
    deadline = time.monotonic() + wait_for_others_s
    rounds = 1
    while report.published:  # a failed audit hands the day back: the next run retries it
        released, held = reader.pending_of_day(day_of, day)
        if released and rounds < MAX_ROUNDS:  # handed back by another run meanwhile
            report = _combine(report, one_round())
            rounds += 1
            continue
        if not held:
            break
        if time.monotonic() >= deadline:
            log.warning("%d entries of %s %s are held by another run", held, reader.stream, day)
            break
        time.sleep(WAIT_POLL_S)
    else:
        held = 0
    report = replace(report, held_elsewhere=held)
    log.info("%s ingest %s: %s", contract.table.name, day, _summary(report))
    return report


class DayIngest(Protocol):
    """:func:`ingest_day` of one contract, as a domain offers it: ``(lh, client, day, ...)``."""

    def __call__(
        self,
        lh: Lakehouse,
        client: RedisClient,
        day: date,
        *,
        audit: Audit,
        lineage: Lineage | None = None,
        branch: str | None = None,
        reader: StreamConsumer | None = None,
        wait_for_others_s: float = WAIT_FOR_OTHERS_S,
    ) -> IngestReport: ...


def ingest_of(contract: StreamContract) -> DayIngest:
    """:func:`ingest_day` bound to ``contract``: a domain's ``ingest_day(lh, client, day)``."""

    def ingest(
        lh: Lakehouse,
        client: RedisClient,
        day: date,
        *,
        audit: Audit,
        lineage: Lineage | None = None,
        branch: str | None = None,
        reader: StreamConsumer | None = None,
        wait_for_others_s: float = WAIT_FOR_OTHERS_S,
    ) -> IngestReport:
        return ingest_day(
            lh,
            contract,
            day,
            client,
            audit=audit,
            lineage=lineage,
            branch=branch,
            reader=reader,
            wait_for_others_s=wait_for_others_s,
        )

    ingest.__doc__ = (
        f"Ingest the entries of ``day`` on {contract.stream} into ``{contract.table.name}`` "
        "exactly once (:func:`lakehouse.ingest.stream_day.ingest_day`)."
    )
    return ingest


def _summary(r: IngestReport) -> str:
    return (
        f"read {r.read}, wrote {r.written}, {r.duplicates} duplicates ({r.replays} replays), "
        f"{r.rejected} rejected ({r.conflicts} conflicts), {r.deferred} deferred, "
        f"{r.dropped} dropped, {r.held_elsewhere} held elsewhere, published={r.published}"
    )


def _combine(a: IngestReport, b: IngestReport) -> IngestReport:
    """Two rounds of one run as one report (counts added, the later writes kept)."""
    return replace(
        b,
        read=a.read + b.read,
        written=a.written + b.written,
        duplicates=a.duplicates + b.duplicates,
        rejected=a.rejected + b.rejected,
        replays=a.replays + b.replays,
        conflicts=a.conflicts + b.conflicts,
        dropped=a.dropped + b.dropped,
        wap=b.wap or a.wap,
        rejected_write=b.rejected_write or a.rejected_write,
        published=a.published and b.published,
        rows=pa.concat_tables([a.rows, b.rows]),
    )


def _ingest_round(
    lh: Lakehouse,
    contract: StreamContract,
    client: RedisClient,
    reader: StreamConsumer,
    day: date,
    audit: Audit,
    lineage: Lineage,
    branch: str,
) -> IngestReport:
    entries = list(reader.read_unacked())
    now = datetime.now(UTC)
    parse = contract.bind(lh, client) if contract.bind is not None else contract.parse
    parsed, dead = parse_stream_entries(
        entries, lambda payload: parse(payload, now=now), max_bytes=contract.max_bytes
    )
    for record in parsed:
        record.value["stream_id"] = record.stream_id
    todays = [r for r in parsed if contract.day_of(r.value) == day]
    deferred = [r.stream_id for r in parsed if contract.day_of(r.value) != day]
    dropped: set[str] = set()
    if contract.hook is not None and todays:
        dropped = contract.hook.drop(client, [r.value for r in todays])
        todays = [r for r in todays if r.stream_id not in dropped]
    incoming, unfit = to_arrow_or_dead_letters(todays, lambda rows: contract.to_arrow(rows, now))
    incoming, replays, conflicts = _drop_known(lh, contract, incoming, todays, branch)
    dead = dead + unfit + conflicts
    if contract.dead_letters is not None:
        dead = contract.dead_letters(entries, dead)
    day_result = publish_day(
        lh,
        contract.table,
        contract.rejected,
        reader.stream,
        incoming,
        dead,
        day,
        audit=audit,
        lineage=lineage,
        branch=branch,
    )
    rejected_ids = {d.stream_id for d in dead}
    settled = [r for r in todays if r.stream_id not in rejected_ids]
    ids = [r.stream_id for r in settled]
    day_result.settle(
        reader, dead=dead, day_ids=ids, deferred_ids=deferred, also_ack=sorted(dropped)
    )
    removed = 0
    if contract.hook is not None and day_result.published and settled:
        removed = contract.hook.after_publish(lh, client, [r.value for r in settled])
    merged = day_result.merge
    return IngestReport(
        day=day,
        table=contract.table.name,
        read=len(entries),
        written=merged.added,
        duplicates=len(ids) - merged.added,
        rejected=len(dead),
        deferred=len(deferred),
        rows_in_partition=merged.rows_in_day,
        replays=replays,
        conflicts=len(conflicts),
        dropped=len(dropped) + removed,
        published=day_result.published,
        wap=day_result.wap,
        rejected_write=day_result.rejected_write,
        rows=incoming,
    )


def _drop_known(
    lh: Lakehouse,
    contract: StreamContract,
    incoming: pa.Table,
    records: Sequence[Parsed[dict]],
    branch: str,
) -> tuple[pa.Table, int, list[DeadLetter]]:
    """``incoming`` without replays and conflicting duplicates of keys stored on any day (or
    earlier in the batch); the number of replays and the conflicts as dead letters."""
    if incoming.num_rows == 0:
        return incoming, 0, []
    spec = contract.table
    table, snapshot_id = lh.table_at_head(spec.name, branch)
    split = split_known(spec, table, incoming, snapshot_id, compare=contract.compare)
    if not split.replays and not split.conflicts:
        return incoming, 0, []
    raw = {r.stream_id: r.raw for r in records}
    ids = incoming.column("stream_id").to_pylist()
    conflicts = [
        DeadLetter(ids[i], raw.get(ids[i]), reason) for i, reason in split.conflicts.items()
    ]
    fresh = incoming.take(pa.array(split.fresh, pa.int64()))
    return fresh, len(split.replays), conflicts
