"""Shape-aware retrieval of workflow runs: Qdrant shortlist, exact re-ranking by diagram distance.

Each run is one Qdrant point (id: a UUID5 of ``tenant_id/run_id``) of the collection of record
``aura_topology_runs``, with two named vectors, ``image`` (persistence images of H0 and H1) and
``betti`` (Betti curves), and a payload holding ``tenant_id``, ``run_id``, ``workflow``, ``ts``,
``day`` (so a day's points can be replaced), the capped diagrams and, in the cell layout,
``cell``. :func:`similar_runs` takes a shortlist by vector, then orders it by
:func:`~lakehouse.topology.tda.diagram_distance` on the stored diagrams, so the answer is exact
within the shortlist.

Invariant: every read of runs filters on ``tenant_id`` (a keyword index marked ``is_tenant``) or
fetches point ids that encode the tenant and re-checks the payload; no function here searches
across tenants, and an empty tenant id is refused. (:func:`remove_runs` and :func:`relayout`
read every tenant's points but answer only counts.)

Layouts, because Qdrant's local mode has no index and scans every point: ``flat`` is one
tenant-filtered query of the collection of record (a Qdrant server answers it from HNSW);
``cells`` is an inverted-file layout for local mode: seeded k-means centroids of the ``image``
vectors in ``<collection>__centroids`` and each run in the cell of its nearest centroid
(``<collection>__cell_NNNN``); a query probes the nearest ``nprobe`` cells with the tenant
filter and fetches the shortlisted diagrams from the record by id. ``layout="auto"`` picks
``cells`` for a local client and ``flat`` for a server; ``betti`` queries are always flat. Cells
exist once the collection reaches :data:`TRAIN_AT` points and are re-laid out when it outgrows
them (:data:`GROWTH`); a query during a re-layout can miss points. ``python -m bench topology``
measures the layouts against an exact scan (latency, recall@10).
"""

from __future__ import annotations

import uuid
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
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
CELL_VECTOR = "image"
"""The vector the cell layout partitions (the default ``using``)."""
CELL_POINTS = 200
"""Points per cell a (re-)layout aims at."""
NPROBE = 6
"""Cells a query of the cell layout probes (1.2 % of 500 cells; recall at 100,000 diagrams was the
same from 2 to 12, so 6 keeps a margin for traffic less clustered than the bench's)."""
TRAIN_AT = 5000
"""Points from which the cell layout has cells (below it, local-mode queries are flat)."""
GROWTH = 4.0
"""Re-layout when the collection holds more than this many times its training points."""
Layout = Literal["auto", "flat", "cells"]
_FIELDS = ["tenant_id", "run_id", "workflow", "dgm0", "dgm1"]
"""The payload fields a query reads (``ts`` and ``day`` are for maintenance, not answers)."""
_NAMESPACE = uuid.UUID("5b0e4c64-4f0c-4b8e-9a51-7c1f0f6a2d10")
_PAGE = 10_000


@dataclass(frozen=True)
class SimilarRun:
    """One answer of :func:`similar_runs`; ``distance`` is exact when ``exact`` is true."""

    run_id: str
    tenant_id: str
    workflow: str
    distance: float
    vector_distance: float
    exact: bool


@dataclass(frozen=True)
class IndexLayout:
    """How a collection is laid out: ``cells`` is 0 when queries are flat."""

    layout: str
    cells: int
    trained_points: int


def point_id(tenant_id: str, run_id: str) -> str:
    """The Qdrant point id of a run (stable, so re-indexing a run overwrites it)."""
    return str(uuid.uuid5(_NAMESPACE, f"{tenant_id}/{run_id}"))


def centroids_name(collection: str = COLLECTION) -> str:
    """The collection of the cell layout's centroids."""
    return f"{collection}__centroids"


def cell_name(collection: str, cell: int) -> str:
    """The collection of one cell of the layout."""
    return f"{collection}__cell_{cell:04d}"


def _tenant(tenant_id: str) -> models.Filter:
    if not isinstance(tenant_id, str) or not tenant_id:
        raise ValueError("tenant_id is required: retrieval never searches across tenants")
    return models.Filter(
        must=[models.FieldCondition(key="tenant_id", match=models.MatchValue(value=tenant_id))]
    )


def _is_local(client: QdrantClient) -> bool:
    options = client.init_options
    return options.get("location") == ":memory:" or options.get("path") is not None


