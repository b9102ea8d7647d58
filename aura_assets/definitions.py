"""The AURA code location: each domain's definitions plus the shared resources."""

from dagster import Definitions

from aura_assets.checkpoints.definitions import defs as checkpoint_defs
from aura_assets.resources import RESOURCES
from aura_assets.routing.definitions import defs as routing_defs

defs = Definitions.merge(routing_defs, checkpoint_defs, Definitions(resources=RESOURCES))
