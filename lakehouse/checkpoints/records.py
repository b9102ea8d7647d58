"""The exchange format between the checkpoint hot store and the archive, and their interfaces.

Neither side imports the other: the saver's hot store (:mod:`lakehouse.checkpoints.saver.hot`)
implements :class:`CheckpointHotStore`, the archive (:mod:`lakehouse.checkpoints.archive`)
implements :class:`ColdCheckpoints`, and both speak :class:`Records`: Arrow tables of checkpoints,
their channel values and their pending writes, in the archive tables' column layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

import pyarrow as pa
from langchain_core.runnables import RunnableConfig

from lakehouse.checkpoints.tables import CHECKPOINTS_SPEC, WRITES_SPEC
from lakehouse.ingest.tiering import HotStore

CheckpointKey = tuple[str, str, str]

CHECKPOINT_SCHEMA: pa.Schema = CHECKPOINTS_SPEC.arrow_schema
WRITE_SCHEMA: pa.Schema = WRITES_SPEC.arrow_schema
# Resolved channel values: the bytes themselves (the archive's content-hash coalescing undone).
BLOB_SCHEMA = pa.schema(
    [
        pa.field("thread_id", pa.string(), nullable=False),
        pa.field("checkpoint_ns", pa.string(), nullable=False),
        pa.field("channel", pa.string(), nullable=False),
        pa.field("version", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("blob", pa.binary()),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


@dataclass(frozen=True)
class Records:
    """Checkpoints with the channel values they name and their pending writes."""

    checkpoints: pa.Table
    writes: pa.Table
    blobs: pa.Table

    @classmethod
    def empty(cls) -> Records:
        return cls(
            CHECKPOINT_SCHEMA.empty_table(), WRITE_SCHEMA.empty_table(), BLOB_SCHEMA.empty_table()
        )

    @property
    def thread_ids(self) -> list[str]:
        return sorted(set(self.checkpoints.column("thread_id").to_pylist()))


class CheckpointHotStore(HotStore, Protocol):
    """What the archive needs from the saver's hot store (a :class:`HotStore` of checkpoints)."""

    def export_day(self, day: date) -> Records:
        """The checkpoints created on ``day`` (UTC), their channel values and writes."""
        ...

    def mark_archived(self, thread_ids: Sequence[str]) -> None:
        """Record that these threads have rows in the archive (read-through then consults it)."""
        ...

    def retention_candidates(self) -> list[tuple[str, str, str, datetime]]:
        """(thread, namespace, checkpoint id, ts) of every hot checkpoint, newest first per
        thread namespace."""
        ...

    def write_counts(self, thread_ids: Sequence[str]) -> dict[CheckpointKey, int]:
        """Hot pending writes per checkpoint of the threads."""
        ...

    def import_records(self, records: Records) -> None:
        """Insert archived records (restore); checkpoints already hot are kept as they are."""
        ...


class HasHotStore(Protocol):
    """A saver: anything exposing its hot store as ``hot``."""

    @property
    def hot(self) -> CheckpointHotStore: ...


class ColdCheckpoints(Protocol):
    """What a saver needs from the archive it reads through to."""

    def read(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Records:
        """Archived checkpoints matching the arguments (newest first), with values and writes."""
        ...

    def delete(
        self,
        *,
        thread_ids: Sequence[str] | None = None,
        run_ids: Sequence[str] | None = None,
        keep: Sequence[CheckpointKey] | None = None,
    ) -> None:
        """Delete archived checkpoints of threads (but ``keep``) or of runs."""
        ...


def hot_store(source: CheckpointHotStore | HasHotStore) -> CheckpointHotStore:
    """The hot store of a saver, or ``source`` itself when it is one."""
    hot = getattr(source, "hot", None)
    return hot if hot is not None else source  # type: ignore[return-value]
