"""Routing ingestion: the stream's decisions of one day into ``routing_decisions``, audited.

:func:`ingest_day` is the one ingest path, used by the Dagster asset and by any Python program:

1. read every unacknowledged entry of ``aura:events:routing`` (a :class:`~lakehouse.ingest.streams.
   StreamConsumer`: pending entries of crashed runs and of other days included);
2. write-audit-publish the day (:mod:`lakehouse.publish.wap`): on an audit branch, merge the day's
   decisions into the partition keyed on ``decision_id`` (:func:`lakehouse.table.writer.merge_day`),
   run the audit it is given, and publish only when it passes;
3. record malformed entries in ``routing_decisions_rejected`` with the reason;
4. acknowledge the dead letters, and the decisions once published. Entries of other days, and
   decisions whose audit failed, are handed back to the group for a later run.

No entry can stop the run: whatever fails to parse or to convert is a dead letter with its
reason (:mod:`lakehouse.ingest.guards`, :func:`lakehouse.ingest.streams.parse_stream_entries`). A
``decision_id`` is unique across every day (:func:`lakehouse.table.keys.split_known`): an event
already stored on any day with the same content is a replay (acknowledged, not written again);
with other content it is a conflicting duplicate and goes to the dead letters.

A crash before the acknowledgement means a later run sees the entries again; the keyed merge
keeps the table exact.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

import pyarrow as pa
import redis

from lakehouse.core import Lakehouse
from lakehouse.ingest.stream_day import publish_day
from lakehouse.ingest.streams import DeadLetter, EventStream, StreamConsumer
from lakehouse.publish.wap import Audit, WapResult
from lakehouse.routing.events import (
    CONTENT_FIELDS,
    STREAM,
    decisions_table,
    event_day,
    parse_entries,
)
from lakehouse.routing.tables import ROUTING_DECISIONS, ROUTING_DECISIONS_REJECTED
from lakehouse.table import writer
from lakehouse.table.keys import split_known
from lakehouse.table.writer import Lineage, MergeResult, WriteResult

log = logging.getLogger(__name__)

WAIT_FOR_OTHERS_S = 90.0
"""How long a run waits for its day's entries that another run holds (> the claim idle time)."""
WAIT_POLL_S = 0.25
MAX_ROUNDS = 8


EVENTS = EventStream(STREAM, event_day)
"""The routing stream; its consumer, backlog and backlog days below serve ingest and sensors."""
consumer = EVENTS.consumer
stream_backlog = EVENTS.backlog
backlog_days = EVENTS.backlog_days


@dataclass(frozen=True)
class StreamBatch:
    """The unacknowledged stream entries of one ingestion, parsed and split for ``day``."""

    day: date
    stream: str
    read: int
    decisions: pa.Table
    rejections: list[DeadLetter]
    deferred_ids: list[str]
    received_at: datetime

    @property
    def deferred(self) -> int:
        """Valid decisions of other days, left for their own day's run."""
        return len(self.deferred_ids)


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
    replays: int
    conflicts: int
    decisions_write: WriteResult | None
    rejected_write: WriteResult | None
    wap: WapResult | None
    published: bool
    held_elsewhere: int = 0

    @property
    def acknowledged_decisions(self) -> int:
        """Decisions acknowledged on the stream (all of the day's when published, else none)."""
        return self.new_decisions + self.duplicates if self.published else 0


def collect(reader: StreamConsumer, day: date) -> StreamBatch:
    """Read every unacknowledged entry; keep ``day``'s decisions and all malformed entries."""
    entries = list(reader.read_unacked())
    parsed = parse_entries(entries)
    now = datetime.now(UTC)
    todays = [d for d in parsed.decisions if d["ts"].date() == day]
    decisions, unfit = decisions_table(parsed, todays, now)
    return StreamBatch(
        day=day,
        stream=reader.stream,
        read=len(entries),
        decisions=decisions,
        rejections=parsed.rejections + unfit,
        deferred_ids=[d["stream_id"] for d in parsed.decisions if d["ts"].date() != day],
        received_at=now,
    )


def drop_known(lh: Lakehouse, batch: StreamBatch, branch: str) -> tuple[StreamBatch, int, int]:
    """Remove replays and conflicting duplicates of decisions stored on any day of ``branch``.

    Returns the batch holding only fresh decisions (conflicts added to its dead letters), the
    number of replays and the number of conflicts.
    """
    if batch.decisions.num_rows == 0:
        return batch, 0, 0
    table = lh.table(ROUTING_DECISIONS.name)
    snapshot_id = lh.head(ROUTING_DECISIONS.name, branch)
    split = split_known(
        ROUTING_DECISIONS, table, batch.decisions, snapshot_id, compare=CONTENT_FIELDS
    )
    if not split.replays and not split.conflicts:
        return batch, 0, 0
    ids = batch.decisions.column("stream_id").to_pylist()
    conflicts = [
        DeadLetter(ids[i], _row_json(batch.decisions, i), reason)
        for i, reason in split.conflicts.items()
    ]
    fresh = replace(
        batch,
        decisions=batch.decisions.take(pa.array(split.fresh, pa.int64())),
        rejections=batch.rejections + conflicts,
    )
    return fresh, len(split.replays), len(conflicts)


