"""The AURA code location: each domain's definitions plus the shared resources."""

from dagster import Definitions

from aura_assets.checkpoints import definitions as checkpoints
from aura_assets.maintenance import definitions as maintenance
from aura_assets.resources import RESOURCES
from aura_assets.router import definitions as router
from aura_assets.routing import definitions as routing

defs = Definitions.merge(
    routing.defs,
    checkpoints.defs,
    maintenance.defs,
    router.defs,
    Definitions(resources=RESOURCES),
)
