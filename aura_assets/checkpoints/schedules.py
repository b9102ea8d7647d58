"""Archive yesterday's checkpoints shortly after midnight UTC."""

from aura_assets.checkpoints.jobs import checkpoint_archive_job
from aura_assets.partitions import closed_day_schedule

checkpoint_archive_schedule = closed_day_schedule(checkpoint_archive_job, hour=0, minute=45)
