"""Iceberg materialisation for Dagster assets: the IO manager and the shared write path.

Two ways to put an asset in an aura table:

* return an Arrow table or Polars DataFrame from an asset that uses :class:`IcebergIOManager`
  (the default ``io_manager``); the partition's day is overwritten, metadata is attached;
* call :func:`materialize` inside the asset and return its ``MaterializeResult``: this also
  reports the Iceberg snapshot id as the Dagster data version, so Dagster's staleness view and the
  table history tell the same story. Dagster does not let an IO manager set a data version
  (dagster-io/dagster#15584), so AURA's own assets use this form.

Both go through write-audit-publish (:func:`write_audited`): the batch is written to an audit
branch, the table's great-expectations suite validates the branch snapshot, and only on success
is the target (main, or the branch the Lakehouse resource / ``AURA_BRANCH`` names) fast-forwarded
to it. On failure the target is unchanged, the audit branch is kept, the failing expectations are
in the materialisation metadata, and assets that declare ``quality.checks.check_specs`` get
failed blocking check results (others fail the step). The target branch is shown as the run tag
``aura/branch``.

Downstream assets load their inputs through the IO manager as Arrow or Polars.
"""

from datetime import date, datetime
from typing import Any

import polars as pl
import pyarrow as pa
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    ConfigurableIOManager,
    DataVersion,
    Failure,
    InputContext,
    MaterializeResult,
    MetadataValue,
    OutputContext,
    ResourceDependency,
    TableColumn,
    TableSchema,
)

from aura_resources.lakehouse import LakehouseResource
from aura_resources.presentation import branch_tags, snapshot_metadata
from lakehouse import Lakehouse, Lineage, WriteResult
from lakehouse.exceptions import ValidationError
from lakehouse.wap import WapResult, write_audit_publish
from quality.audit import gx_audit
from quality.checks import check_results, quality_metadata
from quality.results import QualityResult

BRANCH_TAG = "aura/branch"

PREVIEW_ROWS = 5


def table_for(asset_key: AssetKey) -> str:
    """The aura table an asset is stored in: the last component of its key."""
    return asset_key.path[-1]


def to_arrow(obj: object) -> pa.Table:
    if isinstance(obj, pa.Table):
        return obj
    if isinstance(obj, pl.DataFrame):
        return obj.to_arrow()
    raise ValidationError(
        f"cannot store a {type(obj).__name__} in Iceberg; return a pyarrow.Table or a "
        "polars.DataFrame"
    )


def partition_day(partition_key: str | None) -> date | None:
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


def _tag_run(instance: Any, run_id: str, branch: str) -> None:
    instance.add_run_tags(run_id, {BRANCH_TAG: branch})


def metadata_for(result: WriteResult, data: pa.Table | None, day: date | None) -> dict[str, Any]:
    """Materialisation metadata: rows, snapshot, table, partition, preview and schema."""
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
        meta["preview"] = MetadataValue.md(markdown_preview(data))
    return meta


def markdown_preview(data: pa.Table, rows: int = PREVIEW_ROWS) -> str:
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


def snapshot_result(
    asset_key: AssetKey,
    result: WriteResult,
    data: pa.Table | None = None,
    day: date | None = None,
    extra: dict[str, Any] | None = None,
    *,
    lakehouse: Lakehouse | None = None,
    changed: bool | None = None,
) -> MaterializeResult:
    """A MaterializeResult whose data version is the Iceberg snapshot id.

    With ``lakehouse``, the metadata is read from the table at that snapshot
    (:mod:`aura_resources.presentation`): the partition's real row count, schema and preview.
    """
    metadata = metadata_for(result, data, day)
    if lakehouse is not None:
        metadata |= snapshot_metadata(
            lakehouse,
            result.table,
            result.snapshot_id,
            result.branch,
            day,
            changed=result.rows > 0 if changed is None else changed,
        )
    return MaterializeResult(
        asset_key=asset_key,
        metadata={**metadata, **(extra or {})},
        data_version=DataVersion(str(result.snapshot_id)),
        tags=branch_tags(result.branch),
    )


