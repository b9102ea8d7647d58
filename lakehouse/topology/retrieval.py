"""Shape-aware retrieval of workflow runs: a vector shortlist, exact re-ranking by diagram distance.

Each run is one point (id: a UUID5 of ``tenant_id/run_id``) of the collection
``aura_topology_runs`` on the vector engine (:mod:`lakehouse.vectors`: a Qdrant Edge shard in
``AURA_HOME/vectors`` by default, a Qdrant server with ``AURA_QDRANT_URL``), with two named
vectors, ``image`` (persistence images of H0 and H1) and ``betti`` (Betti curves), Euclidean,
and a payload holding ``tenant_id`` (the ``is_tenant`` index), ``run_id``, ``workflow``, ``ts``,
``day`` (a keyword index, so a day's points can be replaced) and the capped diagrams.
:func:`similar_runs` takes the tenant-filtered HNSW shortlist, then orders it by
:func:`~lakehouse.topology.tda.diagram_distance` on the stored diagrams, so the answer is exact
within the shortlist.

Invariant: every read of runs filters on ``tenant_id`` or fetches point ids that encode the
tenant and re-checks the payload; no function here searches across tenants, and an empty tenant
id is refused. (:func:`remove_runs` takes any filter and answers only a count.)

The HNSW graph is built by ``store.optimize()``, which the ``topology_index`` asset and
:func:`~lakehouse.topology.index.rebuild_index` run after indexing; points indexed since are
searched exactly (the same answers, slower). ``python -m bench topology`` measures retrieval
against an exact scan (latency ratio, recall@10).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakehouse.settings import Settings
from lakehouse.topology.tda import (
    CURVE_RES,
    IMAGE_RES,
    HasDiagrams,
    StoredDiagrams,
    TopologySignature,
    diagram_distance,
)
from lakehouse.vectors import (
    DEFAULT_LOCK_TIMEOUT_S,
    CollectionSpec,
    Record,
    VectorStore,
    open_store,
)

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

    Index = VectorStore | QdrantClient
    """The runs' collection, or a qdrant-client holding it (see :func:`as_index`)."""

COLLECTION = "aura_topology_runs"
VECTORS = {"image": 2 * IMAGE_RES * IMAGE_RES, "betti": 2 * CURVE_RES}
DEFAULT_SHORTLIST = 50
_FIELDS = ["tenant_id", "run_id", "workflow", "dgm0", "dgm1"]
"""The payload fields a query reads (``ts`` and ``day`` are for maintenance, not answers)."""
_NAMESPACE = uuid.UUID("5b0e4c64-4f0c-4b8e-9a51-7c1f0f6a2d10")


def index_spec(collection: str = COLLECTION) -> CollectionSpec:
    """The design of the runs' collection (another name for benchmarks and tests)."""
    return CollectionSpec(
        collection,
        {name: (size, "euclid") for name, size in VECTORS.items()},
        tenant_field="tenant_id",
        indexes={"day": "keyword"},
    )


SPEC = index_spec()


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
    """The point id of a run (stable, so re-indexing a run overwrites it)."""
    return str(uuid.uuid5(_NAMESPACE, f"{tenant_id}/{run_id}"))


def open_index(settings: Settings, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S) -> VectorStore:
    """The runs' collection on the configured engine (close it when done: it holds a lock)."""
    return open_store(settings, SPEC, lock_timeout=lock_timeout)


def as_index(target: Index) -> VectorStore:
    """``target`` if it is a :class:`VectorStore`; a ``QdrantClient`` as the runs' collection on
    it (the caller keeps and closes its client: the memory tier's shape search still reads the
    index through its own client)."""
    if isinstance(target, VectorStore):
        return target
    from lakehouse.vectors.server import ServerStore

    return ServerStore(target, SPEC, owns_client=False, where="the given Qdrant client")


def _tenant(tenant_id: str) -> str:
    if not isinstance(tenant_id, str) or not tenant_id:
        raise ValueError("tenant_id is required: retrieval never searches across tenants")
    return tenant_id


