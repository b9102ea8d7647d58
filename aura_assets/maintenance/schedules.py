"""Nightly ref retention."""

from dagster import ScheduleDefinition

from aura_assets.maintenance.jobs import ref_retention_job

ref_retention_schedule = ScheduleDefinition(
    job=ref_retention_job, cron_schedule="15 2 * * *", execution_timezone="UTC"
)
