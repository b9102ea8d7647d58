"""merge_day: a keyed day merge that re-reads after a lost race (real Iceberg)."""

from __future__ import annotations

import logging
import threading
from datetime import date

import pyarrow as pa
import pytest
from helpers import DAY, decisions

from lakehouse import Lakehouse, Lineage
from lakehouse.exceptions import ConfigurationError
from lakehouse.routing import ROUTING_DECISIONS
from lakehouse.table import writer
from lakehouse.table.registry import TableSpec, column, register

DAY_DATE = DAY.date()
LINEAGE = Lineage(asset="test", partition=DAY_DATE.isoformat())


def _ids(lh: Lakehouse) -> list[str]:
    return lh.read(ROUTING_DECISIONS.name, day=DAY_DATE).column("decision_id").to_pylist()


def test_first_row_of_a_key_wins_and_existing_rows_are_kept(lakehouse: Lakehouse) -> None:
    first = decisions(3)
    lakehouse.overwrite_day(ROUTING_DECISIONS.name, first, DAY_DATE)
    again = first.set_column(
        first.schema.get_field_index("quality_score"), "quality_score", pa.array([0.1] * 3)
    )
    fresh = decisions(2, start=10)
    dup_in_batch = pa.concat_tables([fresh, fresh.slice(0, 1)])
    result = writer.merge_day(
        ROUTING_DECISIONS,
        lakehouse,
        pa.concat_tables([again, dup_in_batch]),
        DAY_DATE,
        LINEAGE,
        "main",
    )
    assert result.added == 2 and result.rows.num_rows == 5
    rows = lakehouse.read(ROUTING_DECISIONS.name, day=DAY_DATE).to_pylist()
    assert sorted(r["decision_id"] for r in rows) == sorted(
        first.column("decision_id").to_pylist() + fresh.column("decision_id").to_pylist()
    )
    assert all(r["quality_score"] == 0.9 for r in rows)  # the stored rows were kept

    nothing = writer.merge_day(ROUTING_DECISIONS, lakehouse, again, DAY_DATE, LINEAGE, "main")
    assert (nothing.added, nothing.write) == (0, None)


def test_a_merge_read_before_a_concurrent_commit_is_merged_again(
    lakehouse: Lakehouse, caplog: pytest.LogCaptureFixture
) -> None:
    lakehouse.overwrite_day(ROUTING_DECISIONS.name, decisions(2), DAY_DATE)
    stale = lakehouse.table(ROUTING_DECISIONS.name)  # this writer's view, soon out of date
    other = decisions(3, start=100)
    writer.merge_day(
        ROUTING_DECISIONS, Lakehouse(lakehouse.settings), other, DAY_DATE, LINEAGE, "main"
    )

    mine = decisions(4, start=200)
    with caplog.at_level(logging.INFO, logger="lakehouse.table.writer"):
        result = writer.merge_day(ROUTING_DECISIONS, stale, mine, DAY_DATE, LINEAGE, "main")
    assert "reading the day again" in caplog.text  # the first merge was computed from a stale read

    ids = _ids(lakehouse)
    assert len(ids) == len(set(ids)) == 9  # nothing of the concurrent commit was overwritten
    assert set(other.column("decision_id").to_pylist()) <= set(ids)
    assert set(mine.column("decision_id").to_pylist()) <= set(ids)
    assert result.added == 4 and result.rows.num_rows == 9


def test_two_concurrent_merges_of_one_day_keep_both_row_sets(lakehouse: Lakehouse) -> None:
    lakehouse.table(ROUTING_DECISIONS.name)
    batches = [decisions(30, start=0), decisions(30, start=1000)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def merge(batch: pa.Table) -> None:
        lh = Lakehouse(lakehouse.settings)
        table = lh.table(ROUTING_DECISIONS.name)
        barrier.wait()
        try:
            writer.merge_day(ROUTING_DECISIONS, table, batch, DAY_DATE, LINEAGE, "main")
        except BaseException as exc:  # reported to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=merge, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    ids = set(_ids(lakehouse))
    for batch in batches:
        assert set(batch.column("decision_id").to_pylist()) <= ids
    assert len(ids) == 60


def test_day_operations_refuse_an_unpartitioned_table(lakehouse: Lakehouse) -> None:
    from pyiceberg.schema import Schema
    from pyiceberg.types import StringType

    spec = register(
        TableSpec(
            name="test_unpartitioned_registry",
            schema=Schema(column(1, "model", StringType()), column(2, "uri", StringType())),
            key=("model",),
            description="an unpartitioned test table",
        )
    )
    assert not spec.partitioned and lakehouse.table(spec.name).spec().is_unpartitioned()
    rows = pa.table({"model": ["m1"], "uri": ["s3://m1"]})
    lakehouse.append(spec.name, rows)
    assert lakehouse.read(spec.name).num_rows == 1
    with pytest.raises(ConfigurationError, match="unpartitioned"):
        lakehouse.read(spec.name, day=date(2026, 11, 20))
    with pytest.raises(ConfigurationError, match="unpartitioned"):
        lakehouse.overwrite_day(spec.name, rows, date(2026, 11, 20))
    with pytest.raises(ConfigurationError, match="unpartitioned"):
        writer.merge_day(spec, lakehouse, rows, date(2026, 11, 20), LINEAGE, "main")
