"""Everything the topology domain contributes to the code location."""

from dagster import Definitions

from aura_assets.topology.assets import (
    topology_drift,
    topology_history,
    topology_index,
    workflow_runs,
)
from aura_assets.topology.jobs import topology_daily_job
from aura_assets.topology.schedules import topology_daily_schedule
from aura_assets.topology.sensors import drift_sensor, workflows_stream_sensor

defs = Definitions(
    assets=[workflow_runs, topology_history, topology_index, topology_drift],
    jobs=[topology_daily_job],
    schedules=[topology_daily_schedule],
    sensors=[workflows_stream_sensor, drift_sensor],
)
