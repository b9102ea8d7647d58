"""Nightly maintenance: ref retention first, then table maintenance (it frees what expired)."""

from dagster import ScheduleDefinition

from aura_assets.maintenance.jobs import ref_retention_job, table_maintenance_job

ref_retention_schedule = ScheduleDefinition(
    job=ref_retention_job,
    cron_schedule="15 2 * * *",
    execution_timezone="UTC",
    description=(
        "Remove expired audit branches and tags from every table, nightly at 02:15 UTC (off by "
        "default: it deletes refs; turn it on in the UI's Automation page)."
    ),
)

table_maintenance_schedule = ScheduleDefinition(
    name="table_maintenance_nightly",
    job=table_maintenance_job,
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    description=(
        "Compact and clean every aura table, nightly at 03:00 UTC, after ref retention "
        "(off by default; turn it on in the UI's Automation page)."
    ),
)
