"""Ingest: routing decisions through the asset's write path vs raw pyiceberg and raw Parquet.

All three write the same Arrow data (``ROWS`` decisions of one day) into fresh tables with the
same schema and day partitioning, in one process. The write path is what the
``routing_decisions`` asset runs after parsing the stream: read the day, merge and deduplicate on
decision_id, conform to the table contract, overwrite the day with lineage properties. The
audited line adds what the Dagster asset does around it: an audit branch, the great-expectations
suite over the written day of the audit snapshot (evaluated on Arrow by
``quality.evaluator``, recorded in quality_results) and the fast-forward publish.
Also reported: the stream-side parse (JSON payloads to Arrow), without a baseline.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from bench import _s3, emit
from lakehouse import Lakehouse, Lineage, Settings
from lakehouse.routing import (
    ROUTING_DECISIONS,
    decisions_to_arrow,
    parse_entries,
    write_decisions,
)
from lakehouse.simulate.routing import RoutingWorkload, routing_arrow, routing_events
from lakehouse.table.registry import ensure_table

ROWS = int(os.environ.get("AURA_BENCH_ROWS", 1_000_000))
REPEATS = int(os.environ.get("AURA_BENCH_REPEATS", 3))
DAY = date(2026, 11, 20)


def _fresh_lakehouse(tmp: Path) -> Lakehouse:
    return Lakehouse(Settings.from_env({"AURA_HOME": str(tmp)}))


def main() -> None:
    data = routing_arrow(RoutingWorkload(start=DAY), DAY, ROWS)
    lineage = Lineage(asset="routing_decisions", partition=DAY.isoformat(), run_id="bench")

    def asset_path(tmp: Path) -> Callable[[], object]:
        lh = _fresh_lakehouse(tmp)
        lh.table(ROUTING_DECISIONS.name)
        return lambda: write_decisions(lh, DAY, data, lineage=lineage)

    def audited_path(tmp: Path) -> Callable[[], object]:
        from lakehouse.publish.wap import audit_and_publish
        from quality.audit import gx_audit

        lh = _fresh_lakehouse(tmp)
        lh.table(ROUTING_DECISIONS.name)

        def run() -> object:
            return audit_and_publish(
                lh,
                ROUTING_DECISIONS.name,
                lambda branch: write_decisions(lh, DAY, data, lineage=lineage, branch=branch)[2],
                audit=gx_audit,
                day=DAY,
                lineage=lineage,
            )

        return run

    def raw_append(tmp: Path) -> Callable[[], object]:
        lh = _fresh_lakehouse(tmp)
        table = ensure_table(lh.catalog, ROUTING_DECISIONS)
        return lambda: table.append(data)

    def raw_parquet(tmp: Path) -> Callable[[], object]:
        return lambda: pq.write_table(data, tmp / "data.parquet", compression="zstd")

    # Rounds interleave the three writers so background load hits them alike; medians compared.
    setups = {
        "parquet": raw_parquet,
        "append": raw_append,
        "asset": asset_path,
        "audited": audited_path,
    }
    timings: dict[str, list[float]] = {name: [] for name in setups}
    for _ in range(REPEATS):
        for name, setup in setups.items():
            with tempfile.TemporaryDirectory() as tmp:
                action = setup(Path(tmp))
                start = time.perf_counter()
                action()
                timings[name].append(time.perf_counter() - start)
    parquet_s, append_s, asset_s, audited_s = (statistics.median(timings[n]) for n in setups)
    emit("ingest.raw_parquet_write", ROWS / parquet_s, "rows/s")
    emit(
        "ingest.raw_pyiceberg_append",
        ROWS / append_s,
        "rows/s",
        baseline=ROWS / parquet_s,
        baseline_name="raw_parquet_write",
    )
    emit(
        "ingest.asset_write_path",
        ROWS / asset_s,
        "rows/s",
        baseline=ROWS / append_s,
        baseline_name="raw_pyiceberg_append",
        goal=">= 0.8",
    )
    emit(
        "ingest.asset_write_audit_publish",
        ROWS / audited_s,
        "rows/s",
        baseline=ROWS / append_s,
        baseline_name="raw_pyiceberg_append",
        goal=">= 0.8",
        rows=ROWS,
        repeats=REPEATS,
        load_avg_1m=round(os.getloadavg()[0], 2),
        arrow_pool=pa.default_memory_pool().backend_name,
        mimalloc_purge_delay=os.environ.get("MIMALLOC_PURGE_DELAY"),
    )
    emit(
        "ingest.asset_write_path_vs_parquet",
        ROWS / asset_s,
        "rows/s",
        baseline=ROWS / parquet_s,
        baseline_name="raw_parquet_write",
    )

    if _s3.enabled():
        _s3_lines(data, lineage)

    parse_rows = min(ROWS, 200_000)
    workload = RoutingWorkload(start=DAY, days=1, per_day=parse_rows)
    entries = [(f"{i}-0", {b"data": p.encode()}) for i, p in enumerate(routing_events(workload))]
    start = time.perf_counter()
    batch = parse_entries(entries)
    arrow = decisions_to_arrow(batch.decisions, datetime.now(UTC))
    parse_s = time.perf_counter() - start
    assert isinstance(arrow, pa.Table) and arrow.num_rows == parse_rows
    emit("ingest.stream_parse", parse_rows / parse_s, "rows/s", rows=parse_rows)


def _s3_lines(data: pa.Table, lineage: Lineage) -> None:
    """The asset's write path vs a raw pyiceberg append, both into the configured S3 warehouse
    and REST catalog (``ingest.s3.*``); each round recreates the table."""
    from lakehouse.publish.wap import audit_and_publish
    from quality.audit import gx_audit

    lh = Lakehouse(Settings.from_env())
    name = ROUTING_DECISIONS.name

    def fresh() -> None:
        _s3.fresh_table(lh, name)
        lh.table(name)

    def raw_append() -> Callable[[], object]:
        fresh()
        table = ensure_table(lh.catalog, ROUTING_DECISIONS)
        # The catalog numbers nested fields its own way (SeaweedFS: breadth-first): give the raw
        # append the table's field ids, outside the timing.
        arrow = table.schema().as_arrow()
        raw = data.select(arrow.names).cast(arrow)
        return lambda: table.append(raw)

    def asset_path() -> Callable[[], object]:
        fresh()
        return lambda: write_decisions(lh, DAY, data, lineage=lineage)

    def audited_path() -> Callable[[], object]:
        fresh()
        return lambda: audit_and_publish(
            lh,
            name,
            lambda branch: write_decisions(lh, DAY, data, lineage=lineage, branch=branch)[2],
            audit=gx_audit,
            day=DAY,
            lineage=lineage,
        )

    setups = {"append": raw_append, "asset": asset_path, "audited": audited_path}
    timings: dict[str, list[float]] = {n: [] for n in setups}
    for _ in range(REPEATS):
        for key, setup in setups.items():
            action = setup()
            start = time.perf_counter()
            action()
            timings[key].append(time.perf_counter() - start)
    _s3.fresh_table(lh, name)
    append_s, asset_s, audited_s = (statistics.median(timings[n]) for n in setups)
    warehouse = lh.settings.catalog_warehouse or lh.settings.warehouse
    emit("ingest.s3.raw_pyiceberg_append", ROWS / append_s, "rows/s", warehouse=warehouse)
    for label, seconds in (("asset_write_path", asset_s), ("asset_write_audit_publish", audited_s)):
        emit(
            f"ingest.s3.{label}",
            ROWS / seconds,
            "rows/s",
            baseline=ROWS / append_s,
            baseline_name="s3.raw_pyiceberg_append",
            goal=">= 0.8",
            rows=ROWS,
            repeats=REPEATS,
            load_avg_1m=round(os.getloadavg()[0], 2),
        )


if __name__ == "__main__":
    main()
