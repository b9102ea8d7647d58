"""Memory jobs: ingest a day of memory events; compact the tiers."""

from dagster import AssetSelection, define_asset_job

from aura_assets.memory.assets import COLD, EVENTS, WARM

memory_ingest_job = define_asset_job(
    "memory_ingest",
    selection=AssetSelection.assets(EVENTS).required_multi_asset_neighbors(),
    description="Ingest a day of memory events from Redis into memory_events (audited).",
)

memory_compaction_job = define_asset_job(
    "memory_compaction",
    selection=AssetSelection.assets(WARM, COLD),
    description="Move memories hot → warm → cold and purge expired ones.",
)
