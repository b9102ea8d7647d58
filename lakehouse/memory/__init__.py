"""Agent memory in three tiers: hot Redis, warm Qdrant, cold Iceberg; one API, a real erase.

``MemoryStore`` (sync) and ``AsyncMemoryStore`` store, get, search (one ranking across tiers),
compact between tiers and forget (with a receipt); with ``AURA_MEMORY_KEY`` content and
metadata are encrypted in every tier (:mod:`lakehouse.memory.crypto`), and ``rotate_key``
re-encrypts them. See :mod:`lakehouse.memory.store` for the invariants and
:mod:`lakehouse.memory.ingest` for the audited event ingestion.

The package, by concern:

- ``store``: :class:`MemoryStore`, composed of ``tiers`` (opening the tiers, the spool's
  replay, degradation), ``writes``, ``reads``, ``compaction``, ``erase`` and ``rotation``;
- the tiers: ``hot`` (Redis), ``warm`` (Qdrant), ``cold`` (Iceberg), ``spool`` (Redis down);
- records and rules: ``model``, ``crypto``, ``consolidate``, ``shape``, ``tombstones``;
- the event stream: ``events`` (contract), ``ingest`` (into ``memory_events``), ``tables``.
"""

from lakehouse.memory.compaction import CompactionReport
from lakehouse.memory.crypto import new_key
from lakehouse.memory.erase import EraseReceipt
from lakehouse.memory.events import STREAM
from lakehouse.memory.hot import HotTier
from lakehouse.memory.ingest import (
    CONTRACT,
    IngestReport,
    backlog_days,
    ingest_memory_events,
    stream_backlog,
)
from lakehouse.memory.model import (
    MAX_AGE,
    MAX_K,
    MAX_TTL,
    HashingEmbedder,
    Memory,
    SearchHit,
    SentenceEmbedder,
    check_metadata,
)
from lakehouse.memory.reads import SearchResults, TierStats
from lakehouse.memory.rotation import RotationReport
from lakehouse.memory.store import AsyncMemoryStore, MemoryStore

__all__ = [
    "MAX_AGE",
    "MAX_K",
    "MAX_TTL",
    "CONTRACT",
    "STREAM",
    "AsyncMemoryStore",
    "CompactionReport",
    "EraseReceipt",
    "HashingEmbedder",
    "HotTier",
    "IngestReport",
    "Memory",
    "MemoryStore",
    "RotationReport",
    "SearchHit",
    "SearchResults",
    "SentenceEmbedder",
    "TierStats",
    "backlog_days",
    "check_metadata",
    "ingest_memory_events",
    "new_key",
    "stream_backlog",
]
