"""Routing jobs: ingest one day and refresh its summary."""

from dagster import AssetSelection, define_asset_job

from aura_assets.routing.assets import DECISIONS, REJECTED, routing_model_daily

# The dead-letter twin is selected explicitly: the multi-asset can be subset, so it is not a
# "required neighbour", and without it the UI would show it as never materialised.
routing_ingest_job = define_asset_job(
    "routing_ingest",
    selection=AssetSelection.assets(DECISIONS, REJECTED, routing_model_daily),
    description="Ingest a day of routing decisions from Redis and summarise them per model.",
)
