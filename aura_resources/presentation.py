"""What the Dagster UI shows of an Iceberg asset's materialisation, read from the table itself.

Every materialisation of an aura table carries, for the snapshot the run left on its branch:
``dagster/row_count`` (the rows of the partition, or of the table when it is unpartitioned, at
that snapshot: a run that changed nothing still reports what the partition holds),
``dagster/column_schema`` (the Iceberg schema with types, nullability and docs), ``preview`` (the
first rows), ``iceberg/snapshot_id``, ``aura/branch``, ``aura/changed`` and the table.

Writes to a branch other than main are recorded as materialisations of the same partition (the
run succeeded and wrote that data), but labelled so nobody mistakes them for main: the event
carries the tag ``aura/branch=<name>`` and the metadata ``aura/branch`` plus a line
``aura/not_main`` saying main did not change; the run has the tag ``aura/branch`` too. A run on
a branch reads that branch; an input table the branch does not have yet is read from main, and
``aura/read_from_main`` names those tables (:func:`read_metadata`).
"""

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import pyarrow as pa
from dagster import (
    AssetKey,
    MetadataValue,
    TableColumn,
    TableColumnConstraints,
    TableColumnDep,
    TableColumnLineage,
    TableSchema,
)
from pyiceberg.expressions import AlwaysTrue, BooleanExpression
from pyiceberg.schema import Schema

from lakehouse import Lakehouse
from lakehouse.settings import MAIN_BRANCH
from lakehouse.table.registry import spec_for
from lakehouse.table.writer import day_filter

BRANCH_KEY = "aura/branch"
READ_FROM_MAIN_KEY = "aura/read_from_main"
PREVIEW_ROWS = 5


def column_schema(schema: Schema) -> TableSchema:
    """The Iceberg schema as Dagster's column schema (type, nullability, doc)."""
    return TableSchema(
        columns=[
            TableColumn(
                name=field.name,
                type=str(field.field_type),
                description=field.doc,
                constraints=TableColumnConstraints(nullable=not field.required),
            )
            for field in schema.fields
        ]
    )


def snapshot_metadata(
    lh: Lakehouse,
    table: str,
    snapshot_id: int | None,
    branch: str,
    day: date | None,
    *,
    changed: bool,
) -> dict[str, Any]:
    """The metadata of ``table`` (its ``day`` partition) at ``snapshot_id`` on ``branch``."""
    iceberg = lh.table(table)
    spec = spec_for(table)
    row_filter: BooleanExpression = AlwaysTrue()
    if day is not None and spec.partitioned:
        row_filter = day_filter(spec, day)
    meta: dict[str, Any] = {
        BRANCH_KEY: branch,
        "aura/changed": changed,
        "iceberg/table": f"aura.{spec.name}",
        "iceberg/snapshot_id": str(snapshot_id) if snapshot_id is not None else "-",
        "iceberg/branch": branch,
        "dagster/column_schema": column_schema(iceberg.schema()),
    }
    if branch != MAIN_BRANCH:
        main = iceberg.current_snapshot()
        meta["aura/not_main"] = (
            f"written to branch {branch!r}, not main; main is unchanged "
            f"(snapshot {main.snapshot_id if main else '-'}). Publish with "
            f"`aura branch publish {branch}`."
        )
    if day is not None:
        meta["partition"] = day.isoformat()
    if snapshot_id is None:
        meta["dagster/row_count"] = 0
        return meta
    scan = iceberg.scan(row_filter=row_filter, snapshot_id=snapshot_id)
    if day is None:
        snap = iceberg.snapshot_by_id(snapshot_id)
        total = snap.summary.get("total-records") if snap and snap.summary else None
        meta["dagster/row_count"] = int(total) if total is not None else _count(scan)
    else:
        meta["dagster/row_count"] = _count(scan)
    head = iceberg.scan(row_filter=row_filter, snapshot_id=snapshot_id, limit=PREVIEW_ROWS)
    meta["preview"] = MetadataValue.md(snapshot_preview(head.to_arrow()))
    return meta


def read_metadata(lakehouse: Lakehouse | None) -> dict[str, Any]:
    """``aura/read_from_main``: tables this run read from main because its branch lacked them."""
    if lakehouse is None or not lakehouse.fallbacks:
        return {}
    branch = lakehouse.settings.branch
    tables = ", ".join(sorted(lakehouse.fallbacks))
    return {READ_FROM_MAIN_KEY: f"{tables} (not on branch {branch} yet: read from main)"}


def column_lineage(sources: Mapping[str, Sequence[tuple[str, str]]]) -> dict[str, Any]:
    """``dagster/column_lineage`` for a derived table: each column and the ``(table, column)``
    pairs of the upstream tables (assets of the same name) it is computed from."""
    deps = {
        column: [TableColumnDep(asset_key=AssetKey(table), column_name=c) for table, c in found]
        for column, found in sources.items()
    }
    return {"dagster/column_lineage": TableColumnLineage(deps_by_column=deps)}


def branch_tags(branch: str) -> dict[str, str]:
    """Event tags of a materialisation written to ``branch`` (none for main)."""
    return {} if branch == MAIN_BRANCH else {BRANCH_KEY: branch}


def _count(scan: Any) -> int:
    """Rows a scan returns, reading only the first column."""
    first = scan.table_metadata.schema().fields[0].name
    return int(scan.select(first).to_arrow().num_rows)


def snapshot_preview(data: pa.Table, rows: int = PREVIEW_ROWS) -> str:
    """The first ``rows`` rows as a markdown table (long binary and text cells shortened)."""
    names = data.column_names
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for row in data.slice(0, rows).to_pylist():
        lines.append("| " + " | ".join(_cell(row[n]) for n in names) + " |")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."
