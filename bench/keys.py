"""Keys: the cost of recognising replays across every day (``lakehouse.table.keys.split_known``).

A table holds ``DAYS`` days of routing decisions (``ROWS`` in all). A batch of ``BATCH``
decisions of a new day, a tenth of them replays of stored decisions, is split into fresh,
replayed and conflicting keys by looking its ids up in every partition; the baseline is the
day merge the ingestion runs anyway (``write_decisions``: read the day, merge, overwrite).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa

from bench import emit
from lakehouse import Lakehouse, Lineage, Settings
from lakehouse.routing import ROUTING_DECISIONS, write_decisions
from lakehouse.routing.events import CONTENT_FIELDS
from lakehouse.simulate.routing import RoutingWorkload, routing_arrow
from lakehouse.table.keys import split_known

ROWS = int(os.environ.get("AURA_BENCH_ROWS", 1_000_000))
DAYS = int(os.environ.get("AURA_BENCH_DAYS", 30))
BATCH = int(os.environ.get("AURA_BENCH_BATCH", 10_000))
REPEATS = int(os.environ.get("AURA_BENCH_REPEATS", 3))
START = date(2026, 10, 1)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        lh = Lakehouse(Settings.from_env({"AURA_HOME": str(Path(tmp))}))
        table = lh.table(ROUTING_DECISIONS.name)
        per_day = ROWS // DAYS
        workload = RoutingWorkload(start=START, days=DAYS + 1)
        for i in range(DAYS):
            table.append(routing_arrow(workload, START + timedelta(days=i), per_day))
        table.refresh()
        new_day = START + timedelta(days=DAYS)
        fresh = routing_arrow(workload, new_day, BATCH - BATCH // 10)
        stored = table.scan(limit=BATCH // 10).to_arrow().select(fresh.schema.names)
        batch = pa.concat_tables([fresh, stored.cast(fresh.schema)])
        snapshot = table.current_snapshot()
        assert snapshot is not None
        lineage = Lineage(asset="routing_decisions", run_id="bench")
        split_s: list[float] = []
        merge_s: list[float] = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            split = split_known(
                ROUTING_DECISIONS, table, batch, snapshot.snapshot_id, compare=CONTENT_FIELDS
            )
            split_s.append(time.perf_counter() - start)
            assert len(split.replays) == BATCH // 10, len(split.replays)
            branch = f"bench-{len(merge_s)}"
            start = time.perf_counter()
            write_decisions(lh, new_day, fresh, lineage=lineage, branch=branch)
            merge_s.append(time.perf_counter() - start)
        clean_s: list[float] = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            split_known(
                ROUTING_DECISIONS, table, fresh, snapshot.snapshot_id, compare=CONTENT_FIELDS
            )
            clean_s.append(time.perf_counter() - start)
        split_t, merge_t = statistics.median(split_s), statistics.median(merge_s)
        emit(
            "keys.split_known_no_replays_seconds",
            statistics.median(clean_s),
            "s",
            baseline=merge_t,
            baseline_name="day_merge_seconds",
            table_rows=per_day * DAYS,
            batch=fresh.num_rows,
        )
        emit(
            "keys.split_known_10pct_replays_seconds",
            split_t,
            "s",
            baseline=merge_t,
            baseline_name="day_merge_seconds",
            table_rows=per_day * DAYS,
            batch=BATCH,
        )
        emit("keys.split_known_rows_per_s", BATCH / split_t, "rows/s", table_rows=per_day * DAYS)


if __name__ == "__main__":
    main()
