"""Topology signatures, shape retrieval recall against exact diagram distances, drift power.

``python -m bench topology``. Everything runs in one process on simulated data; the parts
(``signatures``, ``retrieval``, ``drift``) run as ``AURA_BENCH_TOPO_PARTS`` names them
(comma-separated, default all):

* ``topology.signatures``: signatures (diagrams, summaries, vectors) of seeded random call graphs
  of 50 nodes and about 100 edges (``AURA_BENCH_TOPO_GRAPHS``, default 2000), runs per second,
  against gudhi's persistence alone on the same graphs (the baseline).
* ``topology.recall_at_10`` / ``topology.similar_top10``: ``AURA_BENCH_TOPO_RUNS`` (default
  10,000; the issue's figure is at ``AURA_BENCH_TOPO_RUNS=100000``) stored diagrams of one tenant
  in Qdrant (local mode in memory, or the server at ``AURA_BENCH_TOPO_QDRANT_URL``). The first
  ``AURA_BENCH_TOPO_BASE_RUNS`` (default 2000) are traces of real LangGraph runs (half after the
  regime change, so both shapes are present); a LangGraph run costs about 7 ms, so the rest are
  perturbed copies of them: the same nodes and edges, each edge's call count and latency scaled
  by a log-normal factor (sigma :data:`PERTURB_SIGMA`, calls rounded, at least 1), which moves
  the H0 deaths and H1 births. The JSON line says how many are real. Ground truth: the exact top
  10 by bottleneck distance (H0 + H1, :func:`lakehouse.topology.tda.diagram_distance`, diagrams
  capped once) over every stored run, for every query: nothing is extrapolated. Simulated runs
  often share a diagram exactly, so recall is tie-aware: a returned run counts when its exact
  distance is at most the exact 10th-smallest distance. Reported for the raw Qdrant vector order
  and for :func:`~lakehouse.topology.retrieval.similar_runs` (shortlist of 50 re-ranked exactly);
  the speed line is the median query time of the brute-force exact scan over that of
  ``similar_runs``. In local mode the collection gets the cell layout of
  :mod:`lakehouse.topology.retrieval` (indexed first, then laid out once: ``index_seconds``
  and ``layout_seconds``; about ``AURA_BENCH_TOPO_CELL_POINTS`` points a cell,
  ``AURA_BENCH_TOPO_NPROBE`` cells probed, defaults those of the module), and the line says
  where the time goes: the
  centroid query, the tenant-filtered queries of the probed cells (``probed_points_p50`` points)
  and the exact re-rank of the 50 shortlisted diagrams, next to the tenant-filtered query of the
  whole collection of record (the flat layout; local mode evaluates the filter in Python on
  every point). ``AURA_BENCH_TOPO_PARTS=retrieval`` runs only this part.
* ``topology.drift_power`` / ``topology.drift_false_alarms``: ``AURA_BENCH_TOPO_TRIALS`` (default
  20) seeded trials of 3 reference days against one current day (``AURA_BENCH_TOPO_PER_DAY``
  runs per day, default 30), with the retry-loop regime change on the current day or not; the
  share of trials flagged at alpha 0.01 by the topology test, next to the scalar KS baseline.
* ``topology.drift_cycle_only``: the same trials with the cycle-only regime change (``replan``:
  same agents, same edge count, same latency law; a revision's ``reflect -> tools`` rewired to
  ``reflect -> route``, so a filled triangle becomes a 4-cycle): whether either detector sees it.
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import date
from typing import Any

import numpy as np

from bench import emit

GRAPHS = int(os.environ.get("AURA_BENCH_TOPO_GRAPHS", "2000"))
RUNS = int(os.environ.get("AURA_BENCH_TOPO_RUNS", "10000"))
BASE_RUNS = int(os.environ.get("AURA_BENCH_TOPO_BASE_RUNS", "2000"))
QUERIES = int(os.environ.get("AURA_BENCH_TOPO_QUERIES", "20"))
TRIALS = int(os.environ.get("AURA_BENCH_TOPO_TRIALS", "20"))
PER_DAY = int(os.environ.get("AURA_BENCH_TOPO_PER_DAY", "30"))
K = 10
PERTURB_SIGMA = 0.5
QDRANT_URL = os.environ.get("AURA_BENCH_TOPO_QDRANT_URL", "")
START = date(2026, 11, 1)


def _random_graph(rng: np.random.Generator, n: int = 50) -> tuple[list[str], list[dict[str, Any]]]:
    """A connected call graph: a random tree plus about ``n`` extra edges, Zipf call counts."""
    nodes = [f"agent{i}" for i in range(n)]
    pairs = {(int(rng.integers(i)), i) for i in range(1, n)}
    while len(pairs) < 2 * n:
        a, b = sorted(int(x) for x in rng.choice(n, size=2, replace=False))
        pairs.add((a, b))
    calls = np.minimum(rng.zipf(1.8, size=len(pairs)), 1000)
    edges = [
        {"src": nodes[a], "dst": nodes[b], "calls": int(c), "latency_ms": 1.0, "errors": 0}
        for (a, b), c in zip(sorted(pairs), calls, strict=True)
    ]
    return nodes, edges


def _signatures() -> None:
    import gudhi

    from lakehouse.topology.tda import signature

    rng = np.random.default_rng(0)
    graphs = [_random_graph(rng) for _ in range(GRAPHS)]
    started = time.perf_counter()
    for nodes, edges in graphs:
        index = {v: i for i, v in enumerate(nodes)}
        st = gudhi.SimplexTree()
        for i in range(len(nodes)):
            st.insert([i], 0.0)
        for e in edges:
            st.insert([index[e["src"]], index[e["dst"]]], 1.0 / (1.0 + e["calls"]))
        st.expansion(2)
        st.compute_persistence(persistence_dim_max=True)
    baseline = GRAPHS / (time.perf_counter() - started)
    started = time.perf_counter()
    for nodes, edges in graphs:
        signature(nodes, edges)
    seconds = time.perf_counter() - started
    emit(
        "topology.signatures",
        GRAPHS / seconds,
        "graphs/s",
        baseline=baseline,
        baseline_name="gudhi persistence only",
        graphs=GRAPHS,
        nodes=50,
        seconds=round(seconds, 3),
        projected_10k_seconds=round(seconds * 10_000 / GRAPHS, 1),
    )


def _stored_events() -> tuple[list[dict[str, Any]], int]:
    """``RUNS`` traces of one tenant, and how many are real LangGraph runs (the rest perturbed)."""
    from lakehouse.simulate.traces import perturbed_runs, simulate_workflow_events

    days = 4
    real = min(RUNS, BASE_RUNS)
    events = list(
        simulate_workflow_events(START, days, -(-real // days), seed=5, regime_change_at=days // 2)
    )[:real]
    events += list(perturbed_runs(events, RUNS - real, sigma=PERTURB_SIGMA, seed=2))
    for e in events:
        e["tenant_id"] = "bench"
    return events, real


def _retrieval() -> None:
    from qdrant_client import QdrantClient, models

    from lakehouse.topology.retrieval import (
        CELL_POINTS,
        CELL_VECTOR,
        COLLECTION,
        DEFAULT_SHORTLIST,
        NPROBE,
        cell_name,
        centroids_name,
        drop_index,
        index_runs,
        layout_info,
        relayout,
        similar_runs,
    )
    from lakehouse.topology.tda import StoredDiagrams, diagram_distance, event_signature

    nprobe = int(os.environ.get("AURA_BENCH_TOPO_NPROBE", NPROBE))
    cell_points = int(os.environ.get("AURA_BENCH_TOPO_CELL_POINTS", CELL_POINTS))
    events, real = _stored_events()
    started = time.perf_counter()
    sigs = [event_signature(e) for e in events]
    signature_s = time.perf_counter() - started
    stored = [StoredDiagrams(s.capped(0), s.capped(1)) for s in sigs]
    ids = {e["run_id"]: i for i, e in enumerate(events)}
    rng = np.random.default_rng(1)
    queries = [int(i) for i in rng.choice(len(events), size=QUERIES, replace=False)]
    tenant = models.Filter(
        must=[models.FieldCondition(key="tenant_id", match=models.MatchValue(value="bench"))]
    )
    stages = ("exact", "ours", "flat", "centroids", "cells", "rerank")
    times: dict[str, list[float]] = {k: [] for k in stages}
    recall_ann: list[float] = []
    recall_rerank: list[float] = []
    probed: list[int] = []

    def timed(name: str, fn: Any) -> Any:
        begun = time.perf_counter()
        out = fn()
        times[name].append(time.perf_counter() - begun)
        return out

    # In-memory local mode: the same search code as a local path; a path commits each upserted
    # point to SQLite on its own (about 8 ms a point here), which would dominate the load.
    client = QdrantClient(url=QDRANT_URL) if QDRANT_URL else QdrantClient(location=":memory:")
    collection = f"{COLLECTION}_bench_{os.getpid()}"
    try:
        started = time.perf_counter()
        index_runs(
            client, zip(events, sigs, strict=True), collection=collection, relayout_when_due=False
        )
        index_s = time.perf_counter() - started
        started = time.perf_counter()
        layout = (
            relayout(client, collection, cells=max(1, round(len(events) / cell_points)))
            if not QDRANT_URL
            else layout_info(client, collection)
        )
        layout_s = time.perf_counter() - started
        sizes = {
            c: client.count(cell_name(collection, c), exact=True).count for c in range(layout.cells)
        }
        limit = DEFAULT_SHORTLIST + 1
        for q in queries:
            run_id = events[q]["run_id"]
            dist = timed(
                "exact", lambda q=q: np.array([diagram_distance(stored[q], s) for s in stored])
            )
            dist[q] = np.inf
            kth = np.sort(dist)[K - 1] + 1e-7
            hits = timed(
                "ours",
                lambda r=run_id: similar_runs(
                    client, "bench", run_id=r, k=K, collection=collection, nprobe=nprobe
                ),
            )
            vector = sigs[q].image.tolist()
            shortlist = timed(
                "flat",
                lambda v=vector: [
                    (p.score, p.payload or {})
                    for p in client.query_points(
                        collection,
                        query=v,
                        using=CELL_VECTOR,
                        query_filter=tenant,
                        limit=limit,
                        with_payload=["run_id"],
                    ).points
                ],
            )
            if layout.cells:
                probe = timed(
                    "centroids",
                    lambda v=vector: (
                        client.query_points(
                            centroids_name(collection), query=v, using=CELL_VECTOR, limit=nprobe
                        ).points
                    ),
                )
                cells = [int(c.id) for c in probe]
                probed.append(sum(sizes[c] for c in cells))
                timed(
                    "cells",
                    lambda v=vector, cells=cells: [
                        client.query_points(
                            cell_name(collection, c),
                            query=v,
                            using=CELL_VECTOR,
                            query_filter=tenant,
                            limit=limit,
                        )
                        for c in cells
                    ],
                )
            picked = [ids[p["run_id"]] for _, p in shortlist]
            timed(
                "rerank",
                lambda q=q, picked=picked: [diagram_distance(stored[q], stored[i]) for i in picked],
            )
            raw = similar_runs(
                client,
                "bench",
                run_id=run_id,
                k=K,
                shortlist=K,
                collection=collection,
                nprobe=nprobe,
            )
            raw.sort(key=lambda h: h.vector_distance)
            recall_rerank.append(sum(dist[ids[h.run_id]] <= kth for h in hits) / K)
            recall_ann.append(sum(dist[ids[h.run_id]] <= kth for h in raw) / K)
    finally:
        drop_index(client, collection)
        client.close()
    p50 = {k: statistics.median(v) if v else 0.0 for k, v in times.items()}
    emit(
        "topology.similar_top10",
        p50["exact"] / p50["ours"],
        "x faster",
        stored=len(events),
        real_runs=real,
        perturbed_runs=len(events) - real,
        queries=QUERIES,
        store=f"Qdrant server {QDRANT_URL}" if QDRANT_URL else "Qdrant local mode (in memory)",
        layout=layout.layout,
        cells=layout.cells,
        nprobe=nprobe if layout.cells else 0,
        cell_points=cell_points if layout.cells else 0,
        probed_points_p50=int(statistics.median(probed)) if probed else len(events),
        similar_runs_p50_ms=round(p50["ours"] * 1000, 2),
        exact_scan_p50_ms=round(p50["exact"] * 1000, 2),
        exact_scan="every stored diagram, every query (no scaling)",
        flat_query_p50_ms=round(p50["flat"] * 1000, 2),
        centroid_query_p50_ms=round(p50["centroids"] * 1000, 2),
        cell_queries_p50_ms=round(p50["cells"] * 1000, 2),
        rerank_p50_ms=round(p50["rerank"] * 1000, 2),
        signature_seconds=round(signature_s, 1),
        index_seconds=round(index_s, 1),
        layout_seconds=round(layout_s, 1),
    )
    emit(
        "topology.recall_at_10",
        statistics.mean(recall_rerank),
        "recall",
        baseline=statistics.mean(recall_ann),
        baseline_name="Qdrant vector order without re-ranking (same layout)",
        stored=len(events),
        real_runs=real,
        queries=QUERIES,
        shortlist=DEFAULT_SHORTLIST,
        layout=layout.layout,
        cells=layout.cells,
        nprobe=nprobe if layout.cells else 0,
    )


def _trials(regime: str, change: bool) -> tuple[list[bool], list[bool], list[float]]:
    """Topology and scalar flags and topology p-values over the seeded trials of one setting."""
    from lakehouse.simulate.traces import simulate_workflow_events
    from lakehouse.topology.drift import scalar_drift, topology_drift
    from lakehouse.topology.tda import event_signature

    topo: list[bool] = []
    scalar: list[bool] = []
    p_values: list[float] = []
    for trial in range(TRIALS):
        events = list(
            simulate_workflow_events(
                START,
                4,
                PER_DAY,
                seed=1000 + trial,
                regime_change_at=3 if change else None,
                regime=regime,
            )
        )
        ref, cur = events[: 3 * PER_DAY], events[3 * PER_DAY :]
        report = topology_drift(
            [event_signature(e) for e in ref],
            [event_signature(e) for e in cur],
            seed=trial,
            n_permutations=499,
        )
        p_values.append(report.p_value)
        topo.append(report.drifted)
        scalar.append(scalar_drift(ref, cur).drifted)
    return topo, scalar, p_values


def _drift() -> None:
    settings = (
        ("topology.drift_power", "fallback", True),
        ("topology.drift_false_alarms", "fallback", False),
        ("topology.drift_cycle_only", "replan", True),
    )
    for name, regime, change in settings:
        started = time.perf_counter()
        topo, scalar, p_values = _trials(regime, change)
        emit(
            name,
            statistics.mean(topo),
            "share of trials flagged",
            baseline=statistics.mean(scalar),
            baseline_name="scalar KS (nodes, edges, latency, error rate)",
            regime=regime if change else "none",
            trials=TRIALS,
            alpha=0.01,
            runs_per_day=PER_DAY,
            reference_days=3,
            median_p=round(statistics.median(p_values), 4),
            seconds=round(time.perf_counter() - started, 1),
        )


PARTS = {"signatures": _signatures, "retrieval": _retrieval, "drift": _drift}


def main() -> None:
    """Run the parts named in ``AURA_BENCH_TOPO_PARTS`` (comma-separated; default all three)."""
    wanted = os.environ.get("AURA_BENCH_TOPO_PARTS", ",".join(PARTS)).split(",")
    unknown = sorted(set(wanted) - set(PARTS))
    if unknown:
        raise SystemExit(f"unknown AURA_BENCH_TOPO_PARTS {unknown}; use some of {sorted(PARTS)}")
    for name in wanted:
        PARTS[name]()


if __name__ == "__main__":
    main()
