"""Shape retrieval on the embedded engine (a Qdrant Edge shard): tenant isolation, near-duplicates
first, exact order."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from lakehouse.simulate.traces import simulate_workflow_events
from lakehouse.topology.retrieval import SPEC, index_runs, similar_runs
from lakehouse.topology.tda import TopologySignature, diagram_distance, event_signature, signature
from lakehouse.vectors import EdgeStore, VectorStore


@pytest.fixture
def client(tmp_path: Path) -> Iterator[VectorStore]:
    with EdgeStore(tmp_path / "vectors", SPEC) as store:
        yield store


@pytest.fixture(scope="module")
def runs() -> list[tuple[dict[str, Any], TopologySignature]]:
    events = list(simulate_workflow_events(date(2026, 11, 1), 2, 60, seed=9, regime_change_at=1))
    return [(e, event_signature(e)) for e in events]


def _loop(n: int) -> list[dict[str, object]]:
    """A ring of heavy edges (20-31 calls), a shape no simulated run has."""
    return [
        {"src": f"n{i}", "dst": f"n{(i + 1) % n}", "calls": 20 + i, "latency_ms": 1, "errors": 0}
        for i in range(n)
    ]


def test_answers_only_the_tenants_runs_in_exact_order(client: VectorStore, runs: list[Any]) -> None:
    assert index_runs(client, runs) == len(runs)
    for tenant in ("tenant-00", "tenant-03"):
        own = {e["run_id"] for e, _ in runs if e["tenant_id"] == tenant}
        query = next(e["run_id"] for e, _ in runs if e["tenant_id"] == tenant)
        hits = similar_runs(client, tenant, run_id=query, k=10)
        assert hits and {h.tenant_id for h in hits} == {tenant}
        assert {h.run_id for h in hits} <= own - {query}
        assert [h.distance for h in hits] == sorted(h.distance for h in hits)
        assert all(h.exact for h in hits)
    stranger = next(e["run_id"] for e, _ in runs if e["tenant_id"] == "tenant-00")
    with pytest.raises(KeyError, match="not indexed"):
        similar_runs(client, "tenant-03", run_id=stranger)
    with pytest.raises(ValueError, match="tenant_id is required"):
        similar_runs(client, "", run_id=stranger)


def test_a_near_duplicate_comes_first(client: VectorStore, runs: list[Any]) -> None:
    index_runs(client, runs)
    nodes = [f"n{i}" for i in range(12)]
    original = {"run_id": "odd-1", "tenant_id": "tenant-00", "workflow": "x", "ts": "2026-11-03"}
    twin = {**original, "run_id": "odd-2"}
    elsewhere = {**original, "run_id": "odd-3", "tenant_id": "tenant-01"}
    edges = _loop(12)
    near = [dict(e) for e in edges]
    near[0]["calls"] = int(near[0]["calls"]) + 1  # one more call on one edge
    index_runs(
        client,
        [
            (original, signature(nodes, edges)),
            (twin, signature(nodes, near)),
            (elsewhere, signature(nodes, edges)),  # identical, but another tenant's
        ],
    )
    hits = similar_runs(client, "tenant-00", run_id="odd-1", k=5)
    assert hits[0].run_id == "odd-2"
    assert hits[0].distance == pytest.approx(
        diagram_distance(signature(nodes, edges), signature(nodes, near))
    )
    assert "odd-3" not in {h.run_id for h in hits}
    by_signature = similar_runs(client, "tenant-00", signature=signature(nodes, edges), k=2)
    assert by_signature[0].run_id == "odd-1" and by_signature[0].distance == pytest.approx(
        0, abs=1e-8
    )
    by_vector = similar_runs(
        client, "tenant-01", vector=signature(nodes, edges).image.tolist(), k=3
    )
    assert by_vector[0].run_id == "odd-3" and not by_vector[0].exact


def test_reindexing_overwrites_and_bad_queries_are_refused(
    client: VectorStore, runs: list[Any]
) -> None:
    index_runs(client, runs[:10])
    index_runs(client, runs[:10])
    assert client.count() == 10
    with pytest.raises(ValueError, match="exactly one"):
        similar_runs(client, "tenant-00")
    with pytest.raises(ValueError, match="unknown vector"):
        similar_runs(client, "tenant-00", run_id=runs[0][0]["run_id"], using="pixels")
