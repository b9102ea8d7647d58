"""LangGraph's own conformance suite against both AURA savers on both hot stores.

SQLite (on ``tmp_path``) always runs; PostgreSQL runs when reachable at ``AURA_TEST_PG_URL``, each
test in its own schema, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from helpers import PG_URL, pg_unreachable_reason
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES
from langgraph.checkpoint.conformance.report import CapabilityReport

from lakehouse.checkpoints import AsyncAuraCheckpointSaver, AuraCheckpointSaver


@pytest.fixture(scope="module")
def pg_url() -> str:
    reason = pg_unreachable_reason()
    if reason:
        pytest.skip(reason)
    return PG_URL


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[str]:
    """A fresh schema for one test, dropped with everything in it afterwards."""
    schema = f"t_ckpt_{uuid.uuid4().hex[:12]}"
    yield schema
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _run_suite(name: str, factory: Callable[[], AsyncIterator[Any]]) -> CapabilityReport:
    registered = checkpointer_test(name=name)(factory)
    return asyncio.run(validate(registered))


def _assert_full(report: CapabilityReport) -> None:
    failures = {
        cap: result.failures
        for cap, result in report.results.items()
        if not (result.detected and result.passed)
    }
    assert not failures, f"{report.checkpointer_name}: {failures}"
    assert set(report.results) == {c.value for c in ALL_CAPABILITIES}
    assert report.conformance_level() == "FULL"
    # 58 base tests plus 7 delete_for_runs, 8 copy_thread and 8 prune tests.
    assert sum(r.tests_passed for r in report.results.values()) >= 81


def test_async_saver_sqlite_is_fully_conformant(tmp_path: Path) -> None:
    async def factory() -> AsyncIterator[Any]:
        path = tmp_path / f"{uuid.uuid4().hex}.db"
        async with AsyncAuraCheckpointSaver.from_conn_string(f"sqlite:///{path}") as saver:
            await saver.setup()
            yield saver

    _assert_full(_run_suite("AsyncAuraCheckpointSaver[sqlite]", factory))


def test_sync_saver_sqlite_is_fully_conformant(tmp_path: Path) -> None:
    async def factory() -> AsyncIterator[Any]:
        with AuraCheckpointSaver.from_conn_string(str(tmp_path / f"{uuid.uuid4().hex}.db")) as s:
            s.setup()
            yield s

    _assert_full(_run_suite("AuraCheckpointSaver[sqlite]", factory))


@pytest.mark.servers
def test_async_saver_postgres_is_fully_conformant(pg_url: str, pg_schema: str) -> None:
    async def factory() -> AsyncIterator[Any]:
        async with AsyncAuraCheckpointSaver.from_conn_string(pg_url, schema=pg_schema) as saver:
            await saver.setup()
            yield saver

    _assert_full(_run_suite("AsyncAuraCheckpointSaver[postgres]", factory))


@pytest.mark.servers
def test_sync_saver_postgres_is_fully_conformant(pg_url: str, pg_schema: str) -> None:
    async def factory() -> AsyncIterator[Any]:
        with AuraCheckpointSaver.from_conn_string(pg_url, schema=pg_schema) as saver:
            saver.setup()
            yield saver

    _assert_full(_run_suite("AuraCheckpointSaver[postgres]", factory))
