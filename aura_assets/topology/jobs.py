"""Topology jobs: a day's traces through signatures, index and drift."""

from dagster import AssetSelection, define_asset_job

from aura_assets.topology.assets import (
    RUNS,
    topology_drift,
    topology_history,
    topology_index,
)

topology_daily_job = define_asset_job(
    "topology_daily",
    selection=AssetSelection.assets(RUNS).required_multi_asset_neighbors()
    | AssetSelection.assets(topology_history, topology_index, topology_drift),
    description="Ingest a day of workflow traces, compute their signatures, index them in "
    "Qdrant and test the day for drift.",
)
