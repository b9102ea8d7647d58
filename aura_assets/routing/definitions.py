"""Everything the routing domain contributes to the code location."""

from dagster import Definitions

from aura_assets.routing.assets import routing_decisions, routing_model_daily
from aura_assets.routing.jobs import routing_ingest_job
from aura_assets.routing.schedules import routing_daily_schedule
from aura_assets.routing.sensors import routing_stream_sensor

defs = Definitions(
    assets=[routing_decisions, routing_model_daily],
    jobs=[routing_ingest_job],
    schedules=[routing_daily_schedule],
    sensors=[routing_stream_sensor],
)
