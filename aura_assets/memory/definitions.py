"""Everything the memory domain contributes to the code location."""

from dagster import Definitions

from aura_assets.memory.assets import memory_events_ingest, memory_tiers
from aura_assets.memory.jobs import memory_compaction_job, memory_ingest_job
from aura_assets.memory.sensors import memory_stream_sensor, tier_compaction_sensor

defs = Definitions(
    assets=[memory_events_ingest, memory_tiers],
    jobs=[memory_ingest_job, memory_compaction_job],
    sensors=[memory_stream_sensor, tier_compaction_sensor],
)
