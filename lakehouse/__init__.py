"""AURA lakehouse: the persistence library behind the AURA agent platform (no Dagster here)."""

from lakehouse.core import Lakehouse, TableInfo
from lakehouse.settings import Settings, load_settings
from lakehouse.table.writer import Lineage, WriteResult

__all__ = ["Lakehouse", "Lineage", "Settings", "TableInfo", "WriteResult", "load_settings"]
