"""Workflow-run ingestion: the stream's runs of one day into ``workflow_runs``, audited.

The workflows stream's :data:`CONTRACT` is all this domain adds to the one ingest path
(:func:`lakehouse.ingest.stream_day.ingest_day`: read, parse, split by day, key check,
write-audit-publish, dead letters in ``workflow_runs_rejected``, settle, wait for entries
another run holds). A ``run_id`` is unique across every day: a run stored before with equal
content (:data:`CONTENT_FIELDS`) is a replay, with other content a conflicting duplicate (a dead
letter; the first version is kept).

The rest of the day's topology pipeline is in :mod:`lakehouse.topology.history` (signatures),
:mod:`lakehouse.topology.index` (the Qdrant index) and :mod:`lakehouse.topology.drift_reports`
(the daily drift test).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import pyarrow as pa

from lakehouse.ingest import stream_day
from lakehouse.ingest.contract import StreamContract
from lakehouse.ingest.stream_day import IngestReport
from lakehouse.topology.events import MAX_PAYLOAD_BYTES, STREAM, parse_workflow_event
from lakehouse.topology.tables import WORKFLOW_RUNS, WORKFLOW_RUNS_REJECTED

__all__ = [
    "CONTENT_FIELDS",
    "CONTRACT",
    "IngestReport",
    "backlog_days",
    "consumer",
    "event_day",
    "ingest_day",
    "runs_to_arrow",
    "stream_backlog",
]

CONTENT_FIELDS = ("ts", "tenant_id", "workflow", "status", "nodes", "edges")
"""What makes two events with one ``run_id`` the same run (a replay) or a conflict."""


def event_day(payload: bytes) -> date | None:
    """The day of an event payload, None when it is malformed (for backlog sensors).

    Never raises, whatever the payload holds.
    """
    try:
        return parse_workflow_event(payload)["ts"].date()
    except Exception:  # a sensor must never fail on stream content
        return None


def runs_to_arrow(runs: Sequence[dict[str, Any]], ingested_at: datetime) -> pa.Table:
    """Parsed events (with ``stream_id``) as rows of ``workflow_runs``."""
    schema = WORKFLOW_RUNS.arrow_schema
    columns = {name: [r.get(name) for r in runs] for name in schema.names}
    columns["ingested_at"] = [ingested_at] * len(runs)
    return pa.Table.from_pydict(columns, schema=schema)


CONTRACT = StreamContract(
    stream=STREAM,
    table=WORKFLOW_RUNS,
    rejected=WORKFLOW_RUNS_REJECTED,
    parse=parse_workflow_event,
    to_arrow=runs_to_arrow,
    compare=CONTENT_FIELDS,
    event_day=event_day,
    max_bytes=MAX_PAYLOAD_BYTES,
)
"""The workflows stream, its tables and its event contract."""

consumer = CONTRACT.consumer
stream_backlog = CONTRACT.backlog
backlog_days = CONTRACT.backlog_days


ingest_day = stream_day.ingest_of(CONTRACT)
"""Ingest the stream's entries of a day (``lh, client, day, *, audit, ...``); see
:func:`lakehouse.ingest.stream_day.ingest_day`."""
