"""Workflow checkpoints: LangGraph checkpointers with a SQL hot store and an Iceberg archive.

``AuraCheckpointSaver`` / ``AsyncAuraCheckpointSaver`` keep recent checkpoints in PostgreSQL
(``AURA_PG_URL``) or SQLite (in ``AURA_HOME``). :func:`archive_checkpoints` copies a day of them
into Iceberg (coalesced), :func:`apply_retention` trims the hot store afterwards, and a saver
given a :class:`CheckpointArchive` reads archived checkpoints through transparently. The archive
is the checkpoint instance of :mod:`lakehouse.ingest.tiering` and sees the saver only through
``saver.hot`` (a :class:`SqlCheckpointStore`). Stored values are decoded safely
(:mod:`lakehouse.checkpoints.serde`: no pickle, no arbitrary constructors).
"""

from lakehouse.checkpoints.archive import (
    ArchiveResult,
    CheckpointArchive,
    RetentionPolicy,
    RetentionResult,
    apply_retention,
    archive_and_trim,
    archive_bytes,
    archive_checkpoints,
    restore_thread,
)
from lakehouse.checkpoints.saver import (
    AsyncAuraCheckpointSaver,
    AuraCheckpointSaver,
    SqlCheckpointStore,
)
from lakehouse.checkpoints.serde import CheckpointDecodeError, safe_serde

__all__ = [
    "ArchiveResult",
    "AsyncAuraCheckpointSaver",
    "AuraCheckpointSaver",
    "CheckpointArchive",
    "CheckpointDecodeError",
    "RetentionPolicy",
    "SqlCheckpointStore",
    "RetentionResult",
    "apply_retention",
    "archive_and_trim",
    "archive_bytes",
    "archive_checkpoints",
    "restore_thread",
    "safe_serde",
]
