"""Close each day: re-ingest yesterday's partition shortly after midnight UTC (late events)."""

from aura_assets.partitions import closed_day_schedule
from aura_assets.routing.jobs import routing_ingest_job

routing_daily_schedule = closed_day_schedule(routing_ingest_job, hour=0, minute=30)