def _record(event: Mapping[str, Any], sig: TopologySignature) -> Record:
    ts = event["ts"]
    stamp = ts if isinstance(ts, str) else ts.isoformat()
    return Record(
        id=point_id(event["tenant_id"], event["run_id"]),
        vectors={"image": sig.image.tolist(), "betti": sig.betti_curve.tolist()},
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


def index_runs(
    store: Index,
    runs: Iterable[tuple[Mapping[str, Any], TopologySignature]],
    *,
    batch: int = 512,
) -> int:
    """Upsert ``(event, signature)`` pairs (events need ``run_id, tenant_id, workflow, ts``)."""
    index = as_index(store)
    points: list[Record] = []
    count = 0
    for event, sig in runs:
        points.append(_record(event, sig))
        if len(points) >= batch:
            index.upsert(points)
            count += len(points)
            points = []
    index.upsert(points)
    return count + len(points)


def remove_runs(store: Index, flt: Any) -> int:
    """Delete the points matching ``flt`` (a ``qdrant_client.models.Filter``); how many."""
    return as_index(store).delete_where(flt)


def stored_diagrams(
    store: Index, tenant_id: str, run_ids: Iterable[str]
) -> dict[str, StoredDiagrams]:
    """The indexed diagrams of the tenant's runs (runs not indexed are left out)."""
    _tenant(tenant_id)
    wanted = sorted(set(run_ids))
    records = as_index(store).retrieve(
        [point_id(tenant_id, r) for r in wanted], with_payload=_FIELDS
    )
    # The id already encodes the tenant; the payload is checked again.
    return {
        str(r.payload["run_id"]): StoredDiagrams(r.payload["dgm0"], r.payload["dgm1"])
        for r in records
        if r.payload.get("tenant_id") == tenant_id
    }


def _stored(store: VectorStore, tenant_id: str, run_id: str, using: str) -> Record:
    records = store.retrieve(
        [point_id(tenant_id, run_id)], with_payload=_FIELDS, with_vectors=[using]
    )
    found = [r for r in records if r.payload.get("tenant_id") == tenant_id]
    if not found:
        raise KeyError(f"run {run_id!r} of tenant {tenant_id!r} is not indexed; index it first")
    return found[0]


def similar_runs(
    store: Index,
    tenant_id: str,
    *,
    run_id: str | None = None,
    signature: TopologySignature | None = None,
    vector: Sequence[float] | None = None,
    k: int = 10,
    using: str = "image",
    shortlist: int = DEFAULT_SHORTLIST,
) -> list[SimilarRun]:
    """The ``k`` runs of ``tenant_id`` most similar in shape to a run, a signature or a vector.

    Give exactly one of ``run_id`` (an indexed run of the tenant; it is left out of the answer),
    ``signature`` or ``vector`` (a raw ``using`` vector: no diagram, so the answer is the
    vector order and ``exact`` is false).
    """
    _tenant(tenant_id)
    index = as_index(store)
    if sum(x is not None for x in (run_id, signature, vector)) != 1:
        raise ValueError("give exactly one of run_id, signature or vector")
    if using not in VECTORS:
        raise ValueError(f"unknown vector {using!r}; use one of {sorted(VECTORS)}")
    query: list[float]
    target: HasDiagrams | None
    if run_id is not None:
        record = _stored(index, tenant_id, run_id, using)
        query = record.vectors[using]
        target = StoredDiagrams(record.payload["dgm0"], record.payload["dgm1"])
    elif signature is not None:
        query = (signature.image if using == "image" else signature.betti_curve).tolist()
        target = signature
    else:
        query, target = list(vector or ()), None
    limit = max(k, shortlist) + (1 if run_id is not None else 0)
    hits = index.search(query, tenant=tenant_id, using=using, limit=limit, with_payload=_FIELDS)
    out: list[SimilarRun] = []
    for hit in hits:
        p = hit.payload
        if p.get("tenant_id") != tenant_id:  # defence in depth: the filter already did this
            continue
        if run_id is not None and p["run_id"] == run_id:
            continue
        distance = (
            diagram_distance(target, StoredDiagrams(p["dgm0"], p["dgm1"]))
            if target is not None
            else hit.score
        )
        out.append(
            SimilarRun(
                run_id=p["run_id"],
                tenant_id=p["tenant_id"],
                workflow=p["workflow"],
                distance=distance,
                vector_distance=hit.score,
                exact=target is not None,
            )
        )
    out.sort(key=lambda r: (r.distance, r.vector_distance, r.run_id))
    return out[:k]
