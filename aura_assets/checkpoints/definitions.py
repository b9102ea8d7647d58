"""Everything the checkpoints domain contributes to the code location."""

from dagster import Definitions

from aura_assets.checkpoints.assets import workflow_checkpoints

defs = Definitions(assets=[workflow_checkpoints])
