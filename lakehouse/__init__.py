"""AURA lakehouse: the persistence library behind the AURA agent platform (no Dagster here).

The names below are imported on first use (PEP 562), so ``import lakehouse.settings`` (the CLI's
start, a Dagster config class) does not load pyiceberg and pyarrow.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lakehouse.core import Lakehouse, TableInfo
    from lakehouse.settings import Settings, load_settings
    from lakehouse.table.writer import Lineage, WriteResult

__all__ = ["Lakehouse", "Lineage", "Settings", "TableInfo", "WriteResult", "load_settings"]

_HOMES = {
    "Lakehouse": "lakehouse.core",
    "TableInfo": "lakehouse.core",
    "Settings": "lakehouse.settings",
    "load_settings": "lakehouse.settings",
    "Lineage": "lakehouse.table.writer",
    "WriteResult": "lakehouse.table.writer",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
