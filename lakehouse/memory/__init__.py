"""Agent memory in three tiers: hot Redis, warm Qdrant, cold Iceberg; one API, a real erase.

``MemoryStore`` (sync) and ``AsyncMemoryStore`` store, get, search (one ranking across tiers),
compact between tiers and forget (with a receipt); with ``AURA_MEMORY_KEY`` content and
metadata are encrypted in every tier (:mod:`lakehouse.memory.crypto`), and ``rotate_key``
re-encrypts them. See :mod:`lakehouse.memory.store` for the
invariants and :mod:`lakehouse.memory.ingest` for the audited event ingestion.
"""

from lakehouse.memory import tables
from lakehouse.memory.cold import TableErase
from lakehouse.memory.crypto import new_key
from lakehouse.memory.events import STREAM
from lakehouse.memory.ingest import IngestReport, ingest_memory_events
from lakehouse.memory.model import HashingEmbedder, Memory, SearchHit, SentenceEmbedder
from lakehouse.memory.store import (
    AsyncMemoryStore,
    CompactionReport,
    EraseReceipt,
    MemoryStore,
    RotationReport,
)

__all__ = [
    "STREAM",
    "AsyncMemoryStore",
    "CompactionReport",
    "EraseReceipt",
    "HashingEmbedder",
    "IngestReport",
    "Memory",
    "MemoryStore",
    "RotationReport",
    "SearchHit",
    "SentenceEmbedder",
    "TableErase",
    "ingest_memory_events",
    "new_key",
    "tables",
]
