"""Routing ingestion: the stream's decisions of one day into ``routing_decisions``, audited.

The routing stream's :data:`CONTRACT` is all this domain adds to the one ingest path
(:func:`lakehouse.ingest.stream_day.ingest_day`: read, parse, split by day, key check,
write-audit-publish, dead letters in ``routing_decisions_rejected``, settle, wait for entries
another run holds). A ``decision_id`` is unique across every day: an event stored before with the
same content (:data:`~lakehouse.routing.events.CONTENT_FIELDS`) is a replay, with other content a
conflicting duplicate (a dead letter; the first version is kept).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import pyarrow as pa

from lakehouse.core import Lakehouse
from lakehouse.ingest import stream_day
from lakehouse.ingest.contract import StreamContract
from lakehouse.ingest.stream_day import IngestReport
from lakehouse.routing.events import (
    CONTENT_FIELDS,
    STREAM,
    decisions_to_arrow,
    event_day,
    parse_event,
)
from lakehouse.routing.tables import ROUTING_DECISIONS, ROUTING_DECISIONS_REJECTED
from lakehouse.table import writer
from lakehouse.table.streaming import StreamMergeResult, merge_day_batches
from lakehouse.table.writer import Lineage, MergeResult

__all__ = [
    "CONTRACT",
    "IngestReport",
    "backlog_days",
    "consumer",
    "ingest_day",
    "stream_backlog",
    "write_decision_batches",
    "write_decisions",
]


CONTRACT = StreamContract(
    stream=STREAM,
    table=ROUTING_DECISIONS,
    rejected=ROUTING_DECISIONS_REJECTED,
    parse=parse_event,
    to_arrow=decisions_to_arrow,
    compare=CONTENT_FIELDS,
    event_day=event_day,
)
"""The routing stream, its tables and its event contract."""

consumer = CONTRACT.consumer
stream_backlog = CONTRACT.backlog
backlog_days = CONTRACT.backlog_days


ingest_day = stream_day.ingest_of(CONTRACT)
"""Ingest the stream's entries of a day (``lh, client, day, *, audit, ...``); see
:func:`lakehouse.ingest.stream_day.ingest_day`."""


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


def write_decision_batches(
    lakehouse: Lakehouse,
    day: date,
    batches: Iterable[pa.RecordBatch],
    *,
    lineage: Lineage,
    branch: str | None = None,
) -> StreamMergeResult:
    """Merge a stream of decision batches into the day, holding a row group and the keys only."""
    branch = branch or lakehouse.settings.branch
    return merge_day_batches(ROUTING_DECISIONS, lakehouse, batches, day, lineage, branch)
