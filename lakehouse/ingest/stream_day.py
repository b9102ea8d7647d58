"""One day of a stream, published: the audited merge, the dead letters, the settled entries.

Every stream domain (routing decisions, workflow runs, memory events) ends an ingestion the same
way, and :func:`publish_day` does it once for all of them:

1. merge the day's parsed rows into the domain's table on an audit branch, keyed on the table's
   key (:func:`lakehouse.table.writer.merge_day`), and publish it if the audit passes
   (:func:`lakehouse.publish.wap.audit_and_publish`);
2. record the dead letters with their reasons
(:func:`lakehouse.ingest.streams.record_dead_letters`);
3. settle the stream (:meth:`PublishedDay.settle`): dead letters are acknowledged; the day's
   entries are acknowledged once published, else handed back with the other days' entries, so
   nothing is acknowledged before the commit that holds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import pyarrow as pa

from lakehouse.ingest.streams import DeadLetter, StreamConsumer, record_dead_letters
from lakehouse.publish.wap import Audit, WapResult, audit_and_publish
from lakehouse.table import writer
from lakehouse.table.registry import TableSpec
from lakehouse.table.writer import Lineage, MergeResult, WriteResult

if TYPE_CHECKING:
    from lakehouse.core import Lakehouse

__all__ = ["PublishedDay", "publish_day"]


@dataclass(frozen=True)
class PublishedDay:
    """What :func:`publish_day` did: the write-audit-publish, the last merge, the dead letters."""

    wap: WapResult | None
    merge: MergeResult
    rejected_write: WriteResult | None

    @property
    def published(self) -> bool:
        """Whether the day is on the target (nothing new to write counts as published)."""
        return self.wap is None or self.wap.published

    def settle(
        self,
        reader: StreamConsumer,
        *,
        dead: Sequence[DeadLetter],
        day_ids: Sequence[str],
        deferred_ids: Sequence[str],
        also_ack: Sequence[str] = (),
    ) -> None:
        """Acknowledge the dead letters, ``also_ack`` and (if published) the day's entries;
        hand back the other days' entries and (if not published) the day's."""
        published = self.published
        reader.ack(
            [d.stream_id for d in dead] + list(also_ack) + (list(day_ids) if published else [])
        )
        reader.release(list(deferred_ids) + ([] if published else list(day_ids)))


def publish_day(
    lh: Lakehouse,
    spec: TableSpec,
    rejected: TableSpec,
    stream: str,
    rows: pa.Table,
    dead: Sequence[DeadLetter],
    day: date,
    *,
    audit: Audit,
    lineage: Lineage,
    branch: str,
) -> PublishedDay:
    """Merge ``rows`` into ``day`` of ``spec`` through write-audit-publish into ``branch``, then
    record ``dead`` in ``rejected``. A replayed write (the target moved during the audit)
    merges again with the new head; the report keeps the last merge."""
    merges: list[MergeResult] = []

    def write(audit_branch: str) -> WriteResult | None:
        merged = writer.merge_day(spec, lh, rows, day, lineage, audit_branch)
        merges.append(merged)
        return merged.write

    wap = audit_and_publish(
        lh, spec.name, write, audit=audit, day=day, lineage=lineage, target=branch
    )
    rejected_write = record_dead_letters(lh, rejected.name, stream, list(dead), lineage, branch)
    return PublishedDay(wap, merges[-1], rejected_write)
