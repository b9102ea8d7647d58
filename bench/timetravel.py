"""Time-travel aggregate over >= 10M rows: ``aura sql`` views vs DuckDB ``read_parquet``.

Builds ``routing_decisions`` in a temporary AURA_HOME (10M rows in ten daily appends, then one
more day that the time-travel point must not see), opens a session ``as_of`` the moment before
the last append and runs one group-by aggregate through the view, through the
``routing_decisions_at(...)`` macro and through a plain ``iceberg_scan`` of the same snapshot. The
baseline is DuckDB's ``read_parquet`` over exactly the data files of that snapshot, in the same
connection. Goal: view / read_parquet <= 1.3.

Environment: ``AURA_BENCH_ROWS`` (default 10_000_000), ``AURA_BENCH_REPEAT`` (default 15).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bench import _s3, emit
from lakehouse import Lakehouse, Lineage, Settings
from lakehouse.sql import connect
from lakehouse.sql._guard import quote_literal
from lakehouse.table.catalog import close_catalog

TABLE = "routing_decisions"
START = datetime(2026, 11, 1, tzinfo=UTC)
QUERIES = {
    # Every row of the snapshot.
    "aggregate": (
        "SELECT chosen_model, task_type, count(*) AS n, sum(cost_usd) AS cost, "
        "avg(latency_ms) AS latency, max(prompt_tokens) AS tokens FROM {source} "
        "GROUP BY ALL ORDER BY ALL"
    ),
    # One day of ten: pruning by partition (iceberg_scan) or by Parquet statistics (read_parquet).
    "one_day": (
        "SELECT chosen_model, count(*) AS n, sum(cost_usd) AS cost FROM {source} "
        "WHERE ts >= TIMESTAMPTZ '2026-11-04 00:00:00+00' "
        "AND ts < TIMESTAMPTZ '2026-11-05 00:00:00+00' "
        "GROUP BY ALL ORDER BY ALL"
    ),
}


def decisions(n: int, seed: int) -> pa.Table:
    """``n`` synthetic routing decisions within one day (``START``), built column-wise."""
    rng = np.random.default_rng(seed)
    micros = np.sort(rng.integers(0, 86_400_000_000, n, dtype=np.int64))
    start = int(START.timestamp() * 1_000_000)
    models = pa.array(["small", "medium", "large", "xl"])
    tasks = pa.array(["code", "chat", "search", "summarize", "plan"])
    candidates = pa.ListArray.from_arrays(
        pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32)),
        pa.array(["small", "large"]).take(pa.array(np.tile(np.array([0, 1]), n))),
    )
    return pa.table(
        {
            "decision_id": _ids(0, n),
            "ts": pa.array(start + micros, pa.timestamp("us", "UTC")),
            "tenant_id": pa.array(["acme", "globex", "initech"]).take(rng.integers(0, 3, n)),
            "task_type": tasks.take(rng.integers(0, len(tasks), n)),
            "prompt_tokens": pa.array(rng.integers(10, 4000, n, dtype=np.int64)),
            "candidate_models": candidates,
            "chosen_model": models.take(rng.integers(0, len(models), n)),
            "cost_usd": pa.array(rng.random(n) / 100),
            "latency_ms": pa.array(rng.gamma(2.0, 200.0, n)),
            "quality_score": pa.array(rng.random(n)),
            "fallback_used": pa.array(rng.random(n) < 0.05),
        }
    )


def shifted(base: pa.Table, day: int, first_id: int) -> pa.Table:
    """``base`` moved ``day`` days later with fresh decision ids (cheap: two columns change)."""
    ts = pc.add(base.column("ts"), pa.scalar(timedelta(days=day), pa.duration("us")))
    table = base.set_column(base.schema.get_field_index("ts"), "ts", ts)
    return table.set_column(0, "decision_id", _ids(first_id, base.num_rows))


def _ids(first: int, n: int) -> pa.Array:
    numbers = pa.array(np.arange(first, first + n, dtype=np.int64))
    return pc.binary_join_element_wise("d-", pc.cast(numbers, pa.string()), "")


def main() -> None:
    rows = int(os.environ.get("AURA_BENCH_ROWS", "10000000"))
    repeat = int(os.environ.get("AURA_BENCH_REPEAT", "15"))
    with tempfile.TemporaryDirectory(prefix="aura-bench-timetravel-") as home:
        _run(Lakehouse(Settings.from_env({"AURA_HOME": home})), rows, repeat, "timetravel")
    if _s3.enabled():
        # The configured object store and REST catalog (a scratch one: .ci/objstore.sh --run);
        # the same query over the same bucket, read_parquet reading the snapshot's S3 files.
        rows = int(os.environ.get("AURA_BENCH_S3_ROWS", str(rows)))
        lh = Lakehouse(Settings.from_env())
        _s3.fresh_table(lh, TABLE)
        _run(lh, rows, repeat, "timetravel.s3")


def _run(lh: Lakehouse, rows: int, repeat: int, prefix: str) -> None:
    began = time.perf_counter()
    days = 10  # one append (one snapshot, one day partition) per day
    base = decisions(rows // days, seed=1)
    for day in range(days):
        lh.append(TABLE, shifted(base, day, day * base.num_rows), lineage=Lineage("bench"))
    table = lh.table(TABLE)
    snapshot = table.current_snapshot()
    assert snapshot is not None
    later = shifted(base, days, days * base.num_rows)  # must not be seen as of `snapshot`
    lh.append(TABLE, later, lineage=Lineage("bench"))
    rows = days * base.num_rows
    emit(f"{prefix}.build", time.perf_counter() - began, "s", rows=rows + later.num_rows)

    when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=snapshot.timestamp_ms)
    files = [
        task.file.file_path for task in table.scan(snapshot_id=snapshot.snapshot_id).plan_files()
    ]
    file_list = "[" + ", ".join(quote_literal(f) for f in files) + "]"

    began = time.perf_counter()
    session = connect(lh.settings, catalog=lh.catalog, as_of=when)
    emit(f"{prefix}.connect", time.perf_counter() - began, "s", tables=len(session.views))
    view = session.views[TABLE]
    assert view.snapshot_id == snapshot.snapshot_id, "as_of resolved the wrong snapshot"

    con = session.connection
    sources = {
        "view": TABLE,
        "macro": f"{TABLE}_at(TIMESTAMPTZ '{when.isoformat()}')",
        "iceberg_scan": (
            f"iceberg_scan({quote_literal(table.metadata_location)}, "
            f"snapshot_from_id => {snapshot.snapshot_id})"
        ),
        "read_parquet": f"read_parquet({file_list})",
    }
    runs: dict[tuple[str, str], list[float]] = {}
    results: dict[tuple[str, str], object] = {}
    for round_ in range(repeat + 1):  # interleaved, so load changes hit every source alike
        for query, template in QUERIES.items():
            for name, source in sources.items():
                sql = template.format(source=source)
                began = time.perf_counter()
                run = con.execute if name == "read_parquet" else session.execute
                results[query, name] = run(sql).fetchall()
                if round_:  # round 0 warms the file cache and the metadata
                    runs.setdefault((query, name), []).append(time.perf_counter() - began)
    session.close()
    close_catalog(lh.catalog)

    total = sum(row[2] for row in results["aggregate", "read_parquet"])  # type: ignore[attr-defined]
    assert total == rows, f"time travel saw {total} rows, expected {rows}"
    for query in QUERIES:
        expected = results[query, "read_parquet"]
        for name in sources:
            got = results[query, name]
            assert _close(got, expected), f"{name} returned a different result for {query}"
        base_runs = runs[query, "read_parquet"]
        base = statistics.median(base_runs)
        emit(
            f"{prefix}.{query}.read_parquet",
            base,
            "s",
            rows=rows,
            files=len(files),
            min=round(min(base_runs), 6),
        )
        for name, label in (
            ("view", "view_as_of"),
            ("macro", "macro_at"),
            ("iceberg_scan", "iceberg_scan"),
        ):
            extra: dict[str, object] = (
                {"reader": view.reader, "goal_ratio": 1.3} if name == "view" else {}
            )
            emit(
                f"{prefix}.{query}.{label}",
                statistics.median(runs[query, name]),
                "s",
                baseline=base,
                baseline_name="read_parquet",
                rows=rows,
                # medians carry the noise of a shared machine; the ratio of minimums less so
                ratio_of_min=round(min(runs[query, name]) / min(base_runs), 4),
                **extra,
            )


def _close(a: object, b: object) -> bool:
    """Aggregates equal up to floating-point summation order."""
    if not isinstance(a, list) or not isinstance(b, list) or len(a) != len(b):
        return False
    for row_a, row_b in zip(a, b, strict=True):
        for x, y in zip(row_a, row_b, strict=True):
            if isinstance(x, float):
                if abs(x - y) > 1e-9 * max(1.0, abs(y)):
                    return False
            elif x != y:
                return False
    return True


if __name__ == "__main__":
    main()
