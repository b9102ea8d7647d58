"""Day writes skip pyiceberg's per-partition split: same partition, same files, same rows."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from helpers import DAYS, TABLE, day_decisions, sorted_rows

from lakehouse import Lakehouse, Settings
from lakehouse.routing import ROUTING_DECISIONS
from lakehouse.table import writer


def _files(lh: Lakehouse) -> list[tuple[str, int, str]]:
    return sorted(
        (str(t.file.partition), t.file.record_count, t.file.file_path.rsplit("/", 2)[-2])
        for t in lh.table(TABLE).scan().plan_files()
    )


def test_a_day_write_lands_where_pyiceberg_would_put_it(
    lakehouse: Lakehouse, tmp_path: Path
) -> None:
    batch = day_decisions(500, DAYS[1])
    lakehouse.overwrite_day(TABLE, batch, DAYS[1].date())
    raw = Lakehouse(Settings.from_env({"AURA_HOME": str(tmp_path / "raw")}))
    table = raw.table(TABLE)
    table.append(writer.conform(ROUTING_DECISIONS, table, batch))  # pyiceberg's own split
    assert _files(lakehouse) == _files(raw) == [("Record[20778]", 500, "ts_day=2026-11-21")]
    ours = lakehouse.read(TABLE, day=DAYS[1].date())
    assert sorted_rows(ours, "decision_id") == sorted_rows(raw.read(TABLE), "decision_id")
    assert lakehouse.read(TABLE, day=DAYS[0].date()).num_rows == 0  # pruned by partition


def test_overwriting_a_day_replaces_it_and_keeps_the_other_days(lakehouse: Lakehouse) -> None:
    for day in DAYS:
        lakehouse.overwrite_day(TABLE, day_decisions(30, day), day.date())
    kept = sorted_rows(lakehouse.read(TABLE, day=DAYS[0].date()), "decision_id")
    fresh = day_decisions(7, DAYS[1], start=100)
    lakehouse.overwrite_day(TABLE, fresh, DAYS[1].date())
    assert sorted_rows(lakehouse.read(TABLE, day=DAYS[0].date()), "decision_id") == kept
    second = lakehouse.read(TABLE, day=DAYS[1].date()).column("decision_id").to_pylist()
    assert sorted(second) == sorted(fresh.column("decision_id").to_pylist())
    assert [f[1] for f in _files(lakehouse)] == [30, 7]


def test_only_a_batch_of_one_partition_takes_the_direct_path(lakehouse: Lakehouse) -> None:
    table = lakehouse.table(TABLE)
    one = writer.conform(ROUTING_DECISIONS, table, day_decisions(5, DAYS[0]))
    key = writer._single_partition_key(table, one)
    assert key is not None and key.partition[0] == 20777  # days since 1970-01-01
    two = pa.concat_tables(
        [one, writer.conform(ROUTING_DECISIONS, table, day_decisions(5, DAYS[1]))]
    )
    assert writer._single_partition_key(table, two) is None
    assert writer._single_partition_key(table, one.slice(0, 0)) is None
    registry = lakehouse.table("router_models")  # a model registry: unpartitioned
    assert registry.spec().is_unpartitioned()
    assert writer._single_partition_key(registry, one) is None
