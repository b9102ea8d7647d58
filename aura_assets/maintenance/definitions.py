"""Everything the maintenance domain contributes to the code location."""

from dagster import Definitions

from aura_assets.maintenance.jobs import ref_retention_job, table_maintenance_job
from aura_assets.maintenance.schedules import ref_retention_schedule, table_maintenance_schedule
from aura_assets.maintenance.sensors import small_files_sensor

defs = Definitions(
    jobs=[ref_retention_job, table_maintenance_job],
    schedules=[ref_retention_schedule, table_maintenance_schedule],
    sensors=[small_files_sensor],
)
