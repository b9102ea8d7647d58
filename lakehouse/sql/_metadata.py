"""The metadata views of a session: aura_snapshots, aura_refs, aura_history, aura_views.

They are built once, from the same table states as the views, when the session opens: one row
builder and one Arrow schema per view.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import duckdb
import pyarrow as pa

from lakehouse.exceptions import ConfigurationError
from lakehouse.settings import MAIN_BRANCH
from lakehouse.sql._state import TableState, from_millis
from lakehouse.sql._views import ViewInfo

_TIMESTAMP = pa.timestamp("us", tz="UTC")
_TEXT = pa.string()

Row = dict[str, object]

SNAPSHOTS_SCHEMA = pa.schema(
    [
        ("table_name", _TEXT),
        ("snapshot_id", pa.int64()),
        ("parent_id", pa.int64()),
        ("committed_at", _TIMESTAMP),
        ("operation", _TEXT),
        ("aura_commit", _TEXT),
        ("run_id", _TEXT),
        ("asset", _TEXT),
        ("partition", _TEXT),
        ("code_version", _TEXT),
        ("added_records", pa.int64()),
        ("deleted_records", pa.int64()),
        ("total_records", pa.int64()),
        ("branches", pa.list_(_TEXT)),
        ("tags", pa.list_(_TEXT)),
        ("on_main", pa.bool_()),
        ("intermediate", pa.bool_()),
    ]
)
REFS_SCHEMA = pa.schema(
    [
        ("table_name", _TEXT),
        ("ref_name", _TEXT),
        ("ref_type", _TEXT),
        ("snapshot_id", pa.int64()),
        ("committed_at", _TIMESTAMP),
    ]
)
HISTORY_SCHEMA = pa.schema(
    [
        ("table_name", _TEXT),
        ("made_current_at", _TIMESTAMP),
        ("snapshot_id", pa.int64()),
        ("parent_id", pa.int64()),
        ("is_current_ancestor", pa.bool_()),
        ("intermediate", pa.bool_()),
        ("operation", _TEXT),
        ("aura_commit", _TEXT),
        ("run_id", _TEXT),
    ]
)
VIEWS_SCHEMA = pa.schema(
    [
        ("table_name", _TEXT),
        ("source", _TEXT),
        ("snapshot_id", pa.int64()),
        ("reader", _TEXT),
        ("data_files", pa.int64()),
        ("error", _TEXT),
    ]
)


def snapshot_rows(name: str, state: TableState) -> Iterator[Row]:
    """One row per snapshot of the table, with the refs pointing at it and its lineage."""
    pointing: dict[int, list[tuple[str, str]]] = {}
    for ref_name, (kind, sid) in state.refs.items():
        pointing.setdefault(sid, []).append((ref_name, kind))
    hidden = state.intermediate()
    on_main = {sid for _, sid in state.main_log}
    for snap in sorted(state.snapshots.values(), key=lambda s: (s.timestamp_ms, s.snapshot_id)):
        props = snap.properties
        refs_here = sorted(pointing.get(snap.snapshot_id, []))
        yield {
            "table_name": name,
            "snapshot_id": snap.snapshot_id,
            "parent_id": snap.parent_id,
            "committed_at": from_millis(snap.timestamp_ms),
            "operation": snap.operation,
            "aura_commit": props.get("aura.commit"),
            "run_id": props.get("aura.run-id"),
            "asset": props.get("aura.asset"),
            "partition": props.get("aura.partition"),
            "code_version": props.get("aura.code-version"),
            "added_records": _int(props.get("added-records")),
            "deleted_records": _int(props.get("deleted-records")),
            "total_records": _int(props.get("total-records")),
            "branches": [r for r, kind in refs_here if kind == "branch"],
            "tags": [r for r, kind in refs_here if kind == "tag"],
            "on_main": snap.snapshot_id in on_main,
            "intermediate": snap.snapshot_id in hidden,
        }


def ref_rows(name: str, state: TableState) -> Iterator[Row]:
    """One row per branch and tag of the table."""
    for ref_name, (kind, sid) in sorted(state.refs.items()):
        yield {
            "table_name": name,
            "ref_name": ref_name,
            "ref_type": kind,
            "snapshot_id": sid,
            "committed_at": from_millis(state.snapshots[sid].timestamp_ms),
        }


def history_rows(name: str, state: TableState) -> Iterator[Row]:
    """Main's history: when each snapshot became current, and whether it still leads to main."""
    ancestors: set[int] = set()
    head = state.current_snapshot_id
    while head is not None and head in state.snapshots and head not in ancestors:
        ancestors.add(head)
        head = state.snapshots[head].parent_id
    hidden = state.intermediate()
    for ts, sid in state.main_log:
        snap = state.snapshots[sid]
        yield {
            "table_name": name,
            "made_current_at": from_millis(ts),
            "snapshot_id": sid,
            "parent_id": snap.parent_id,
            "is_current_ancestor": sid in ancestors,
            "intermediate": sid in hidden,
            "operation": snap.operation,
            "aura_commit": snap.commit,
            "run_id": snap.properties.get("aura.run-id"),
        }


