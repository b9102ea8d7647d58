"""Fixtures of the memory tests: a MemoryStore on the test's Redis and Qdrant local mode."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lakehouse import Settings
from lakehouse.memory import MemoryStore


@pytest.fixture
def mem(settings: Settings, redis_client) -> Iterator[MemoryStore]:  # type: ignore[no-untyped-def]
    store = MemoryStore(settings, redis_client=redis_client)
    yield store
    store.close()