def materialize(
    context: AssetExecutionContext,
    lakehouse: Lakehouse,
    data: pa.Table | pl.DataFrame,
    *,
    asset_key: AssetKey | None = None,
    extra_metadata: dict[str, Any] | None = None,
) -> MaterializeResult:
    """Write an asset's output to its table and report the snapshot as its data version."""
    key = asset_key or context.asset_key
    arrow = to_arrow(data)
    day = partition_day(context.partition_key if context.has_partition_key else None)
    wap = write_audited(lakehouse, table_for(key), arrow, day, lineage_of(context, key))
    return audited_result(context, key, wap, arrow, day, extra_metadata, lakehouse=lakehouse)


def audited_result(
    context: AssetExecutionContext,
    key: AssetKey,
    wap: WapResult,
    data: pa.Table | None,
    day: date | None,
    extra_metadata: dict[str, Any] | None = None,
    *,
    lakehouse: Lakehouse | None = None,
) -> MaterializeResult:
    """The MaterializeResult of a write-audit-publish: metadata, check results, data version.

    With ``lakehouse``, the metadata describes the target's (or, if held, the audit branch's)
    snapshot as read from the table: the partition's row count, schema and preview.

    The asset's declared (blocking) checks report each expectation. A failed audit of an asset
    without declared checks fails the step, so bad data can never pass unnoticed.
    """
    _tag_run(context.instance, context.run.run_id, wap.target)
    declared = {s.name for s in context.assets_def.check_specs if s.asset_key == key}
    checks: list[AssetCheckResult] = (
        [r for r in check_results(key, wap.audit) if r.check_name in declared]
        if isinstance(wap.audit, QualityResult)
        else []
    )
    metadata = {**metadata_for(wap.write, data, day), **_wap_snapshot(lakehouse, wap, day)}
    metadata |= {**wap_metadata(wap), **(extra_metadata or {})}
    if not wap.published and not any(not c.passed for c in checks):
        raise Failure(description=wap.audit.summary(), metadata=metadata)
    return MaterializeResult(
        asset_key=key,
        metadata=metadata,
        data_version=DataVersion(str(wap.target_snapshot_id)),
        check_results=checks,
        tags=branch_tags(wap.target),
    )


def _wap_snapshot(lakehouse: Lakehouse | None, wap: WapResult, day: date | None) -> dict[str, Any]:
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


class IcebergIOManager(ConfigurableIOManager):
    """Stores Arrow / Polars asset outputs in aura tables; loads inputs as Arrow or Polars."""

    lakehouse: ResourceDependency[LakehouseResource]

    def handle_output(self, context: OutputContext, obj: object) -> None:
        if obj is None:  # assets that wrote their table themselves return nothing
            return
        arrow = to_arrow(obj)
        day = partition_day(context.partition_key if context.has_partition_key else None)
        lineage = lineage_of(context, context.asset_key)
        wap = write_audited(
            self.lakehouse.lakehouse(), table_for(context.asset_key), arrow, day, lineage
        )
        _tag_run(context.step_context.instance, context.run_id, wap.target)
        metadata = {
            **metadata_for(wap.write, arrow, day),
            **_wap_snapshot(self.lakehouse.lakehouse(), wap, day),
            **wap_metadata(wap),
        }
        if not wap.published:  # an IO manager cannot report check results: fail the step
            raise Failure(description=wap.audit.summary(), metadata=metadata)
        context.add_output_metadata(metadata)

    def load_input(self, context: InputContext) -> pa.Table | pl.DataFrame:
        lakehouse = self.lakehouse.lakehouse()
        table = table_for(context.asset_key)
        if context.has_asset_partitions:
            window = context.asset_partitions_time_window
            data = lakehouse.read(table, window=(window.start, window.end))
        else:
            data = lakehouse.read(table)
        if context.dagster_type.typing_type is pl.DataFrame:
            return pl.from_arrow(data)  # type: ignore[return-value]
        return data
