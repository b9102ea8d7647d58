"""Router jobs: the daily training set, and gated retraining (requested by name elsewhere)."""

from dagster import AssetSelection, define_asset_job

from aura_assets.router.assets import EVALUATION, MODEL, TRAINING

router_training_job = define_asset_job(
    "router_training",
    selection=AssetSelection.assets(TRAINING),
    description="Build one day (or a range) of the router's training set.",
)

# The topology drift sensor requests this job by name: keep it.
router_retrain_job = define_asset_job(
    "router_retrain",
    selection=AssetSelection.assets(MODEL, EVALUATION),
    description="Train a router candidate, evaluate it on held-out days, and publish it as "
    "champion only if it beats the current one.",
)
