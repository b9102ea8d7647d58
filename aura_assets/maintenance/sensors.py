"""Request table maintenance when a partition has gathered many small files."""

from dagster import RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from aura_assets.maintenance.jobs import table_maintenance_job
from aura_resources.lakehouse import LakehouseResource
from lakehouse import maintenance
from lakehouse.table.registry import all_specs

SMALL_FILES_PER_PARTITION = 50
"""Small files in one partition that make a table worth compacting before the nightly run."""


def tables_to_compact(
    lakehouse: LakehouseResource, threshold: int = SMALL_FILES_PER_PARTITION
) -> dict[str, tuple[int, int | None]]:
    """Tables with a partition holding ``threshold`` small files or more: (most, snapshot id)."""
    lh = lakehouse.lakehouse()
    found: dict[str, tuple[int, int | None]] = {}
    for spec in all_specs():
        counts = maintenance.small_file_counts(lh, spec.name, branch=lh.settings.branch)
        worst = max(counts.values(), default=0)
        if worst >= threshold:
            found[spec.name] = (worst, lh.info(spec.name).snapshot_id)
    return found


@sensor(
    job=table_maintenance_job,
    minimum_interval_seconds=600,
    description="Run table maintenance for a table whose partition gathered many small files "
    "(off by default: the nightly schedule covers it).",
)
def small_files_sensor(
    context: SensorEvaluationContext, lakehouse: LakehouseResource
) -> SensorResult | SkipReason:
    """One maintenance run per table over the threshold; the run key (table and snapshot) makes
    a repeated evaluation of the same table state a no-op."""
    found = tables_to_compact(lakehouse, SMALL_FILES_PER_PARTITION)
    if not found:
        return SkipReason(f"no partition has {SMALL_FILES_PER_PARTITION} or more small files")
    return SensorResult(
        run_requests=[
            RunRequest(
                run_key=f"{table}@{snapshot}",
                run_config={"ops": {"maintain_tables_op": {"config": {"tables": [table]}}}},
                tags={"aura/table": table, "aura/small_files": str(worst)},
            )
            for table, (worst, snapshot) in sorted(found.items())
        ]
    )
