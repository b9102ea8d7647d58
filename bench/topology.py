"""Topology signatures, shape retrieval recall against exact diagram distances, drift power.

``python -m bench topology``. Everything runs in one process on simulated data; the parts
(``signatures``, ``retrieval``, ``drift``) run as ``AURA_BENCH_TOPO_PARTS`` names them
(comma-separated, default all):

* ``topology.signatures``: signatures (diagrams, summaries, vectors) of seeded random call graphs
  of 50 nodes and about 100 edges (``AURA_BENCH_TOPO_GRAPHS``, default 2000), runs per second,
  against gudhi's persistence alone on the same graphs (the baseline).
* ``topology.similar_top10`` / ``topology.recall_at_10``: stored diagrams of one tenant in the
  runs' collection on the vector engine (a Qdrant Edge shard in a temporary directory, or the
  server at ``AURA_BENCH_TOPO_QDRANT_URL``), one pair of lines per size: 1,000 and 10,000 when
  below ``AURA_BENCH_TOPO_RUNS``, then ``AURA_BENCH_TOPO_RUNS`` itself (default 10,000; the
  issue's figure is at 100,000). The index grows from one size to the next and is optimized
  (HNSW built) before each measurement (``index_seconds``, ``optimize_seconds``). The first
  ``AURA_BENCH_TOPO_BASE_RUNS`` (default 2000) are traces of real LangGraph runs (half after
  the regime change, so both shapes are present); a LangGraph run costs about 7 ms, so the rest
  are perturbed copies of them: the same nodes and edges, each edge's call count and latency
  scaled by a log-normal factor (sigma :data:`PERTURB_SIGMA`, calls rounded, at least 1), which
  moves the H0 deaths and H1 births. Ground truth: the exact top 10 by bottleneck distance
  (H0 + H1, :func:`lakehouse.topology.tda.diagram_distance`, diagrams capped once) over every
  stored run, for each of ``AURA_BENCH_TOPO_QUERIES`` (default 20) queries: nothing is
  extrapolated. Simulated runs often share a diagram exactly, so recall is tie-aware: a
  returned run counts when its exact distance is at most the exact 10th-smallest distance.
  ``ratio`` (and ``value``) is the median exact-scan time over the median
  :func:`~lakehouse.topology.retrieval.similar_runs` time (shortlist of 50 re-ranked exactly);
  ``recall_at_10`` its recall; the line also says where the time goes (the tenant-filtered
  vector search, the exact re-rank) and ``hnsw_recall_at_51``, the HNSW shortlist against the
  engine's exact vector search (tie-aware: a hit counts when its vector distance is at most
  the exact 51st). ``topology.recall_at_10`` sets the re-ranked recall against
  the raw vector order. ``AURA_BENCH_TOPO_PARTS=retrieval`` runs only this part.
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
from pathlib import Path
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


def _sizes() -> list[int]:
    """The stored sizes measured, smallest first: 1,000 and 10,000 below ``RUNS``, then ``RUNS``."""
    return [n for n in (1_000, 10_000) if n < RUNS] + [RUNS]


def _open_bench_store(directory: str) -> Any:
    from lakehouse.topology.retrieval import index_spec
    from lakehouse.vectors import EdgeStore

    spec = index_spec(f"aura_topology_runs_bench_{os.getpid()}")
    if not QDRANT_URL:
        return EdgeStore(Path(directory), spec)
    from qdrant_client import QdrantClient

    from lakehouse.vectors.server import ServerStore

    return ServerStore(QdrantClient(url=QDRANT_URL, check_compatibility=False), spec)


def _retrieval() -> None:
    import tempfile

    from lakehouse.topology.retrieval import DEFAULT_SHORTLIST, index_runs, similar_runs
    from lakehouse.topology.tda import StoredDiagrams, diagram_distance, event_signature

    events, real = _stored_events()
    started = time.perf_counter()
    sigs = [event_signature(e) for e in events]
    signature_s = time.perf_counter() - started
    stored = [StoredDiagrams(s.capped(0), s.capped(1)) for s in sigs]
    ids = {e["run_id"]: i for i, e in enumerate(events)}
    with tempfile.TemporaryDirectory(prefix="aura-bench-topology-") as directory:
        store = _open_bench_store(directory)
        try:
            indexed = 0
            for size in _sizes():
                started = time.perf_counter()
                index_runs(store, zip(events[indexed:size], sigs[indexed:size], strict=True))
                index_s = time.perf_counter() - started
                started = time.perf_counter()
                store.optimize()
                optimize_s = time.perf_counter() - started
                indexed = size
                _measure(store, size, events, sigs, stored, ids, similar_runs, diagram_distance)(
                    real=min(real, size),
                    shortlist=DEFAULT_SHORTLIST,
                    signature_seconds=round(signature_s * size / len(events), 1),
                    index_seconds=round(index_s, 1),
                    optimize_seconds=round(optimize_s, 1),
                )
        finally:
            store.drop()


def _measure(
    store: Any,
    size: int,
    events: list[dict[str, Any]],
    sigs: list[Any],
    stored: list[Any],
    ids: dict[str, int],
    similar_runs: Any,
    diagram_distance: Any,
) -> Any:
    """Time ``QUERIES`` queries over the first ``size`` runs; a function that emits the lines."""
    rng = np.random.default_rng(size)
    queries = [int(i) for i in rng.choice(size, size=min(QUERIES, size), replace=False)]
    times: dict[str, list[float]] = {k: [] for k in ("exact", "ours", "search", "rerank")}
    recall_rerank: list[float] = []
    recall_ann: list[float] = []
    recall_hnsw: list[float] = []

    def timed(name: str, fn: Any) -> Any:
        begun = time.perf_counter()
        out = fn()
        times[name].append(time.perf_counter() - begun)
        return out

    for q in queries:
        run_id = events[q]["run_id"]
        dist = timed(
            "exact", lambda q=q: np.array([diagram_distance(stored[q], s) for s in stored[:size]])
        )
        dist[q] = np.inf
        kth = np.sort(dist)[K - 1] + 1e-7
        hits = timed("ours", lambda r=run_id: similar_runs(store, "bench", run_id=r, k=K))
        vector = sigs[q].image.tolist()
        shortlist = timed(
            "search",
            lambda v=vector: store.search(v, tenant="bench", using="image", limit=51),
        )
        exact_list = store.search(vector, tenant="bench", using="image", limit=51, exact=True)
        # Tie-aware, as above: perturbed copies often share a vector exactly.
        cut = exact_list[-1].score + 1e-6
        recall_hnsw.append(sum(h.score <= cut for h in shortlist) / len(exact_list))
        picked = [ids[h.payload["run_id"]] for h in shortlist]
        timed("rerank", lambda q=q, p=picked: [diagram_distance(stored[q], stored[i]) for i in p])
        raw = similar_runs(store, "bench", run_id=run_id, k=K, shortlist=K)
        raw.sort(key=lambda h: h.vector_distance)
        recall_rerank.append(sum(dist[ids[h.run_id]] <= kth for h in hits) / K)
        recall_ann.append(sum(dist[ids[h.run_id]] <= kth for h in raw) / K)
    p50 = {k: statistics.median(v) for k, v in times.items()}
    speedup = p50["exact"] / p50["ours"]
    engine = f"Qdrant server {QDRANT_URL}" if QDRANT_URL else "Qdrant Edge (embedded shard)"

    def emit_lines(**extra: Any) -> None:
        common = {"stored": size, "queries": len(queries), "store": engine, **extra}
        emit(
            "topology.similar_top10",
            speedup,
            "x faster than the exact scan",
            ratio=round(speedup, 1),
            recall_at_10=round(statistics.mean(recall_rerank), 4),
            similar_runs_p50_ms=round(p50["ours"] * 1000, 2),
            exact_scan_p50_ms=round(p50["exact"] * 1000, 2),
            exact_scan="every stored diagram, every query (no scaling)",
            search_p50_ms=round(p50["search"] * 1000, 2),
            rerank_p50_ms=round(p50["rerank"] * 1000, 2),
            hnsw_recall_at_51=round(statistics.mean(recall_hnsw), 4),
            **common,
        )
        emit(
            "topology.recall_at_10",
            statistics.mean(recall_rerank),
            "recall",
            baseline=statistics.mean(recall_ann),
            baseline_name="vector order without re-ranking",
            **common,
        )

    return emit_lines


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
