"""Shape-aware memory: a workflow run stored as a memory is found again by its topology."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
import redis

from lakehouse.exceptions import ValidationError
from lakehouse.memory import MemoryStore, ingest_memory_events
from lakehouse.memory.shape import MAX_SIGNATURE, ShapeHit
from lakehouse.publish.wap import accept_all
from lakehouse.simulate.traces import publish_workflow_events, simulate_workflow_events
from lakehouse.topology import ingest
from lakehouse.topology.history import history_day
from lakehouse.topology.index import index_day
from lakehouse.topology.retrieval import open_index, similar_runs
from lakehouse.topology.tda import event_signature

DAY = date(2026, 11, 20)


def _closest(hits: list[ShapeHit]) -> set[str]:
    """Ids of the hits at (numerically) zero distance; the first hit must be one of them."""
    assert hits and hits[0].distance < 1e-6
    return {h.memory.id for h in hits if h.distance < 1e-6}


def test_workflow_runs_remembered_and_found_by_shape_per_tenant(
    mem: MemoryStore, redis_client: redis.Redis
) -> None:
    # The seeds' flow: runs traced, ingested, analysed (topology_history) and indexed.
    events = list(simulate_workflow_events(DAY, 1, 30, seed=9))
    publish_workflow_events(redis_client, events)
    ingest.ingest_day(mem.lakehouse, redis_client, DAY, audit=accept_all)
    history_day(mem.lakehouse, DAY, audit=accept_all)
    with open_index(mem.settings) as index:
        assert index_day(mem.lakehouse, index, DAY).indexed == 30
    (a, _), (b, _) = Counter(e["tenant_id"] for e in events).most_common(2)
    runs = {e["run_id"]: e for e in events}
    memory_of = {
        e["run_id"]: mem.store(
            e["tenant_id"],
            f"run {e['run_id']} of {e['workflow']} ended {e['status']}",
            signature=e["run_id"],
        )
        for e in events
    }
    mine = [r for r, e in runs.items() if e["tenant_id"] == a]
    query = mine[0]

    hits = mem.search_by_shape(a, query, k=100)
    assert {h.memory.tenant_id for h in hits} == {a}
    assert {h.memory.id for h in hits} == {memory_of[r] for r in mine}
    assert memory_of[query] in _closest(hits)
    assert [h.distance for h in hits] == sorted(h.distance for h in hits)
    # The same distances as the topology domain's own retrieval.
    with open_index(mem.settings) as index:
        topo = {r.run_id: r.distance for r in similar_runs(index, a, run_id=query, k=100)}
    assert {h.run_id: h.distance for h in hits if h.run_id != query} == pytest.approx(topo)
    assert len(mem.search_by_shape(a, query, k=2)) == 2

    # Another tenant: a memory naming a's run resolves to nothing of a's; a's runs are unknown.
    borrowed = mem.store(b, "b claims a's run", signature=query)
    theirs = mem.search_by_shape(b, next(r for r, e in runs.items() if e["tenant_id"] == b), k=100)
    assert {h.memory.tenant_id for h in theirs} == {b} and borrowed not in {
        h.memory.id for h in theirs
    }
    with pytest.raises(ValidationError, match="not in the topology index"):
        mem.search_by_shape(b, query, k=5)

    # A memory may carry the diagrams themselves; a diagram query sees only the caller's tenant.
    signature = event_signature(runs[query])
    shaped = mem.store(b, "b's memory of that shape", signature=signature)
    assert len(mem.get(b, shaped).signature) <= MAX_SIGNATURE  # type: ignore[union-attr,arg-type]
    today = datetime.now(UTC).date()  # the store events, signatures included, reach the table
    assert ingest_memory_events(mem.lakehouse, redis_client, today, audit=accept_all).rejected == 0
    logged = {
        r["memory_id"]: r["signature"] for r in mem.lakehouse.read("memory_events").to_pylist()
    }
    assert logged[shaped] == mem.get(b, shaped).signature  # type: ignore[union-attr]
    assert logged[memory_of[query]] == query
    found = mem.search_by_shape(b, signature, k=3)
    assert shaped in _closest(found)
    assert shaped not in {h.memory.id for h in mem.search_by_shape(a, signature, k=100)}
    assert {h.memory.tenant_id for h in mem.search_by_shape(a, signature, k=100)} == {a}

    # Every tier answers: after compaction the memories are found in the cold tier.
    now = mem.get(a, memory_of[query]).created_at + timedelta(days=90)  # type: ignore[union-attr]
    mem.compact(now=now, hot_max_age=timedelta(0))
    mem.compact(now=now, warm_max_age=timedelta(days=1))
    cold = mem.search_by_shape(a, query, k=100, now=now)
    assert {h.memory.id for h in cold} == {memory_of[r] for r in mine}
    assert {h.memory.tier for h in cold} == {"cold"}


def test_a_bad_shape_is_refused(mem: MemoryStore) -> None:
    with pytest.raises(ValidationError, match="a shape is a run id"):
        mem.store("acme", "x", signature=("not", "diagrams"))  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="not in the topology index"):
        mem.search_by_shape("acme", "no-such-run", k=3)
    big = np.column_stack([np.zeros(200), np.linspace(0.01, 0.5, 200)])
    with pytest.raises(ValidationError, match="pass its run id instead"):
        mem.store("acme", "x", signature=(big, np.empty((0, 2))))


def test_a_run_the_topology_asset_indexed_is_found_by_shape(
    mem: MemoryStore, redis_client: redis.Redis
) -> None:
    """The topology index as its asset keeps it (embedded: a Qdrant Edge shard in AURA_HOME,
    not the memory tier's client) is where shape search looks a run id up."""
    events = list(simulate_workflow_events(DAY, 1, 12, seed=4))
    publish_workflow_events(redis_client, events)
    ingest.ingest_day(mem.lakehouse, redis_client, DAY, audit=accept_all)
    history_day(mem.lakehouse, DAY, audit=accept_all)
    index = open_index(mem.settings)
    try:
        assert index_day(mem.lakehouse, index, DAY).indexed == 12
    finally:
        index.close()
    run = events[0]
    remembered = mem.store(run["tenant_id"], "the first run", signature=run["run_id"])
    hits = mem.search_by_shape(run["tenant_id"], run["run_id"], k=5)
    assert remembered in _closest(hits)
