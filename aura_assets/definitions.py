"""The AURA code location: every domain's definitions plus the shared resources.

A domain is a sub-package with a ``definitions.py`` exposing ``defs``; it is found here without
a hand-kept list, so adding a domain edits nothing outside its folder.

Global policy applied here: the automation-condition sensor (declarative automation of every
asset, e.g. ``routing_model_daily`` following its decisions) runs by default, as the stream
sensors and the closed-day schedules do (``docs/automation.md``). Every job has AURA's executor
(:mod:`aura_assets.executors`): a multi-asset run executes its steps in parallel processes by
default, or on Celery workers when ``AURA_CELERY_BROKER`` is set (``docs/distributed-runs.md``).
"""

import importlib
import pkgutil
from pathlib import Path

from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    Definitions,
)

from aura_assets.executors import aura_executor
from aura_assets.resources import RESOURCES

_PACKAGE = Path(__file__).parent


def domain_definitions() -> list[Definitions]:
    """The ``defs`` of every domain folder, in name order."""
    return [
        importlib.import_module(f"aura_assets.{module.name}.definitions").defs
        for module in pkgutil.iter_modules([str(_PACKAGE)])
        if module.ispkg and (_PACKAGE / module.name / "definitions.py").exists()
    ]


AUTOMATION_SENSOR = AutomationConditionSensorDefinition(
    "default_automation_condition_sensor",
    target=AssetSelection.all(),
    default_status=DefaultSensorStatus.RUNNING,
    description="Evaluates every asset's automation condition (e.g. routing_model_daily "
    "follows its decisions' partitions); on by default.",
)

defs = Definitions.merge(
    *domain_definitions(),
    Definitions(resources=RESOURCES, sensors=[AUTOMATION_SENSOR], executor=aura_executor),
)
