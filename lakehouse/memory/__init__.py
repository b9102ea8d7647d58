"""Agent memory in three tiers: hot Redis, warm Qdrant, cold Iceberg; one API, a real erase.

``MemoryStore`` (sync) and ``AsyncMemoryStore`` store, get, search (one ranking across tiers),
compact between tiers and forget (with a receipt). See :mod:`lakehouse.memory.store` for the
invariants and :mod:`lakehouse.memory._glue` for the local stream/tiering glue.
"""

from lakehouse.memory import tables
from lakehouse.memory._glue import STREAM, EventIngestReport, ingest_memory_events
from lakehouse.memory.cold import TableErase
from lakehouse.memory.model import HashingEmbedder, Memory, SearchHit, SentenceEmbedder
from lakehouse.memory.store import AsyncMemoryStore, CompactionReport, EraseReceipt, MemoryStore

__all__ = [
    "STREAM",
    "AsyncMemoryStore",
    "CompactionReport",
    "EraseReceipt",
    "EventIngestReport",
    "HashingEmbedder",
    "Memory",
    "MemoryStore",
    "SearchHit",
    "SentenceEmbedder",
    "TableErase",
    "ingest_memory_events",
    "tables",
]
