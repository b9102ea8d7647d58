"""Everything the router domain contributes to the code location."""

from dagster import Definitions

from aura_assets.router.assets import router_model, router_training_set
from aura_assets.router.jobs import router_retrain_job, router_training_job
from aura_assets.router.schedules import router_weekly_schedule
from aura_assets.router.sensors import router_training_sensor

defs = Definitions(
    assets=[router_training_set, router_model],
    jobs=[router_training_job, router_retrain_job],
    schedules=[router_weekly_schedule],
    sensors=[router_training_sensor],
)