def view_rows(views: Mapping[str, ViewInfo]) -> list[Row]:
    """How each view was resolved and read."""
    return [
        {
            "table_name": v.table,
            "source": v.source,
            "snapshot_id": v.snapshot_id,
            "reader": v.reader,
            "data_files": v.data_files,
            "error": v.error,
        }
        for v in views.values()
    ]


_PER_TABLE: dict[str, tuple[Callable[[str, TableState], Iterator[Row]], pa.Schema]] = {
    "aura_snapshots": (snapshot_rows, SNAPSHOTS_SCHEMA),
    "aura_refs": (ref_rows, REFS_SCHEMA),
    "aura_history": (history_rows, HISTORY_SCHEMA),
}
METADATA_VIEWS = (*_PER_TABLE, "aura_views")


# What a tenant session does not see of the metadata: lineage and ref names are free text
# (run ids, partition keys, branch and tag names chosen by people) that can name other tenants.
_TENANT_HIDDEN = ("run_id", "partition")


def _for_tenant(view: str, row: Row) -> Row | None:
    """``row`` as a tenant session shows it: lineage text hidden, refs other than main gone."""
    if view == "aura_refs":
        return row if row["ref_name"] == MAIN_BRANCH else None
    shown = {k: (None if k in _TENANT_HIDDEN else v) for k, v in row.items()}
    if view == "aura_snapshots":
        shown["branches"] = [b for b in row["branches"] if b == MAIN_BRANCH]  # type: ignore[attr-defined]
        shown["tags"] = []
    return shown


def create_metadata(
    con: duckdb.DuckDBPyConnection,
    states: Mapping[str, TableState],
    views: Mapping[str, ViewInfo],
    *,
    tenant: bool = False,
) -> None:
    """Create the metadata views as tables of the session's DuckDB.

    A tenant session (``tenant``) sees no run ids, partition keys, or branch and tag names other
    than main: free text that can name other tenants.

    Raises:
        ConfigurationError: an aura table has the name of a metadata view.
    """
    clash = set(METADATA_VIEWS) & set(states)
    if clash:
        raise ConfigurationError(
            f"aura tables {sorted(clash)} collide with the metadata views; rename the tables"
        )
    tables = {
        view: (
            [row for name, state in states.items() for row in rows_of(name, state)],
            schema,
        )
        for view, (rows_of, schema) in _PER_TABLE.items()
    }
    tables["aura_views"] = (view_rows(views), VIEWS_SCHEMA)
    if tenant:
        for view, (rows, schema) in list(tables.items()):
            shown = (_for_tenant(view, row) for row in rows)
            tables[view] = ([row for row in shown if row is not None], schema)
    for view_name, (rows, schema) in tables.items():
        data = pa.Table.from_pylist(rows, schema=schema)
        con.register("_aura_rows", data)
        con.execute(f"CREATE TABLE {view_name} AS SELECT * FROM _aura_rows")
        con.unregister("_aura_rows")


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.lstrip("-").isdigit() else None
