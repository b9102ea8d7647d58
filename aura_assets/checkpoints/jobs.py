"""Checkpoint jobs: archive a day of LangGraph checkpoints into Iceberg, then trim the hot store."""

from dagster import AssetSelection, define_asset_job

from aura_assets.checkpoints.assets import CHECKPOINTS_KEY

checkpoint_archive_job = define_asset_job(
    "checkpoint_archive",
    selection=AssetSelection.assets(CHECKPOINTS_KEY).required_multi_asset_neighbors(),
    description="Archive one day of checkpoints and pending writes, then apply hot retention.",
)
