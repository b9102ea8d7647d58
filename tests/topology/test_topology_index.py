"""The runs' index on the embedded engine at a few thousand runs: answers equal a brute-force
scan of the tenant's vectors re-ranked exactly, the tenant filter on every query, day
replacement and idempotent re-indexing, a re-indexed run found by its new shape."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import models

from lakehouse.simulate.traces import perturbed_runs, simulate_workflow_events
from lakehouse.topology.retrieval import (
    DEFAULT_SHORTLIST,
    SPEC,
    index_runs,
    remove_runs,
    similar_runs,
)
from lakehouse.topology.tda import (
    StoredDiagrams,
    TopologySignature,
    diagram_distance,
    event_signature,
)
from lakehouse.vectors import EdgeStore, VectorStore

DAY = date(2026, 11, 1)
TENANTS = ("t-a", "t-b")
N = 3000


@pytest.fixture(scope="module")
def runs() -> list[tuple[dict[str, Any], TopologySignature]]:
    """``N`` runs of two tenants over two days: 120 real LangGraph traces and perturbed copies."""
    base = list(simulate_workflow_events(DAY, 2, 60, seed=21, regime_change_at=1))
    events = base + list(perturbed_runs(base, N - len(base), seed=4))
    for i, e in enumerate(events):
        e["tenant_id"] = TENANTS[i % 2]
        e["ts"] = f"{DAY + timedelta(days=i % 3 // 2)}T12:00:00+00:00"  # one third on day two
    return [(e, event_signature(e)) for e in events]


@pytest.fixture
def index(tmp_path: Path) -> Iterator[VectorStore]:
    with EdgeStore(tmp_path / "vectors", SPEC) as store:
        yield store


def _brute_force(runs: list[Any], q: int, k: int) -> list[tuple[float, str]]:
    """The tenant's ``shortlist`` nearest ``image`` vectors by numpy, re-ranked exactly."""
    event, sig = runs[q]
    own = [(e, s) for e, s in runs if e["tenant_id"] == event["tenant_id"] and e is not event]
    d = np.linalg.norm(np.array([s.image for _, s in own]) - sig.image, axis=1)
    picked = np.argsort(d, kind="stable")[:DEFAULT_SHORTLIST]
    target = StoredDiagrams(sig.capped(0), sig.capped(1))
    exact = [
        (diagram_distance(target, StoredDiagrams(own[i][1].capped(0), own[i][1].capped(1))),
         own[i][0]["run_id"])
        for i in picked
    ]  # fmt: skip
    return sorted(exact)[:k]


def test_answers_equal_a_brute_force_scan_reranked(index: VectorStore, runs: list[Any]) -> None:
    assert index_runs(index, runs) == N
    index.optimize()
    rng = np.random.default_rng(0)
    for q in rng.choice(N, size=10, replace=False):
        event = runs[int(q)][0]
        got = similar_runs(index, event["tenant_id"], run_id=event["run_id"], k=10)
        want = _brute_force(runs, int(q), 10)
        assert [h.distance for h in got] == pytest.approx([d for d, _ in want], abs=1e-9)
        assert {h.tenant_id for h in got} == {event["tenant_id"]}


def test_every_query_keeps_the_tenant_filter(index: VectorStore, runs: list[Any]) -> None:
    index_runs(index, runs)
    a_event, a_sig = next((e, s) for e, s in runs if e["tenant_id"] == "t-a")
    for tenant in TENANTS:
        hits = similar_runs(index, tenant, signature=a_sig, k=200)
        assert len(hits) == 200 and {h.tenant_id for h in hits} == {tenant}
        raw = similar_runs(index, tenant, vector=a_sig.image.tolist(), k=200)
        assert {h.tenant_id for h in raw} == {tenant} and not any(h.exact for h in raw)
    assert similar_runs(index, "t-none", signature=a_sig, k=10) == []
    with pytest.raises(KeyError, match="not indexed"):
        similar_runs(index, "t-b", run_id=a_event["run_id"])
    with pytest.raises(ValueError, match="tenant_id is required"):
        similar_runs(index, "", signature=a_sig)


def test_day_replacement_reindex_and_a_moved_run(index: VectorStore, runs: list[Any]) -> None:
    index_runs(index, runs)
    index.optimize()
    second = DAY + timedelta(days=1)
    on_second = [(e, s) for e, s in runs if e["ts"].startswith(second.isoformat())]
    assert 0 < len(on_second) < N
    day = models.Filter(
        must=[models.FieldCondition(key="day", match=models.MatchValue(value=second.isoformat()))]
    )
    assert remove_runs(index, day) == len(on_second)
    assert index.count() == N - len(on_second)
    gone = {e["run_id"] for e, _ in on_second}
    event, sig = on_second[0]
    hits = similar_runs(index, event["tenant_id"], signature=sig, k=100)
    assert hits and not gone & {h.run_id for h in hits}

    index_runs(index, on_second)
    index_runs(index, on_second)  # again: overwrites, adds nothing
    assert index.count() == N
    assert similar_runs(index, event["tenant_id"], signature=sig, k=1)[0].distance < 1e-6

    # A run re-indexed with another shape is found by the new shape, not the old one.
    moved, old = runs[0]
    far = max(runs, key=lambda r: float(np.linalg.norm(r[1].image - old.image)))[1]
    index_runs(index, [(moved, far)])
    assert index.count() == N
    tenant = moved["tenant_id"]
    by_new = similar_runs(index, tenant, vector=far.image.tolist(), k=3)
    assert moved["run_id"] in {h.run_id for h in by_new}
    by_old = similar_runs(index, tenant, vector=old.image.tolist(), k=1)
    assert by_old[0].run_id != moved["run_id"] or by_old[0].vector_distance > 1e-6
