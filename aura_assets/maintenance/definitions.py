"""Everything the maintenance domain contributes to the code location."""

from dagster import Definitions

from aura_assets.maintenance.jobs import ref_retention_job
from aura_assets.maintenance.schedules import ref_retention_schedule

defs = Definitions(jobs=[ref_retention_job], schedules=[ref_retention_schedule])