def _cells_wanted(client: QdrantClient, layout: Layout) -> bool:
    if layout not in ("auto", "flat", "cells"):
        raise ValueError(f"unknown layout {layout!r}; use 'auto', 'flat' or 'cells'")
    return layout == "cells" or (layout == "auto" and _is_local(client))


def _create(
    client: QdrantClient,
    collection: str,
    vectors: Mapping[str, int],
    tenant_index: bool = True,
    metadata: dict[str, Any] | None = None,
) -> None:
    client.create_collection(
        collection,
        vectors_config={
            name: models.VectorParams(size=size, distance=models.Distance.EUCLID)
            for name, size in vectors.items()
        },
        metadata=metadata,
    )
    if not tenant_index:
        return
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


def ensure_collection(client: QdrantClient, collection: str = COLLECTION) -> None:
    """Create the collection of record and its tenant index unless they exist."""
    if not client.collection_exists(collection):
        _create(client, collection, VECTORS)


def layout_info(client: QdrantClient, collection: str = COLLECTION) -> IndexLayout:
    """The collection's cell layout (``flat`` with no cells when it has none)."""
    name = centroids_name(collection)
    if not client.collection_exists(name):
        return IndexLayout("flat", 0, 0)
    meta = client.get_collection(name).config.metadata or {}
    return IndexLayout("cells", int(meta.get("cells", 0)), int(meta.get("trained_points", 0)))


def _cell_collections(client: QdrantClient, collection: str) -> list[str]:
    prefix = f"{collection}__cell_"
    return [c.name for c in client.get_collections().collections if c.name.startswith(prefix)]


def drop_cells(client: QdrantClient, collection: str = COLLECTION) -> None:
    """Remove the cell layout (centroids and cells); the collection of record stays."""
    if client.collection_exists(centroids_name(collection)):
        client.delete_collection(centroids_name(collection))
    for name in _cell_collections(client, collection):
        client.delete_collection(name)


def drop_index(client: QdrantClient, collection: str = COLLECTION) -> None:
    """Remove the collection of record and its cell layout."""
    drop_cells(client, collection)
    if client.collection_exists(collection):
        client.delete_collection(collection)


def _named(vector: Any, name: str) -> list[float]:
    """One named vector of a point or record (Qdrant types the field as a wide union)."""
    return list(vector[name])


def _centroids(client: QdrantClient, collection: str) -> np.ndarray | None:
    name = centroids_name(collection)
    if not client.collection_exists(name):
        return None
    records, _ = client.scroll(name, limit=1 << 30, with_vectors=[CELL_VECTOR])
    records.sort(key=lambda r: int(r.id))
    return np.array([_named(r.vector, CELL_VECTOR) for r in records], dtype=np.float64)


