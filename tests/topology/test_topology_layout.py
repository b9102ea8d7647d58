"""The cell layout of shape retrieval on Qdrant local mode (in memory): recall against the flat
collection, tenant filter in every cell, day replacement, idempotent re-index, re-layout."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from lakehouse.simulate.traces import perturbed_runs, simulate_workflow_events
from lakehouse.topology.retrieval import (
    CELL_POINTS,
    COLLECTION,
    TRAIN_AT,
    cell_name,
    centroids_name,
    index_runs,
    layout_info,
    point_id,
    relayout,
    remove_runs,
    similar_runs,
)
from lakehouse.topology.tda import TopologySignature, event_signature

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
def client() -> Iterator[QdrantClient]:
    c = QdrantClient(location=":memory:")
    yield c
    c.close()


def _cell_points(client: QdrantClient) -> dict[int, set[str]]:
    """The point ids of every cell of the default collection."""
    out: dict[int, set[str]] = {}
    for cell in range(layout_info(client).cells):
        records, _ = client.scroll(cell_name(COLLECTION, cell), limit=1 << 20)
        out[cell] = {str(r.id) for r in records}
    return out


def _assert_cells_match_record(client: QdrantClient) -> None:
    """Every point of the record is in exactly the cell its payload names, and nothing else is."""
    cells = _cell_points(client)
    records, _ = client.scroll(COLLECTION, limit=1 << 20, with_payload=["cell"])
    assert sum(len(ids) for ids in cells.values()) == len(records)
    for r in records:
        assert str(r.id) in cells[(r.payload or {})["cell"]]


def _recall(cell_hits: list[Any], flat_hits: list[Any]) -> float:
    """Tie-aware recall@10 of the cell answer against the flat answer (same exact distances)."""
    kth = flat_hits[-1].distance + 1e-9
    return sum(h.distance <= kth for h in cell_hits) / len(flat_hits)


def test_cells_recall_the_flat_answer_and_only_the_tenants_runs(
    client: QdrantClient, runs: list[Any]
) -> None:
    flat = "flat_copy"
    index_runs(client, runs, collection=flat, layout="flat")
    index_runs(client, runs, layout="cells", relayout_when_due=False)
    assert layout_info(client).layout == "flat"  # 3000 points: below TRAIN_AT, no cells yet
    info = relayout(client, cells=12)
    assert (info.layout, info.cells, info.trained_points) == ("cells", 12, N)
    assert layout_info(client) == info
    _assert_cells_match_record(client)
    centroids, _ = client.scroll(centroids_name(), limit=100, with_payload=True)
    assert len(centroids) == 12 and all(set(c.payload or {}) == {"cell"} for c in centroids)

    rng = np.random.default_rng(0)
    recalls: dict[int, list[float]] = {1: [], 4: []}
    for i in rng.choice(N, size=20, replace=False):
        event = runs[int(i)][0]
        tenant, run_id = event["tenant_id"], event["run_id"]
        want = similar_runs(client, tenant, run_id=run_id, k=10, collection=flat)
        for nprobe in recalls:
            got = similar_runs(client, tenant, run_id=run_id, k=10, nprobe=nprobe)
            assert len(got) == 10 and {h.tenant_id for h in got} == {tenant}
            assert run_id not in {h.run_id for h in got}
            recalls[nprobe].append(_recall(got, want))
    assert np.mean(recalls[4]) >= 0.9
    assert np.mean(recalls[4]) >= np.mean(recalls[1])


def test_every_cell_query_keeps_the_tenant_filter(client: QdrantClient, runs: list[Any]) -> None:
    index_runs(client, runs, layout="cells", relayout_when_due=False)
    relayout(client, cells=12)
    a_event, a_sig = next((e, s) for e, s in runs if e["tenant_id"] == "t-a")
    for tenant in TENANTS:  # all cells probed: every answer is still the tenant's own
        hits = similar_runs(client, tenant, signature=a_sig, k=200, nprobe=12)
        assert len(hits) == 200 and {h.tenant_id for h in hits} == {tenant}
        raw = similar_runs(client, tenant, vector=a_sig.image.tolist(), k=200, nprobe=12)
        assert {h.tenant_id for h in raw} == {tenant} and not any(h.exact for h in raw)
    assert similar_runs(client, "t-none", signature=a_sig, k=10, nprobe=12) == []
    with pytest.raises(KeyError, match="not indexed"):
        similar_runs(client, "t-b", run_id=a_event["run_id"])
    with pytest.raises(ValueError, match="tenant_id is required"):
        similar_runs(client, "", signature=a_sig)


def test_day_replacement_leaves_the_cells_and_reindex_is_idempotent(
    client: QdrantClient, runs: list[Any]
) -> None:
    index_runs(client, runs, layout="cells", relayout_when_due=False)
    relayout(client, cells=12)
    second = DAY + timedelta(days=1)
    on_second = [(e, s) for e, s in runs if e["ts"].startswith(second.isoformat())]
    assert 0 < len(on_second) < N
    day = models.Filter(
        must=[models.FieldCondition(key="day", match=models.MatchValue(value=second.isoformat()))]
    )
    assert remove_runs(client, day) == len(on_second)
    assert client.count(COLLECTION, exact=True).count == N - len(on_second)
    _assert_cells_match_record(client)
    gone = {e["run_id"] for e, _ in on_second}
    event, sig = on_second[0]
    hits = similar_runs(client, event["tenant_id"], signature=sig, k=100, nprobe=12)
    assert hits and not gone & {h.run_id for h in hits}

    # Back in: each point joins its nearest cell; indexing again changes nothing.
    index_runs(client, on_second, layout="cells")
    index_runs(client, on_second, layout="cells")
    assert client.count(COLLECTION, exact=True).count == N
    assert layout_info(client).trained_points == N  # not due: no re-layout
    _assert_cells_match_record(client)
    assert (
        similar_runs(client, event["tenant_id"], signature=sig, k=1, nprobe=12)[0].distance < 1e-6
    )
    assert len(similar_runs(client, event["tenant_id"], run_id=event["run_id"], k=5)) == 5

    # A run re-indexed with another shape moves to that shape's cell and leaves its old one.
    moved = runs[0][0]
    far = max(runs, key=lambda r: float(np.linalg.norm(r[1].image - runs[0][1].image)))[1]
    pid = point_id(moved["tenant_id"], moved["run_id"])
    (old,) = client.retrieve(COLLECTION, [pid], with_payload=["cell"])
    index_runs(client, [(moved, far)], layout="cells")
    (new,) = client.retrieve(COLLECTION, [pid], with_payload=["cell"])
    was, now = (old.payload or {})["cell"], (new.payload or {})["cell"]
    assert was != now and pid not in _cell_points(client)[was]
    _assert_cells_match_record(client)
    assert client.count(COLLECTION, exact=True).count == N


def test_relayout_when_outgrown_and_flat_layout_drops_cells(
    client: QdrantClient, runs: list[Any]
) -> None:
    index_runs(client, runs[:500], layout="cells", relayout_when_due=False)
    relayout(client, cells=4)
    index_runs(client, runs[500:2000], layout="cells")  # 2000 = 4x the training: not yet due
    assert layout_info(client).trained_points == 500
    index_runs(client, runs[2000:2100], layout="cells")  # 2100 > 4x 500: re-laid out
    info = layout_info(client)
    assert info.trained_points == 2100 and info.cells == round(2100 / CELL_POINTS)
    _assert_cells_match_record(client)
    made = {n.name for n in client.get_collections().collections if "__cell_" in n.name}
    assert made == {cell_name(COLLECTION, c) for c in range(info.cells)}

    index_runs(client, runs[:10], layout="flat")  # a flat writer would leave the cells stale
    assert layout_info(client).layout == "flat"
    assert [c.name for c in client.get_collections().collections] == [COLLECTION]
    tenant = runs[0][0]["tenant_id"]
    assert len(similar_runs(client, tenant, run_id=runs[0][0]["run_id"], k=5)) == 5


def test_local_mode_gets_cells_once_the_collection_reaches_train_at(
    client: QdrantClient, runs: list[Any]
) -> None:
    assert index_runs(client, runs) == N  # layout "auto" on a local-mode client
    assert layout_info(client).layout == "flat" and N < TRAIN_AT
    more = [(dict(e, run_id=f"{e['run_id']}-copy"), s) for e, s in runs[: TRAIN_AT - N]]
    index_runs(client, more)
    info = layout_info(client)
    assert (info.layout, info.trained_points) == ("cells", TRAIN_AT)
    assert info.cells == round(TRAIN_AT / CELL_POINTS)
    _assert_cells_match_record(client)
