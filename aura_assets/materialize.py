"""Asset helpers: write an asset's table and report the write as its materialisation.

:func:`materialize` writes an asset's output through write-audit-publish (the batch goes to an
audit branch, the table's great-expectations suite validates that snapshot, and only on success
is the target branch fast-forwarded) and returns a ``MaterializeResult`` whose data version is
the Iceberg snapshot id, so Dagster's staleness view and the table history tell the same story.
Dagster does not let an IO manager set a data version (dagster-io/dagster#15584), which is why
AURA's assets use this form rather than the IO manager. :func:`audited_result` turns a
write-audit-publish done by the library into that result; :func:`snapshot_result` reports a plain
write. ``lineage_of`` and ``partition_day`` are re-exported for asset code.
"""

from datetime import date
from typing import Any

import polars as pl
import pyarrow as pa
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    DataVersion,
    Failure,
    MaterializeResult,
)

from aura_resources.metadata import (
    lineage_of,
    metadata_for,
    partition_day,
    table_for,
    tag_run,
    to_arrow,
    wap_metadata,
    wap_snapshot,
    write_audited,
)
from aura_resources.presentation import branch_tags, read_metadata, snapshot_metadata
from lakehouse import Lakehouse, WriteResult
from lakehouse.publish.wap import WapResult
from quality.checks import check_results
from quality.results import QualityResult

__all__ = [
    "audited_result",
    "lineage_of",
    "materialize",
    "metadata_for",
    "partition_day",
    "snapshot_result",
]


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
    metadata = metadata_for(result, data if lakehouse is None else None, day)
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
        metadata={**metadata, **read_metadata(lakehouse), **(extra or {})},
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
    tag_run(context.instance, context.run.run_id, wap.target)
    declared = {s.name for s in context.assets_def.check_specs if s.asset_key == key}
    checks: list[AssetCheckResult] = (
        [r for r in check_results(key, wap.audit) if r.check_name in declared]
        if isinstance(wap.audit, QualityResult)
        else []
    )
    shown = data if lakehouse is None else None  # else the snapshot read shows the data
    metadata = {**metadata_for(wap.write, shown, day), **wap_snapshot(lakehouse, wap, day)}
    metadata |= {**wap_metadata(wap), **read_metadata(lakehouse), **(extra_metadata or {})}
    if not wap.published and not any(not c.passed for c in checks):
        raise Failure(description=wap.audit.summary(), metadata=metadata)
    return MaterializeResult(
        asset_key=key,
        metadata=metadata,
        data_version=DataVersion(str(wap.target_snapshot_id)),
        check_results=checks,
        tags=branch_tags(wap.target),
    )
