"""Fixtures for the maintenance tests: a table grown by many small appends."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from lakehouse import Lakehouse, Lineage

TABLE = "routing_decisions"
DAYS = (datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC))

Batch = Callable[..., pa.Table]


def _decisions(n: int, day: datetime = DAYS[0], *, start: int = 0) -> pa.Table:
    """``n`` valid routing decisions on ``day`` with distinct ids."""
    tag = uuid.uuid4().hex[:6]
    return pa.table(
        {
            "decision_id": [f"d-{start + i}-{tag}" for i in range(n)],
            "ts": [day + timedelta(seconds=start + i) for i in range(n)],
            "tenant_id": ["t1"] * n,
            "task_type": ["chat", "code"] * (n // 2) + ["chat"] * (n % 2),
            "prompt_tokens": [100 + i for i in range(n)],
            "candidate_models": [["a", "b"]] * n,
            "chosen_model": ["a", "b", "c"] * (n // 3) + ["a"] * (n % 3),
            "cost_usd": [0.01 * (i % 7) for i in range(n)],
            "latency_ms": [120.0 + i for i in range(n)],
            "quality_score": [0.9] * n,
            "fallback_used": [i % 5 == 0 for i in range(n)],
        }
    )


@pytest.fixture
def batch() -> Batch:
    return _decisions


@pytest.fixture
def small_files(lakehouse: Lakehouse) -> Lakehouse:
    """``routing_decisions`` with 6 small appends on each of two days (12 files, 12 snapshots)."""
    for i in range(6):
        for day in DAYS:
            lakehouse.append(
                TABLE,
                _decisions(20, day, start=100 * i),
                lineage=Lineage(asset="ingest", partition=f"{day:%Y-%m-%d}", run_id=f"run-{i}"),
            )
    return lakehouse
