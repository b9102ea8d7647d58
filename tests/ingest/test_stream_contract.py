"""The one stream ingest path (lakehouse.ingest.stream_day.ingest_day) in every domain.

Routing's own waiting tests are in test_event_guards; here the same promises hold for the
workflow and memory streams, which did not wait before, and a dead run's entries are taken
over while the run waits instead of being reported as held.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime
from typing import Any

import pytest

from lakehouse import Lakehouse
from lakehouse.ingest.contract import StreamContract
from lakehouse.ingest.stream_day import ingest_day
from lakehouse.ingest.streams import StreamConsumer
from lakehouse.memory.ingest import CONTRACT as MEMORY
from lakehouse.publish.wap import accept_all
from lakehouse.routing import CONTRACT as ROUTING
from lakehouse.topology.ingest import CONTRACT as WORKFLOWS

DAY = date(2026, 11, 20)
NOON_MS = int(datetime(2026, 11, 20, 12, tzinfo=UTC).timestamp() * 1000)


def _event(contract: StreamContract, i: int) -> dict[str, Any]:
    if contract is MEMORY:
        return {
            "event_id": f"e-{i}",
            "ts_ms": NOON_MS + i,
            "tenant_id": "acme",
            "op": "store",
            "memory_id": f"00000000-0000-4000-8000-{i:012d}",
            "content": f"note {i}",
        }
    if contract is WORKFLOWS:
        return {
            "run_id": f"w-{i}",
            "ts": f"2026-11-20T12:{i:02d}:00+00:00",
            "tenant_id": "acme",
            "workflow": "support",
            "status": "ok",
            "nodes": [{"id": "plan", "kind": "agent"}],
            "edges": [],
        }
    return {
        "decision_id": f"d-{i}",
        "ts": f"2026-11-20T12:{i:02d}:00+00:00",
        "tenant_id": "acme",
        "task_type": "code",
        "prompt_tokens": 10,
        "candidate_models": ["small"],
        "chosen_model": "small",
        "cost_usd": 0.1,
        "latency_ms": 1.0,
        "quality_score": 0.5,
        "fallback_used": False,
    }


@pytest.fixture(params=["memory", "workflows"])
def contract(request: pytest.FixtureRequest) -> StreamContract:
    return {"memory": MEMORY, "workflows": WORKFLOWS}[request.param]


def _publish(client: Any, contract: StreamContract, n: int) -> None:
    for i in range(n):
        client.xadd(contract.stream, {"data": json.dumps(_event(contract, i))})


def test_a_run_does_not_succeed_while_another_run_holds_its_day(
    lakehouse: Lakehouse, redis_client: Any, contract: StreamContract
) -> None:
    _publish(redis_client, contract, 4)
    other = StreamConsumer(redis_client, contract.stream, consumer="run-other-day")
    held = [e[0] for e in other.read_unacked()]
    assert len(held) == 4
    releaser = threading.Timer(1.0, other.release, args=(held,))  # handed back later
    releaser.start()
    try:
        report = ingest_day(
            lakehouse, contract, DAY, redis_client, audit=accept_all, wait_for_others_s=30
        )
    finally:
        releaser.join()
    assert (report.written, report.held_elsewhere) == (4, 0)
    assert contract.backlog(redis_client) == 0


def test_a_dead_runs_entries_are_taken_over_while_waiting(
    lakehouse: Lakehouse, redis_client: Any, contract: StreamContract
) -> None:
    ingest_day(lakehouse, contract, DAY, redis_client, audit=accept_all)  # tables exist
    _publish(redis_client, contract, 3)
    # A run read every entry and died: nobody will hand them back. Read again at once, they
    # are not idle yet; once idle for claim_idle_ms they are taken over, not waited for.
    list(StreamConsumer(redis_client, contract.stream, consumer="run-dead").read_unacked())
    reader = StreamConsumer(redis_client, contract.stream, claim_idle_ms=2_000)
    report = ingest_day(
        lakehouse,
        contract,
        DAY,
        redis_client,
        audit=accept_all,
        reader=reader,
        wait_for_others_s=30,
    )
    assert (report.written, report.held_elsewhere) == (3, 0)
    assert contract.backlog(redis_client) == 0


def test_entries_held_too_long_are_reported_not_hidden(
    lakehouse: Lakehouse, redis_client: Any, contract: StreamContract
) -> None:
    _publish(redis_client, contract, 2)
    list(StreamConsumer(redis_client, contract.stream, consumer="run-slow").read_unacked())
    report = ingest_day(
        lakehouse, contract, DAY, redis_client, audit=accept_all, wait_for_others_s=0.3
    )
    assert (report.written, report.held_elsewhere) == (0, 2)


def test_every_domain_states_a_contract_with_a_keyed_table_and_dead_letters() -> None:
    for contract in (ROUTING, WORKFLOWS, MEMORY):
        assert len(contract.table.key) == 1 and contract.table.time_column
        assert contract.rejected.name == f"{contract.table.name}_rejected"
        assert contract.events.event_day(b"{not json") is None  # never raises
