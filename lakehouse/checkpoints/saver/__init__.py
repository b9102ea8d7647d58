"""LangGraph checkpointers with a SQL hot store (PostgreSQL or SQLite) and an Iceberg archive.

Split as LangGraph's own savers are: :mod:`.base` (every operation, written once), :mod:`.sync`
and :mod:`.aio` (connections), and :mod:`.hot` (the hot store as rows, for the archive).
"""

from lakehouse.checkpoints.saver.aio import AsyncAuraCheckpointSaver
from lakehouse.checkpoints.saver.base import PRUNE_STRATEGIES
from lakehouse.checkpoints.saver.hot import SqlCheckpointStore
from lakehouse.checkpoints.saver.sync import AuraCheckpointSaver

__all__ = [
    "PRUNE_STRATEGIES",
    "AsyncAuraCheckpointSaver",
    "AuraCheckpointSaver",
    "SqlCheckpointStore",
]
