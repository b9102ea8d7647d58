"""The AURA code location: every domain's definitions plus the shared resources.

A domain is a sub-package with a ``definitions.py`` exposing ``defs``; it is found here without
a hand-kept list, so adding a domain edits nothing outside its folder.
"""

import importlib
import pkgutil
from pathlib import Path

from dagster import Definitions

from aura_assets.resources import RESOURCES

_PACKAGE = Path(__file__).parent


def domain_definitions() -> list[Definitions]:
    """The ``defs`` of every domain folder, in name order."""
    return [
        importlib.import_module(f"aura_assets.{module.name}.definitions").defs
        for module in pkgutil.iter_modules([str(_PACKAGE)])
        if module.ispkg and (_PACKAGE / module.name / "definitions.py").exists()
    ]


defs = Definitions.merge(*domain_definitions(), Definitions(resources=RESOURCES))
