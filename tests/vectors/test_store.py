"""The vector store contract on every engine: Qdrant Edge (the embedded default), qdrant-client
on a Qdrant server (when ``AURA_QDRANT_URL`` is set) and qdrant-client's local mode (the same
client code as the server path, without the server's HNSW, payload indexes or replication)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from lakehouse.exceptions import ValidationError, VectorStoreError
from lakehouse.settings import Settings
from lakehouse.vectors import CollectionSpec, EdgeStore, Record, VectorStore, server_store
from lakehouse.vectors.server import ServerStore

QDRANT_URL = os.environ.get("AURA_QDRANT_URL", "")
DIM = 8


def _spec() -> CollectionSpec:
    # Unique per test, so runs against a shared server never meet.
    return CollectionSpec(
        f"test_vectors_{uuid.uuid4().hex[:12]}",
        {"dense": (DIM, "cosine"), "shape": (4, "euclid")},
        indexes={"day": "keyword", "n": "integer"},
    )


@pytest.fixture(params=["edge", "server", "client-local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    spec = _spec()
    made: VectorStore
    if request.param == "edge":
        made = EdgeStore(tmp_path / "vectors", spec)
    elif request.param == "server":
        if not QDRANT_URL:
            pytest.skip("AURA_QDRANT_URL is unset: no Qdrant server to test the server path on")
        made = server_store(Settings.from_env(home=str(tmp_path)), spec)
    else:
        made = ServerStore(
            QdrantClient(location=":memory:"), spec, where="qdrant-client local mode"
        )
    try:
        yield made
    finally:
        made.drop()


def _points(n: int, tenant: str, seed: int = 0, start: int = 0) -> list[Record]:
    rng = np.random.default_rng(seed)
    return [
        Record(
            id=str(uuid.UUID(int=start + i + 1)),
            vectors={"dense": rng.normal(size=DIM).tolist(), "shape": rng.normal(size=4).tolist()},
            payload={"tenant_id": tenant, "n": start + i, "day": f"2026-11-{1 + i % 3:02d}"},
        )
        for i in range(n)
    ]


def test_round_trip(store: VectorStore) -> None:
    points = _points(20, "t1")
    store.upsert(points)
    assert store.created and store.count() == 20
    got = store.retrieve([points[3].id, str(uuid.uuid4())], with_vectors=True)
    assert [r.id for r in got] == [points[3].id]
    assert got[0].payload == points[3].payload
    assert np.allclose(got[0].vectors["shape"], points[3].vectors["shape"], atol=1e-6)
    hits = store.search(points[5].vectors["shape"], tenant="t1", using="shape", limit=3)
    assert hits[0].id == points[5].id and hits[0].score == pytest.approx(0.0, abs=1e-5)
    assert [h.score for h in hits] == sorted(h.score for h in hits)  # euclid: nearest first
    cosine = store.search(points[7].vectors["dense"], tenant="t1", using="dense", limit=3)
    assert cosine[0].id == points[7].id and cosine[0].score == pytest.approx(1.0, abs=1e-5)
    store.upsert([Record(points[7].id, points[7].payload | {"n": 99}, points[7].vectors)])
    assert store.count() == 20
    assert store.retrieve([points[7].id])[0].payload["n"] == 99


def test_every_search_filters_on_the_tenant(store: VectorStore) -> None:
    mine, theirs = _points(10, "t1"), _points(10, "t2", seed=1, start=100)
    store.upsert(mine + theirs)
    query = theirs[0].vectors["dense"]
    hits = store.search(query, tenant="t1", using="dense", limit=20)
    assert {h.id for h in hits} == {p.id for p in mine}
    also = models.Filter(must=[models.FieldCondition(key="n", range=models.Range(gte=5))])
    hits = store.search(query, tenant="t1", using="dense", limit=20, filter=also)
    assert {h.payload["n"] for h in hits} == {5, 6, 7, 8, 9}
    batch = store.search_batch(
        [mine[0].vectors["dense"], theirs[0].vectors["dense"]], tenant="t2", using="dense", limit=1
    )
    single = store.search(mine[0].vectors["dense"], tenant="t2", using="dense", limit=1)
    assert [b[0].id for b in batch] == [single[0].id, theirs[0].id]
    assert single[0].payload["tenant_id"] == "t2"
    with pytest.raises(ValueError, match="tenant is required"):
        store.search(query, tenant="", using="dense")


def test_count_scroll_and_deletes(store: VectorStore) -> None:
    points = _points(30, "t1") + _points(5, "t2", start=200)
    store.upsert(points)
    day1 = models.Filter(
        must=[models.FieldCondition(key="day", match=models.MatchValue(value="2026-11-01"))]
    )
    assert store.count(day1) == 12
    seen = list(store.scroll(page=7, with_payload=["n"]))
    assert sorted(r.payload["n"] for r in seen) == sorted(p.payload["n"] for p in points)
    assert all(set(r.payload) == {"n"} and r.vectors == {} for r in seen)
    store.delete([points[0].id, points[1].id, str(uuid.uuid4())])
    assert store.count() == 33
    assert store.delete_where(day1) == 11  # 12 on day 1, one of them deleted by id
    assert store.count(day1) == 0 and store.count() == 22
    nothing = models.Filter(
        must=[models.FieldCondition(key="tenant_id", match=models.MatchValue(value="nobody"))]
    )
    assert store.delete_where(nothing) == 0


def test_points_are_checked(store: VectorStore) -> None:
    point = _points(1, "t1")[0]
    with pytest.raises(ValidationError, match="tenant_id"):
        store.upsert([Record(point.id, {"n": 1}, point.vectors)])
    with pytest.raises(ValidationError, match="expects"):
        store.upsert([Record(point.id, point.payload, {"dense": [1.0, 2.0]})])
    with pytest.raises(VectorStoreError, match="no vector 'nope'"):
        store.search([1.0] * DIM, tenant="t1", using="nope")
    assert store.count() == 0


def test_a_closed_store_says_so(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path, _spec())
    store.close()
    store.close()  # idempotent
    with pytest.raises(VectorStoreError, match="closed; open it again"):
        store.count()


def test_a_malformed_id_is_a_validation_error(tmp_path: Path) -> None:
    with EdgeStore(tmp_path, _spec()) as store:
        point = _points(1, "t1")[0]
        for bad in ("not-a-uuid", -1, True):
            with pytest.raises(ValidationError, match="neither a UUID string nor"):
                store.upsert([Record(bad, point.payload, point.vectors)])
        with pytest.raises(ValidationError, match="UUID strings or unsigned integers"):
            store.retrieve(["not-a-uuid"])
        store.upsert([Record(7, point.payload, point.vectors)])
        assert [r.id for r in store.retrieve([7])] == [7]
