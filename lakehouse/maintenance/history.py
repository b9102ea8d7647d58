"""History: the audit trail of a table, one entry per snapshot, with its lineage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot

from lakehouse.table import refs

LINEAGE_KEYS = ("aura.run-id", "aura.asset", "aura.partition", "aura.code-version")


@dataclass(frozen=True)
class HistoryEntry:
    """One snapshot: when, what operation, who wrote it, and what it changed."""

    snapshot_id: int
    parent_id: int | None
    committed_at: datetime
    operation: str
    aura_operation: str | None
    run_id: str | None
    asset: str | None
    partition: str | None
    code_version: str | None
    added_rows: int
    deleted_rows: int
    added_files: int
    deleted_files: int
    total_rows: int | None
    total_files: int | None
    refs: tuple[str, ...]
    properties: dict[str, str]


def history(table: Table, ref: str | None = None) -> list[HistoryEntry]:
    """Every snapshot of ``table``, oldest first; with ``ref``, only that ref's ancestry.

    Raises:
        RefError: ``ref`` is not a branch or tag of the table.
    """
    table.refresh()
    if ref is None:
        snapshots = sorted(
            table.metadata.snapshots, key=lambda s: (s.timestamp_ms, s.sequence_number or 0)
        )
    else:
        snapshots = list(reversed(refs.ancestry(table, refs.require_head(table, ref))))
    by_snapshot: dict[int, list[str]] = {}
    for name, snapshot_ref in table.metadata.refs.items():
        by_snapshot.setdefault(snapshot_ref.snapshot_id, []).append(name)
    return [_entry(s, tuple(sorted(by_snapshot.get(s.snapshot_id, [])))) for s in snapshots]


def _int(props: dict[str, str], key: str) -> int:
    try:
        return int(props.get(key, 0))
    except ValueError:
        return 0


def _entry(snapshot: Snapshot, names: tuple[str, ...]) -> HistoryEntry:
    summary = snapshot.summary
    props = dict(summary.additional_properties) if summary is not None else {}
    operation = summary.operation.value if summary is not None else "unknown"
    total_rows = props.get("total-records")
    total_files = props.get("total-data-files")
    return HistoryEntry(
        snapshot_id=snapshot.snapshot_id,
        parent_id=snapshot.parent_snapshot_id,
        committed_at=datetime.fromtimestamp(snapshot.timestamp_ms / 1000, UTC),
        operation=operation,
        aura_operation=props.get("aura.operation"),
        run_id=props.get("aura.run-id"),
        asset=props.get("aura.asset"),
        partition=props.get("aura.partition"),
        code_version=props.get("aura.code-version"),
        added_rows=_int(props, "added-records"),
        deleted_rows=_int(props, "deleted-records"),
        added_files=_int(props, "added-data-files"),
        deleted_files=_int(props, "deleted-data-files"),
        total_rows=int(total_rows) if total_rows is not None else None,
        total_files=int(total_files) if total_files is not None else None,
        refs=names,
        properties={k: v for k, v in props.items() if k.startswith("aura.")},
    )
