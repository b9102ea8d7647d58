"""Compaction: a DuckDB ``iceberg_scan`` group-by on one day of many small files, before/after.

Builds ``routing_decisions`` in a temporary AURA_HOME with one day partition written by many
small appends (one file and one manifest each; ~0.25 s per append to build here), runs a
group-by through ``iceberg_scan`` of main's snapshot,
compacts the table with :func:`lakehouse.maintenance.compact`, and runs the same query on the
compacted snapshot. The baseline is the query before compaction, in the same process; results
must be identical. Goal (issue 13): ``maintenance.scan_after_compaction`` ratio <= 1/3.

Environment: ``AURA_BENCH_FILES`` (default 500), ``AURA_BENCH_FILE_ROWS`` (default 2000),
``AURA_BENCH_REPEAT`` (default 15).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

from bench import emit
from bench.timetravel import decisions
from lakehouse import Lakehouse, Lineage, Settings, maintenance
from lakehouse.sql._guard import quote_literal
from lakehouse.table.catalog import close_catalog

TABLE = "routing_decisions"
QUERY = (
    "SELECT chosen_model, task_type, count(*) AS n, sum(prompt_tokens) AS tokens, "
    "max(latency_ms) AS latency FROM {source} GROUP BY ALL ORDER BY ALL"
)


def _scan(lh: Lakehouse, repeat: int) -> tuple[list[float], list[tuple[object, ...]]]:
    from lakehouse.sql import connect

    table = lh.table(TABLE)
    snapshot = table.current_snapshot()
    assert snapshot is not None
    source = (
        f"iceberg_scan({quote_literal(table.metadata_location)}, "
        f"snapshot_from_id => {snapshot.snapshot_id})"
    )
    session = connect(lh.settings, catalog=lh.catalog)
    runs = []
    result: list[tuple[object, ...]] = []
    for round_ in range(repeat + 1):  # round 0 warms the file cache
        began = time.perf_counter()
        result = session.execute(QUERY.format(source=source)).fetchall()
        if round_:
            runs.append(time.perf_counter() - began)
    session.close()
    return runs, result


def main() -> None:
    files = int(os.environ.get("AURA_BENCH_FILES", "500"))
    per_file = int(os.environ.get("AURA_BENCH_FILE_ROWS", "2000"))
    repeat = int(os.environ.get("AURA_BENCH_REPEAT", "15"))
    with tempfile.TemporaryDirectory(prefix="aura-bench-maintenance-") as home:
        lh = Lakehouse(Settings.from_env({"AURA_HOME": home}))
        base = decisions(files * per_file, seed=3)  # one day, ids unique
        began = time.perf_counter()
        for i in range(files):  # small appends: one file and one manifest each, as ingest leaves
            lh.append(TABLE, base.slice(i * per_file, per_file), lineage=Lineage("bench"))
        built = len(list(lh.table(TABLE).scan().plan_files()))
        emit("maintenance.build", time.perf_counter() - began, "s", files=built, rows=base.num_rows)

        before_runs, before = _scan(lh, repeat)
        began = time.perf_counter()
        report = maintenance.compact(lh, TABLE)
        compact_s = time.perf_counter() - began
        after_runs, after = _scan(lh, repeat)
        close_catalog(lh.catalog)

    assert after == before, "compaction changed the query's answer"
    assert sum(row[2] for row in after) == base.num_rows  # type: ignore[misc]
    emit(
        "maintenance.compact",
        compact_s,
        "s",
        files_before=report.files_removed,
        files_after=report.files_added,
        rows=base.num_rows,
        rows_per_s=round(base.num_rows / compact_s),
    )
    baseline = statistics.median(before_runs)
    emit("maintenance.scan_before_compaction", baseline, "s", files=report.files_removed)
    emit(
        "maintenance.scan_after_compaction",
        statistics.median(after_runs),
        "s",
        baseline=baseline,
        baseline_name="scan_before_compaction",
        files=report.files_added,
        ratio_of_min=round(min(after_runs) / min(before_runs), 4),
        goal_ratio=round(1 / 3, 4),
    )


if __name__ == "__main__":
    main()
