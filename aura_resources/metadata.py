"""What the Iceberg IO manager and AURA's assets share: lineage, partition days and metadata.

The write path of an asset (:func:`write_audited`: write-audit-publish with the table's
great-expectations suite) and the metadata every materialisation shows (row count, snapshot id,
branch, schema, preview, the audit's verdict). The IO manager (:mod:`aura_resources.iceberg`)
and the asset helpers (``aura_assets.materialize``) are both built on it.
"""

from datetime import date, datetime
from typing import Any

import polars as pl
import pyarrow as pa
from dagster import (
    AssetExecutionContext,
    AssetKey,
    MetadataValue,
    OutputContext,
    TableColumn,
    TableSchema,
)

from aura_resources.presentation import snapshot_metadata
from lakehouse import Lakehouse, Lineage, WriteResult
from lakehouse.exceptions import ValidationError
from lakehouse.publish.wap import WapResult, write_audit_publish
from quality.audit import gx_audit
from quality.checks import quality_metadata
from quality.results import QualityResult

BRANCH_TAG = "aura/branch"

PREVIEW_ROWS = 5


def table_for(asset_key: AssetKey) -> str:
    """The aura table an asset is stored in: the last component of its key."""
    return asset_key.path[-1]


def to_arrow(obj: object) -> pa.Table:
    """An asset's output as Arrow (a pyarrow Table or a Polars DataFrame)."""
    if isinstance(obj, pa.Table):
        return obj
    if isinstance(obj, pl.DataFrame):
        return obj.to_arrow()
    raise ValidationError(
        f"cannot store a {type(obj).__name__} in Iceberg; return a pyarrow.Table or a "
        "polars.DataFrame"
    )


def partition_day(partition_key: str | None) -> date | None:
    """The day of a daily partition key (None for an unpartitioned run)."""
    return date.fromisoformat(partition_key[:10]) if partition_key else None


def write_audited(
    lakehouse: Lakehouse, table: str, data: pa.Table, day: date | None, lineage: Lineage
) -> WapResult:
    """Write-audit-publish the batch (day overwrite or append) into the lakehouse's branch,
    audited by the table's great-expectations suite."""
    return write_audit_publish(lakehouse, table, data, audit=gx_audit, day=day, lineage=lineage)


def audit_metadata(wap: WapResult) -> dict[str, Any]:
    """The audit's verdict: the expectations' detail for a GX audit, else its summary."""
    if isinstance(wap.audit, QualityResult):
        return quality_metadata(wap.audit)
    return {"audit/passed": wap.audit.success, "audit/summary": wap.audit.summary()}


def wap_metadata(result: WapResult) -> dict[str, Any]:
    """Where the batch went: published or held on its audit branch, and the audit's verdict."""
    return {
        "iceberg/published": result.published,
        "iceberg/target_branch": result.target,
        "iceberg/target_snapshot_id": str(result.target_snapshot_id),
        "iceberg/audit_branch": result.audit_branch,
        "iceberg/tag": result.tag or "",
        **audit_metadata(result),
    }


def tag_run(instance: Any, run_id: str, branch: str) -> None:
    """Show the branch a run wrote to as its ``aura/branch`` tag."""
    instance.add_run_tags(run_id, {BRANCH_TAG: branch})


def metadata_for(result: WriteResult, data: pa.Table | None, day: date | None) -> dict[str, Any]:
    """Materialisation metadata: rows, snapshot, table, partition, preview and schema.

    Pass ``data`` only when the table is not read back afterwards: with a snapshot read
    (:func:`aura_resources.presentation.snapshot_metadata`) its schema and preview replace these.
    """
    meta: dict[str, Any] = {
        "dagster/row_count": result.rows,
        "iceberg/table": f"aura.{result.table}",
        "iceberg/snapshot_id": str(result.snapshot_id),
        "iceberg/branch": result.branch,
        "iceberg/operation": result.operation,
    }
    if day is not None:
        meta["partition"] = day.isoformat()
    if data is not None:
        meta["dagster/column_schema"] = TableSchema(
            columns=[TableColumn(f.name, str(f.type)) for f in data.schema]
        )
        meta["preview"] = MetadataValue.md(batch_preview(data))
    return meta


def batch_preview(data: pa.Table, rows: int = PREVIEW_ROWS) -> str:
    """The first rows of the written batch as a Markdown table (when no snapshot is read)."""
    head = data.slice(0, rows).to_pylist()
    names = data.column_names
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for row in head:
        lines.append("| " + " | ".join(_cell(row[n]) for n in names) + " |")
    if data.num_rows > rows:
        lines.append(f"\n_{rows} of {data.num_rows} rows_")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def lineage_of(context: AssetExecutionContext | OutputContext, asset_key: AssetKey) -> Lineage:
    """Who writes: the asset, partition, run and code version, recorded on the snapshot."""
    partition = context.partition_key if context.has_partition_key else None
    if isinstance(context, OutputContext):
        code_version = context.step_context.job_def.asset_layer.get(asset_key).code_version
        run_id = context.run_id
    else:
        code_version = context.assets_def.code_versions_by_key.get(asset_key)
        run_id = context.run.run_id
    return Lineage(
        asset=asset_key.to_user_string(),
        partition=partition,
        run_id=run_id,
        code_version=code_version,
    )


def wap_snapshot(lakehouse: Lakehouse | None, wap: WapResult, day: date | None) -> dict[str, Any]:
    """The table as this write-audit-publish left it (published target, or held audit branch)."""
    if lakehouse is None:
        return {}
    branch = wap.target if wap.published else wap.audit_branch
    snapshot = wap.target_snapshot_id if wap.published else wap.snapshot_id
    return {
        **snapshot_metadata(
            lakehouse, wap.table, snapshot, branch, day, changed=wap.write.rows > 0
        ),
        "aura/rows_written": wap.write.rows,
    }