def _nearest(centroids: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    d = (vectors**2).sum(1)[:, None] - 2 * vectors @ centroids.T + (centroids**2).sum(1)[None, :]
    return np.asarray(d.argmin(axis=1))


def _cell_point(point_id_: Any, vector: Sequence[float], payload: Mapping[str, Any]) -> Any:
    return models.PointStruct(
        id=point_id_,
        vector={CELL_VECTOR: list(vector)},
        payload={"tenant_id": payload["tenant_id"], "run_id": payload["run_id"]},
    )


def _upsert(
    client: QdrantClient,
    collection: str,
    points: list[models.PointStruct],
    centroids: np.ndarray | None,
) -> None:
    if centroids is None:
        client.upsert(collection, points=points)
        return
    vectors = np.array([_named(p.vector, CELL_VECTOR) for p in points])
    cells = _nearest(centroids, vectors)
    old = client.retrieve(collection, [p.id for p in points], with_payload=["cell"])
    previous = {r.id: (r.payload or {}).get("cell") for r in old}
    leaving: dict[int, list[Any]] = defaultdict(list)
    joining: dict[int, list[Any]] = defaultdict(list)
    for point, cell in zip(points, cells, strict=True):
        payload = point.payload or {}
        payload["cell"] = int(cell)
        point.payload = payload
        was = previous.get(point.id)
        if was is not None and was != int(cell):
            leaving[int(was)].append(point.id)
        joining[int(cell)].append(_cell_point(point.id, _named(point.vector, CELL_VECTOR), payload))
    for cell, ids in leaving.items():
        if client.collection_exists(cell_name(collection, cell)):
            client.delete(
                cell_name(collection, cell), points_selector=models.PointIdsList(points=ids)
            )
    client.upsert(collection, points=points)
    for cell, cell_points in joining.items():
        client.upsert(cell_name(collection, cell), points=cell_points)


def index_runs(
    client: QdrantClient,
    runs: Iterable[tuple[Mapping[str, Any], TopologySignature]],
    *,
    collection: str = COLLECTION,
    batch: int = 512,
    layout: Layout = "auto",
    relayout_when_due: bool = True,
) -> int:
    """Upsert ``(event, signature)`` pairs (events need ``run_id, tenant_id, workflow, ts``).

    In the cell layout each point also joins the cell of its nearest centroid, and the layout is
    retrained afterwards when due (see the module docstring) unless ``relayout_when_due`` is
    false. The flat layout drops any cells.
    """
    ensure_collection(client, collection)
    cells = _cells_wanted(client, layout)
    if not cells:
        drop_cells(client, collection)
    centroids = _centroids(client, collection) if cells else None
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
            _upsert(client, collection, points, centroids)
            count += len(points)
            points = []
    if points:
        _upsert(client, collection, points, centroids)
        count += len(points)
    if cells and relayout_when_due and _relayout_due(client, collection):
        relayout(client, collection)
    return count


def _relayout_due(client: QdrantClient, collection: str) -> bool:
    points = client.count(collection, exact=True).count
    info = layout_info(client, collection)
    if info.layout == "flat":
        return points >= TRAIN_AT
    return points > GROWTH * info.trained_points


def _scroll(client: QdrantClient, collection: str, **kwargs: Any) -> Iterator[models.Record]:
    offset = None
    while True:
        records, offset = client.scroll(collection, limit=_PAGE, offset=offset, **kwargs)
        yield from records
        if offset is None:
            return


def relayout(
    client: QdrantClient,
    collection: str = COLLECTION,
    *,
    cells: int | None = None,
    seed: int = 0,
) -> IndexLayout:
    """Retrain the centroids on the record's ``image`` vectors and rebuild every cell.

    ``cells`` defaults to one per :data:`CELL_POINTS` points. No signature is recomputed.
    """
    from sklearn.cluster import MiniBatchKMeans

    ensure_collection(client, collection)
    ids: list[Any] = []
    rows: list[np.ndarray] = []
    payloads: list[dict[str, Any]] = []
    for record in _scroll(
        client, collection, with_payload=["tenant_id", "run_id"], with_vectors=[CELL_VECTOR]
    ):
        ids.append(record.id)
        rows.append(np.asarray(_named(record.vector, CELL_VECTOR), dtype=np.float32))
        payloads.append(record.payload or {})
    drop_cells(client, collection)
    if not ids:
        return IndexLayout("flat", 0, 0)
    matrix = np.vstack(rows)
    del rows
    n_cells = max(1, min(len(ids), cells or round(len(ids) / CELL_POINTS)))
    kmeans = MiniBatchKMeans(n_clusters=n_cells, random_state=seed, batch_size=4096, n_init=3)
    labels = kmeans.fit_predict(matrix)
    centroids = np.asarray(kmeans.cluster_centers_)
    name = centroids_name(collection)
    _create(
        client,
        name,
        {CELL_VECTOR: VECTORS[CELL_VECTOR]},
        tenant_index=False,
        metadata={"cells": n_cells, "trained_points": len(ids), "seed": seed},
    )
    client.upsert(
        name,
        points=[
            models.PointStruct(id=i, vector={CELL_VECTOR: c.tolist()}, payload={"cell": i})
            for i, c in enumerate(centroids)
        ],
    )
    members: dict[int, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        members[int(label)].append(i)
    for cell in range(n_cells):
        _create(client, cell_name(collection, cell), {CELL_VECTOR: VECTORS[CELL_VECTOR]})
        own = members.get(cell, [])
        if not own:
            continue
        for start in range(0, len(own), 1024):
            chunk = own[start : start + 1024]
            client.upsert(
                cell_name(collection, cell),
                points=[_cell_point(ids[i], matrix[i].tolist(), payloads[i]) for i in chunk],
            )
        client.set_payload(collection, {"cell": cell}, points=[ids[i] for i in own])
    return IndexLayout("cells", n_cells, len(ids))


def remove_runs(client: QdrantClient, flt: models.Filter, collection: str = COLLECTION) -> int:
    """Delete the points matching ``flt`` from the collection of record and from their cells."""
    if not client.collection_exists(collection):
        return 0
    by_cell: dict[Any, list[Any]] = defaultdict(list)
    for record in _scroll(client, collection, scroll_filter=flt, with_payload=["cell"]):
        by_cell[(record.payload or {}).get("cell")].append(record.id)
    for cell, ids in by_cell.items():
        if cell is not None and client.collection_exists(cell_name(collection, int(cell))):
            client.delete(
                cell_name(collection, int(cell)), points_selector=models.PointIdsList(points=ids)
            )
    removed = [i for ids in by_cell.values() for i in ids]
    if removed:
        client.delete(collection, points_selector=models.PointIdsList(points=removed))
    return len(removed)


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


def _cell_shortlist(
    client: QdrantClient,
    collection: str,
    query: Any,
    flt: models.Filter,
    limit: int,
    nprobe: int,
) -> list[tuple[float, dict[str, Any]]]:
    """The ``limit`` nearest points of the tenant over the ``nprobe`` nearest cells."""
    probe = client.query_points(
        centroids_name(collection), query=query, using=CELL_VECTOR, limit=nprobe
    ).points
    hits: list[models.ScoredPoint] = []
    for centroid in probe:
        hits += client.query_points(
            cell_name(collection, int(centroid.id)),
            query=query,
            using=CELL_VECTOR,
            query_filter=flt,
            limit=limit,
            with_payload=False,
        ).points
    hits.sort(key=lambda h: h.score)
    scores = {h.id: float(h.score) for h in hits[:limit]}
    records = client.retrieve(collection, list(scores), with_payload=_FIELDS)
    return [(scores[r.id], r.payload or {}) for r in records]


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
    layout: Layout = "auto",
    nprobe: int = NPROBE,
) -> list[SimilarRun]:
    """The ``k`` runs of ``tenant_id`` most similar in shape to a run, a signature or a vector.

    Give exactly one of ``run_id`` (an indexed run of the tenant; it is left out of the answer),
    ``signature`` or ``vector`` (a raw ``using`` vector: no diagram, so the answer is the
    vector order and ``exact`` is false). ``nprobe`` cells are probed in the cell layout.
    """
    flt = _tenant(tenant_id)
    if sum(x is not None for x in (run_id, signature, vector)) != 1:
        raise ValueError("give exactly one of run_id, signature or vector")
    if using not in VECTORS:
        raise ValueError(f"unknown vector {using!r}; use one of {sorted(VECTORS)}")
    cells = _cells_wanted(client, layout)
    query: Any
    if run_id is not None:
        record = _stored(client, collection, tenant_id, run_id, using)
        payload = record.payload or {}
        query = _named(record.vector, using)
        target: HasDiagrams | None = StoredDiagrams(payload["dgm0"], payload["dgm1"])
    elif signature is not None:
        query = (signature.image if using == "image" else signature.betti_curve).tolist()
        target = signature
    else:
        query, target = list(vector or ()), None
    limit = max(k, shortlist) + (1 if run_id is not None else 0)
    if cells and using == CELL_VECTOR and client.collection_exists(centroids_name(collection)):
        hits = _cell_shortlist(client, collection, query, flt, limit, nprobe)
    else:
        points = client.query_points(
            collection,
            query=query,
            using=using,
            query_filter=flt,
            limit=limit,
            with_payload=_FIELDS,
        ).points
        hits = [(float(h.score), h.payload or {}) for h in points]
    out: list[SimilarRun] = []
    for score, p in hits:
        if p.get("tenant_id") != tenant_id:  # defence in depth: the filter already did this
            continue
        if run_id is not None and p["run_id"] == run_id:
            continue
        distance = (
            diagram_distance(target, StoredDiagrams(p["dgm0"], p["dgm1"]))
            if target is not None
            else score
        )
        out.append(
            SimilarRun(
                run_id=p["run_id"],
                tenant_id=p["tenant_id"],
                workflow=p["workflow"],
                distance=distance,
                vector_distance=score,
                exact=target is not None,
            )
        )
    out.sort(key=lambda r: (r.distance, r.vector_distance, r.run_id))
    return out[:k]
