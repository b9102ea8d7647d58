"""Maintenance jobs: ref retention, and table maintenance (compaction, expiry, orphans)."""

from datetime import timedelta
from typing import Any

from dagster import (
    Config,
    MetadataValue,
    OpExecutionContext,
    Output,
    job,
    op,
)
from pydantic import Field

from aura_resources.lakehouse import LakehouseResource
from lakehouse import Lineage, maintenance
from lakehouse.maintenance import MaintenanceReport
from lakehouse.table import refs
from lakehouse.table.registry import all_specs


@op(description="Remove branches and tags older than their max-ref-age-ms, on every table.")
def expire_refs_op(context: OpExecutionContext, lakehouse: LakehouseResource) -> None:
    lh = lakehouse.lakehouse()
    removed: dict[str, list[str]] = {}
    for spec in all_specs():
        expired = refs.expire_refs(lh.table(spec.name))
        if expired:
            removed[spec.name] = expired
            context.log.info(f"{spec.name}: removed {len(expired)} expired ref(s)")
    total = sum(len(names) for names in removed.values())
    context.log.info(f"removed {total} expired ref(s): {removed}")


@job(
    name="ref_retention",
    description="Ref retention: expired audit branches and tags are removed from every table.",
)
def ref_retention_job() -> None:
    expire_refs_op()


class MaintenanceConfig(Config):
    """What ``table_maintenance`` does; the defaults are the library's (``aura maintain``)."""

    tables: list[str] | None = Field(
        default=None, description="Tables to maintain (default: every aura table)."
    )
    dry_run: bool = Field(default=False, description="Only report what would change.")
    target_mib: int = Field(default=32, description="Target data file size after compaction.")
    older_than_hours: float = Field(
        default=maintenance.DEFAULT_OLDER_THAN.total_seconds() / 3600,
        description="Snapshots younger than this are never expired.",
    )
    retain_last: int = Field(
        default=maintenance.DEFAULT_RETAIN_LAST, description="Snapshots kept per branch."
    )
    orphan_grace_hours: float = Field(
        default=maintenance.DEFAULT_GRACE.total_seconds() / 3600,
        description="Unreferenced files younger than this are kept (in-flight writes).",
    )
    branch: str | None = Field(
        default=None, description="Branch to compact (default: the resource's, AURA_BRANCH)."
    )


REPORT_COLUMNS = (
    "snapshots",
    "live_data_files",
    "live_data_bytes",
    "stored_files",
    "stored_bytes",
)


def report_metadata(reports: list[MaintenanceReport]) -> dict[str, Any]:
    """Run metadata: per table, files, bytes and snapshots before -> after, and each step."""
    rows = ["| table | " + " | ".join(REPORT_COLUMNS) + " |", "|---" * (len(REPORT_COLUMNS) + 1)]
    meta: dict[str, Any] = {}
    for report in reports:
        figures = report.as_dict()
        cells = [f"{figures[f'before.{c}']} → {figures[f'after.{c}']}" for c in REPORT_COLUMNS]
        rows.append(f"| {report.table} | " + " | ".join(cells) + " |")
        meta[report.table] = MetadataValue.json(figures)
    return {"tables": len(reports), "summary": MetadataValue.md("\n".join(rows)), **meta}


@op(description="Compact small files, expire snapshots (freeing their files), remove orphans.")
def maintain_tables_op(
    context: OpExecutionContext, config: MaintenanceConfig, lakehouse: LakehouseResource
) -> Output[None]:
    lh = lakehouse.lakehouse()
    names = config.tables or [spec.name for spec in all_specs()]
    reports = []
    for name in names:
        report = maintenance.maintain(
            lh,
            name,
            branch=config.branch or lh.settings.branch,
            target_file_bytes=config.target_mib * 1024 * 1024,
            older_than=timedelta(hours=config.older_than_hours),
            retain_last=config.retain_last,
            orphan_grace=timedelta(hours=config.orphan_grace_hours),
            dry_run=config.dry_run,
            lineage=Lineage(asset="table_maintenance", run_id=context.run_id),
        )
        b, a = report.before, report.after
        context.log.info(
            f"{name}: live files {b.live_data_files} -> {a.live_data_files}, snapshots "
            f"{b.snapshots} -> {a.snapshots}, stored bytes {b.stored_bytes} -> {a.stored_bytes}"
        )
        reports.append(report)
    return Output(None, metadata=report_metadata(reports))


@job(
    name="table_maintenance",
    description="Per table: compaction of small files per partition, snapshot expiry that "
    "frees bytes, orphan-file removal (lakehouse.maintenance; `aura maintain` does the same).",
    tags={"aura/kind": "maintenance"},
)
def table_maintenance_job() -> None:
    maintain_tables_op()
