"""Workflow checkpoints: LangGraph checkpointers with a SQL hot store and an Iceberg archive.

``AuraCheckpointSaver`` / ``AsyncAuraCheckpointSaver`` keep recent checkpoints in PostgreSQL
(``AURA_PG_URL``) or SQLite (in ``AURA_HOME``); the archive functions copy them into Iceberg and
trim the hot store afterwards, and the savers read archived checkpoints through transparently.
"""

from lakehouse.checkpoints.saver import AsyncAuraCheckpointSaver, AuraCheckpointSaver

__all__ = ["AsyncAuraCheckpointSaver", "AuraCheckpointSaver"]
