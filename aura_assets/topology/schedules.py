"""Close each day: run the topology job for yesterday shortly after midnight UTC."""

from aura_assets.partitions import closed_day_schedule
from aura_assets.topology.jobs import topology_daily_job

topology_daily_schedule = closed_day_schedule(topology_daily_job, hour=0, minute=45)
