"""Fixtures for the maintenance tests: a table grown by many small appends."""

from __future__ import annotations

import pytest
from helpers import DAYS, TABLE, Batch, day_decisions

from lakehouse import Lakehouse, Lineage


@pytest.fixture
def batch() -> Batch:
    return day_decisions


@pytest.fixture
def small_files(lakehouse: Lakehouse) -> Lakehouse:
    """``routing_decisions`` with 6 small appends on each of two days (12 files, 12 snapshots)."""
    for i in range(6):
        for day in DAYS:
            lakehouse.append(
                TABLE,
                day_decisions(20, day, start=100 * i),
                lineage=Lineage(asset="ingest", partition=f"{day:%Y-%m-%d}", run_id=f"run-{i}"),
            )
    return lakehouse
