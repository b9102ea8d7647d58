"""The routing domain: model-router decisions from a Redis Stream into Iceberg.

``tables`` declares the tables (schemas, keys, expectations, diff metrics), ``events`` the event
contract, ``ingest`` the one audited ingest path (:func:`ingest_day`).
"""

from lakehouse.ingest.streams import GROUP
from lakehouse.routing.events import (
    REQUIRED_FIELDS,
    STREAM,
    EventError,
    ParsedBatch,
    decisions_to_arrow,
    event_day,
    parse_entries,
    parse_event,
)
from lakehouse.routing.ingest import (
    CONTRACT,
    IngestReport,
    backlog_days,
    consumer,
    ingest_day,
    stream_backlog,
    write_decision_batches,
    write_decisions,
)
from lakehouse.routing.tables import (
    ROUTING_DECISIONS,
    ROUTING_DECISIONS_REJECTED,
    ROUTING_MODEL_DAILY,
)

__all__ = [
    "CONTRACT",
    "GROUP",
    "REQUIRED_FIELDS",
    "ROUTING_DECISIONS",
    "ROUTING_DECISIONS_REJECTED",
    "ROUTING_MODEL_DAILY",
    "STREAM",
    "EventError",
    "IngestReport",
    "ParsedBatch",
    "backlog_days",
    "consumer",
    "decisions_to_arrow",
    "event_day",
    "ingest_day",
    "parse_entries",
    "parse_event",
    "stream_backlog",
    "write_decision_batches",
    "write_decisions",
]
