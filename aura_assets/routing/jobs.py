"""Routing jobs: ingest one day and refresh its summary."""

from dagster import AssetSelection, define_asset_job

from aura_assets.routing.assets import DECISIONS, routing_model_daily

routing_ingest_job = define_asset_job(
    "routing_ingest",
    selection=AssetSelection.assets(DECISIONS).required_multi_asset_neighbors()
    | AssetSelection.assets(routing_model_daily),
    description="Ingest a day of routing decisions from Redis and summarise them per model.",
)
