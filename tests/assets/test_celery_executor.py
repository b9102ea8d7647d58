"""Runs whose steps execute on real Celery workers: the routing and memory pipelines.

``.ci/celery-workers.sh start 2`` starts two workers (PostgreSQL database ``aura_celery``, Redis
db 9 as the broker, db 10 for data) and writes their environment, which the test process must
share (``set -a; . "$(.ci/celery-workers.sh env)"``; ``make test`` does this on the server pass):
``AURA_TEST_CELERY=1`` says the workers are up. The runs are launched as ``aura`` launches them
(:func:`aura_assets.launch.launch`, which picks the ``celery`` executor when
``AURA_CELERY_BROKER`` is set): this process only orchestrates and claims the pool slots.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime

import psutil
import pytest
from dagster import DagsterEventType
from helpers import CELERY, decision, payload

from aura_assets.instance import open_instance
from aura_assets.launch import launch
from lakehouse import Lakehouse, Settings
from lakehouse.memory import MemoryStore
from lakehouse.simulate.routing import publish
from lakehouse.stores import close_redis, open_redis
from lakehouse.table.catalog import open_catalog

pytestmark = [
    pytest.mark.slow,
    pytest.mark.process,
    pytest.mark.skipif(
        not CELERY,
        reason="needs Celery workers: .ci/celery-workers.sh start 2, then its environment "
        "(AURA_TEST_CELERY=1; make test does this on the server pass)",
    ),
]

DAY = date(2026, 11, 4)
DECISIONS = 40


@pytest.fixture
def settings() -> Settings:
    """The workers' settings, with empty tables and an empty data db (never the broker's)."""
    settings = Settings.from_env()
    assert settings.celery_broker and settings.redis_url != settings.celery_broker
    catalog = open_catalog(settings)
    for namespace in catalog.list_namespaces():
        for identifier in catalog.list_tables(namespace):
            catalog.drop_table(identifier)
    client = open_redis(settings)
    client.flushdb()
    close_redis(client)
    return settings


def _worker_processes(settings: Settings) -> dict[str, set[int]]:
    """Each live worker's name and the pids of its main and pool processes."""
    from celery import Celery

    app = Celery(broker=settings.celery_broker, backend=settings.celery_broker)
    stats = app.control.inspect(timeout=5.0).stats() or {}
    return {
        name: {int(s["pid"]), *(int(p) for p in s["pool"]["processes"])}
        for name, s in stats.items()
    }


def test_routing_and_memory_runs_execute_their_steps_on_the_celery_workers(settings) -> None:  # type: ignore[no-untyped-def]
    workers = _worker_processes(settings)
    assert len(workers) >= 2, f"expected two workers, found {sorted(workers)}"
    client = open_redis(settings)
    publish(client, [payload(decision(i, DAY)) for i in range(DECISIONS)])
    today = datetime.now(UTC).date()
    with MemoryStore(settings, redis_client=client) as memory:
        memory.store("acme", "prefers short answers")
        memory.store("acme", "works in UTC")
    close_redis(client)

    routing = launch(settings, "routing_ingest", DAY.isoformat())
    memory_run = launch(settings, "memory_ingest", today.isoformat())
    assert routing.success and memory_run.success

    lh = Lakehouse(settings)
    assert lh.read("routing_decisions").num_rows == DECISIONS
    assert sum(lh.read("routing_model_daily").column("decisions").to_pylist()) == DECISIONS
    assert lh.read("memory_events").num_rows == 2

    instance = open_instance(settings)
    try:
        used = set()
        for outcome in (routing, memory_run):
            run = instance.get_run_by_id(outcome.run_id)
            assert run is not None and run.run_config["execution"]["config"] == {"celery": {}}
            logs = instance.all_logs(outcome.run_id)
            starts = [e for e in logs if e.dagster_event_type == DagsterEventType.STEP_START]
            assert starts, "no step started"
            on_worker = {
                e.step_key: e.dagster_event.event_specific_data.metadata["Celery worker"].value  # type: ignore[union-attr]
                for e in logs
                if e.dagster_event_type == DagsterEventType.ENGINE_EVENT
                and "in celery worker" in (e.message or "")
            }
            for start in starts:
                pid = start.dagster_event.pid  # type: ignore[union-attr]
                worker = on_worker[start.step_key]
                assert worker in workers, f"{start.step_key} ran on unknown worker {worker}"
                assert pid != os.getpid() and pid in workers[worker], (start.step_key, pid)
                assert psutil.pid_exists(pid)
                used.add(worker)
        # Which worker takes a step is the broker's choice: both are used, but not asserted.
        assert used <= set(workers)
    finally:
        instance.dispose()
