"""Shape-aware retrieval of workflow runs: Qdrant shortlist, exact re-ranking by diagram distance.

Each run is one Qdrant point (id: a UUID5 of ``tenant_id/run_id``) with two named vectors,
``image`` (persistence images of H0 and H1) and ``betti`` (Betti curves), Euclidean distance,
and a payload holding ``tenant_id``, ``run_id``, ``workflow``, ``ts``, ``day`` (the UTC date of
``ts``, so a day's points can be replaced) and the capped diagrams.
Invariant: every read filters on ``tenant_id`` (a keyword index marked ``is_tenant``); no
function of this module can search across tenants, and an empty tenant id is refused.

:func:`similar_runs` asks Qdrant for a shortlist of ``shortlist`` points by vector, then orders
it by :func:`~lakehouse.topology.tda.diagram_distance` (bottleneck H0 + H1) on the stored
diagrams, so the answer is exact within the shortlist.

**Cost.** The re-rank is ``shortlist`` bottleneck distances (about 7 ms for 50 on a loaded 2-core
machine) whatever the collection's size; the shortlist is Qdrant's part. A Qdrant server answers
it from its HNSW graph and the tenant index. Qdrant local mode (``QdrantClient(path=...)`` or
``":memory:"``) scans every point of the collection with numpy and evaluates the tenant filter in
Python point by point, so a query costs time linear in the collection (``bench topology``
measured about 0.25 s at 20,000 points and 2.5 s at 100,000 under load, of which the filter is
most): at that size local mode is only a few times faster than an exact scan, and a server is
needed for interactive answers. A local path also commits each upserted point to SQLite on its
own (about 8 ms a point here), so indexing a large day is slow there.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qdrant_client import QdrantClient, models

from lakehouse.topology.tda import (
    CURVE_RES,
    IMAGE_RES,
    HasDiagrams,
    StoredDiagrams,
    TopologySignature,
    diagram_distance,
)

COLLECTION = "aura_topology_runs"
VECTORS = {"image": 2 * IMAGE_RES * IMAGE_RES, "betti": 2 * CURVE_RES}
DEFAULT_SHORTLIST = 50
_FIELDS = ["tenant_id", "run_id", "workflow", "dgm0", "dgm1"]
"""The payload fields a query reads (``ts`` and ``day`` are for maintenance, not answers)."""
_NAMESPACE = uuid.UUID("5b0e4c64-4f0c-4b8e-9a51-7c1f0f6a2d10")


@dataclass(frozen=True)
class SimilarRun:
    """One answer of :func:`similar_runs`; ``distance`` is exact when ``exact`` is true."""

    run_id: str
    tenant_id: str
    workflow: str
    distance: float
    vector_distance: float
    exact: bool


def point_id(tenant_id: str, run_id: str) -> str:
    """The Qdrant point id of a run (stable, so re-indexing a run overwrites it)."""
    return str(uuid.uuid5(_NAMESPACE, f"{tenant_id}/{run_id}"))


def _tenant(tenant_id: str) -> models.Filter:
    if not isinstance(tenant_id, str) or not tenant_id:
        raise ValueError("tenant_id is required: retrieval never searches across tenants")
    return models.Filter(
        must=[models.FieldCondition(key="tenant_id", match=models.MatchValue(value=tenant_id))]
    )


def ensure_collection(client: QdrantClient, collection: str = COLLECTION) -> None:
    """Create the collection and its tenant index unless they exist."""
    if client.collection_exists(collection):
        return
    client.create_collection(
        collection,
        vectors_config={
            name: models.VectorParams(size=size, distance=models.Distance.EUCLID)
            for name, size in VECTORS.items()
        },
    )
    with warnings.catch_warnings():
        # Local mode warns that payload indexes have no effect there; a server uses the index.
        warnings.filterwarnings("ignore", "Payload indexes have no effect", UserWarning)
        client.create_payload_index(
            collection,
            "tenant_id",
            field_schema=models.KeywordIndexParams(
                type=models.KeywordIndexType.KEYWORD, is_tenant=True
            ),
        )


def index_runs(
    client: QdrantClient,
    runs: Iterable[tuple[Mapping[str, Any], TopologySignature]],
    *,
    collection: str = COLLECTION,
    batch: int = 512,
) -> int:
    """Upsert ``(event, signature)`` pairs (events need ``run_id, tenant_id, workflow, ts``)."""
    ensure_collection(client, collection)
    points: list[models.PointStruct] = []
    count = 0
    for event, sig in runs:
        ts = event["ts"]
        stamp = ts if isinstance(ts, str) else ts.isoformat()
        points.append(
            models.PointStruct(
                id=point_id(event["tenant_id"], event["run_id"]),
                vector={"image": sig.image.tolist(), "betti": sig.betti_curve.tolist()},
                payload={
                    "tenant_id": event["tenant_id"],
                    "run_id": event["run_id"],
                    "workflow": event["workflow"],
                    "ts": stamp,
                    "day": stamp[:10],
                    "dgm0": sig.capped(0).tolist(),
                    "dgm1": sig.capped(1).tolist(),
                },
            )
        )
        if len(points) >= batch:
            client.upsert(collection, points=points)
            count += len(points)
            points = []
    if points:
        client.upsert(collection, points=points)
        count += len(points)
    return count


def _stored(
    client: QdrantClient, collection: str, tenant_id: str, run_id: str, using: str
) -> models.Record:
    _tenant(tenant_id)
    records = client.retrieve(
        collection, [point_id(tenant_id, run_id)], with_payload=_FIELDS, with_vectors=[using]
    )
    # The id already encodes the tenant; the filter below re-checks it from the payload.
    found = [r for r in records if (r.payload or {}).get("tenant_id") == tenant_id]
    if not found:
        raise KeyError(f"run {run_id!r} of tenant {tenant_id!r} is not indexed; index it first")
    return found[0]


def similar_runs(
    client: QdrantClient,
    tenant_id: str,
    *,
    run_id: str | None = None,
    signature: TopologySignature | None = None,
    vector: Sequence[float] | None = None,
    k: int = 10,
    using: str = "image",
    shortlist: int = DEFAULT_SHORTLIST,
    collection: str = COLLECTION,
) -> list[SimilarRun]:
    """The ``k`` runs of ``tenant_id`` most similar in shape to a run, a signature or a vector.

    Give exactly one of ``run_id`` (an indexed run of the tenant; it is left out of the answer),
    ``signature`` or ``vector`` (a raw ``using`` vector: no diagram, so the answer is the
    vector order and ``exact`` is false).
    """
    flt = _tenant(tenant_id)
    if sum(x is not None for x in (run_id, signature, vector)) != 1:
        raise ValueError("give exactly one of run_id, signature or vector")
    if using not in VECTORS:
        raise ValueError(f"unknown vector {using!r}; use one of {sorted(VECTORS)}")
    query: Any
    if run_id is not None:
        record = _stored(client, collection, tenant_id, run_id, using)
        payload = record.payload or {}
        query = (record.vector or {})[using]  # type: ignore[index,call-overload]
        target: HasDiagrams | None = StoredDiagrams(payload["dgm0"], payload["dgm1"])
    elif signature is not None:
        query = (signature.image if using == "image" else signature.betti_curve).tolist()
        target = signature
    else:
        query, target = list(vector or ()), None
    limit = max(k, shortlist) + (1 if run_id is not None else 0)
    hits = client.query_points(
        collection, query=query, using=using, query_filter=flt, limit=limit, with_payload=_FIELDS
    ).points
    out: list[SimilarRun] = []
    for hit in hits:
        p = hit.payload or {}
        if p.get("tenant_id") != tenant_id:  # defence in depth: the filter already did this
            continue
        if run_id is not None and p["run_id"] == run_id:
            continue
        exact = target is not None
        distance = (
            diagram_distance(target, StoredDiagrams(p["dgm0"], p["dgm1"]))
            if target is not None
            else float(hit.score)
        )
        out.append(
            SimilarRun(
                run_id=p["run_id"],
                tenant_id=p["tenant_id"],
                workflow=p["workflow"],
                distance=distance,
                vector_distance=float(hit.score),
                exact=exact,
            )
        )
    out.sort(key=lambda r: (r.distance, r.vector_distance, r.run_id))
    return out[:k]
