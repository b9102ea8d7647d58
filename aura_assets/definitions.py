"""The AURA code location: each domain's definitions plus the shared resources."""

from dagster import Definitions

from aura_assets.checkpoints import definitions as checkpoints
from aura_assets.maintenance import definitions as maintenance
from aura_assets.resources import RESOURCES
from aura_assets.routing import definitions as routing
from aura_assets.topology import definitions as topology

defs = Definitions.merge(
    routing.defs,
    checkpoints.defs,
    maintenance.defs,
    topology.defs,
    Definitions(resources=RESOURCES),
)