def _row_json(table: pa.Table, i: int) -> str:
    row = table.slice(i, 1).to_pylist()[0]
    return json.dumps({k: v for k, v in row.items() if k != "ingested_at"}, default=str)


def write_decisions(
    lakehouse: Lakehouse,
    day: date,
    incoming: pa.Table,
    *,
    lineage: Lineage,
    branch: str | None = None,
) -> MergeResult:
    """Merge ``incoming`` decisions into the day of ``branch`` (keyed on ``decision_id``)."""
    branch = branch or lakehouse.settings.branch
    return writer.merge_day(ROUTING_DECISIONS, lakehouse, incoming, day, lineage, branch)


def ingest_day(
    lh: Lakehouse,
    client: redis.Redis,
    day: date,
    *,
    audit: Audit,
    lineage: Lineage | None = None,
    branch: str | None = None,
    reader: StreamConsumer | None = None,
    wait_for_others_s: float = WAIT_FOR_OTHERS_S,
) -> IngestReport:
    """Ingest the stream's decisions of ``day`` into ``routing_decisions`` (idempotent).

    Entries of ``day`` that another run holds (read but not yet acknowledged or handed back)
    are waited for, up to ``wait_for_others_s``, and ingested in further rounds, so a run does
    not report success while its day is pending because of another run. What is still held
    after that is in :attr:`IngestReport.held_elsewhere` (a dead holder's entries are claimed
    by the next run once idle for ``claim_idle_ms``).

    Args:
        lh: the lakehouse.
        client: Redis holding the stream.
        day: the day partition to ingest.
        audit: judges the written day before it is published (``quality.audit.gx_audit``).
        lineage: who writes (default: asset ``routing_decisions``, partition ``day``).
        branch: the branch to publish into (default ``lh.settings.branch``).
        reader: the stream consumer (default a fresh one of the ingestion group).
        wait_for_others_s: how long to wait for entries of ``day`` held by other runs.

    Raises:
        CommitConflictError: other writers of the same day kept committing first.
    """
    lineage = lineage or Lineage(asset=ROUTING_DECISIONS.name, partition=day.isoformat())
    branch = branch or lh.settings.branch
    reader = reader or consumer(client)
    report = _ingest_round(lh, reader, day, audit, lineage, branch)
    deadline = time.monotonic() + wait_for_others_s
    rounds = 1
    while report.published:  # a failed audit hands the day back: the next run retries it
        released, held = reader.pending_of_day(event_day, day)
        if released and rounds < MAX_ROUNDS:  # handed back by another run meanwhile
            report = _combine(report, _ingest_round(lh, reader, day, audit, lineage, branch))
            rounds += 1
            continue
        if not held:
            break
        if time.monotonic() >= deadline:
            log.warning("%d entries of %s are still held by another run", held, day)
            break
        time.sleep(WAIT_POLL_S)
    else:
        held = 0
    report = replace(report, held_elsewhere=held)
    log.info("routing ingest %s: %s", day, report)
    return report


def _combine(a: IngestReport, b: IngestReport) -> IngestReport:
    """Two rounds of one run as one report (counts added, the later writes kept)."""
    return replace(
        b,
        read=a.read + b.read,
        new_decisions=a.new_decisions + b.new_decisions,
        duplicates=a.duplicates + b.duplicates,
        rejected=a.rejected + b.rejected,
        deferred=b.deferred,
        replays=a.replays + b.replays,
        conflicts=a.conflicts + b.conflicts,
        decisions_write=b.decisions_write or a.decisions_write,
        rejected_write=b.rejected_write or a.rejected_write,
        wap=b.wap or a.wap,
        published=a.published and b.published,
    )


def _ingest_round(
    lh: Lakehouse,
    reader: StreamConsumer,
    day: date,
    audit: Audit,
    lineage: Lineage,
    branch: str,
) -> IngestReport:
    batch = collect(reader, day)
    read_ids = batch.decisions.column("stream_id").to_pylist()
    batch, replays, conflicts = drop_known(lh, batch, branch)
    day_result = publish_day(
        lh,
        ROUTING_DECISIONS,
        ROUTING_DECISIONS_REJECTED,
        batch.stream,
        batch.decisions,
        batch.rejections,
        day,
        audit=audit,
        lineage=lineage,
        branch=branch,
    )
    rejected_ids = {r.stream_id for r in batch.rejections}
    decision_ids = [sid for sid in read_ids if sid not in rejected_ids]
    day_result.settle(
        reader, dead=batch.rejections, day_ids=decision_ids, deferred_ids=batch.deferred_ids
    )
    merged, wap, published = day_result.merge, day_result.wap, day_result.published
    rejected_write = day_result.rejected_write
    report = IngestReport(
        day=day,
        read=batch.read,
        new_decisions=merged.added,
        duplicates=batch.decisions.num_rows - merged.added + replays,
        rejected=len(batch.rejections),
        deferred=batch.deferred,
        rows_in_partition=merged.rows.num_rows,
        replays=replays,
        conflicts=conflicts,
        decisions_write=wap.write if wap is not None else None,
        rejected_write=rejected_write,
        wap=wap,
        published=published,
    )
    return report
