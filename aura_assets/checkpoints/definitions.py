"""Everything the checkpoints domain contributes to the code location."""

from dagster import Definitions

from aura_assets.checkpoints.assets import WORKFLOWS, workflow_checkpoints
from aura_assets.checkpoints.jobs import checkpoint_archive_job
from aura_assets.checkpoints.schedules import checkpoint_archive_schedule

defs = Definitions(
    assets=[WORKFLOWS, workflow_checkpoints],
    jobs=[checkpoint_archive_job],
    schedules=[checkpoint_archive_schedule],
)
