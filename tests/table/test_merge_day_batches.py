"""merge_day_batches: the keyed day merge of a stream of batches (real Iceberg files)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from helpers import DAY, decisions
from pyiceberg.table import TableProperties

from lakehouse import Lakehouse, Lineage
from lakehouse.exceptions import ValidationError
from lakehouse.routing import ROUTING_DECISIONS
from lakehouse.table import streaming

DAY_DATE = DAY.date()
LINEAGE = Lineage(asset="test", partition=DAY_DATE.isoformat())


@pytest.fixture
def small_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """A row group per batch and a file per row group, so masks span several staged files."""
    monkeypatch.setattr(streaming, "_ROW_GROUP_BYTES", 1)
    monkeypatch.setattr(TableProperties, "WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT", 1)


def _batches(*tables: pa.Table) -> Iterator[pa.RecordBatch]:
    for table in tables:
        yield from table.to_batches(max_chunksize=2)


def _ids(lh: Lakehouse) -> list[str]:
    return lh.read(ROUTING_DECISIONS.name, day=DAY_DATE).column("decision_id").to_pylist()


def _parquet_on_disk(lh: Lakehouse) -> set[str]:
    location = lh.table(ROUTING_DECISIONS.name).location().removeprefix("file://")
    return {str(p) for p in Path(location).rglob("*.parquet")}


def _parquet_in_table(lh: Lakehouse) -> set[str]:
    files = lh.table(ROUTING_DECISIONS.name).inspect.files().column("file_path").to_pylist()
    return {f.removeprefix("file://") for f in files}


@pytest.mark.usefixtures("small_files")
def test_first_row_of_a_key_wins_existing_rows_are_kept_in_one_commit(
    lakehouse: Lakehouse,
) -> None:
    first = decisions(3)
    lakehouse.overwrite_day(ROUTING_DECISIONS.name, first, DAY_DATE)
    snapshots = len(lakehouse.table(ROUTING_DECISIONS.name).metadata.snapshots)
    again = first.set_column(
        first.schema.get_field_index("quality_score"), "quality_score", pa.array([0.1] * 3)
    )
    fresh = decisions(5, start=10)
    result = streaming.merge_day_batches(
        ROUTING_DECISIONS,
        lakehouse,
        _batches(fresh.slice(0, 1), again, fresh, fresh.slice(2, 2)),
        DAY_DATE,
        LINEAGE,
        "main",
    )
    assert result.added == 5 and result.write is not None
    assert len(lakehouse.table(ROUTING_DECISIONS.name).metadata.snapshots) == snapshots + 1
    rows = lakehouse.read(ROUTING_DECISIONS.name, day=DAY_DATE).to_pylist()
    assert sorted(r["decision_id"] for r in rows) == sorted(
        first.column("decision_id").to_pylist() + fresh.column("decision_id").to_pylist()
    )
    assert all(r["quality_score"] == 0.9 for r in rows)  # the stored rows were kept
    assert _parquet_on_disk(lakehouse) == _parquet_in_table(lakehouse)  # rewritten stages gone

    replay = streaming.merge_day_batches(
        ROUTING_DECISIONS, lakehouse, _batches(again, fresh), DAY_DATE, LINEAGE, "main"
    )
    assert (replay.added, replay.write) == (0, None)
    assert _parquet_on_disk(lakehouse) == _parquet_in_table(lakehouse)


def test_a_merge_read_before_a_concurrent_commit_reads_the_keys_again(
    lakehouse: Lakehouse, caplog: pytest.LogCaptureFixture
) -> None:
    lakehouse.overwrite_day(ROUTING_DECISIONS.name, decisions(2), DAY_DATE)
    stale = lakehouse.table(ROUTING_DECISIONS.name)  # this writer's view, soon out of date
    other = decisions(3, start=100)
    streaming.merge_day_batches(
        ROUTING_DECISIONS, Lakehouse(lakehouse.settings), _batches(other), DAY_DATE, LINEAGE, "main"
    )
    mine = decisions(4, start=200)
    with caplog.at_level(logging.INFO, logger="lakehouse.table.streaming"):
        result = streaming.merge_day_batches(
            ROUTING_DECISIONS, stale, _batches(other, mine), DAY_DATE, LINEAGE, "main"
        )
    assert "reading the day's keys again" in caplog.text
    ids = _ids(lakehouse)
    assert len(ids) == len(set(ids)) == 9  # the concurrent rows neither lost nor doubled
    assert result.added == 4


def test_a_failed_stream_leaves_the_previous_snapshot_and_no_staged_files(
    lakehouse: Lakehouse,
) -> None:
    lakehouse.overwrite_day(ROUTING_DECISIONS.name, decisions(2), DAY_DATE)
    before = lakehouse.table(ROUTING_DECISIONS.name).metadata.current_snapshot_id
    late = decisions(1, start=50)
    late = late.set_column(
        late.schema.get_field_index("ts"),
        "ts",
        pa.array([DAY.replace(day=DAY.day + 1)], late.schema.field("ts").type),
    )
    with pytest.raises(ValidationError):
        streaming.merge_day_batches(
            ROUTING_DECISIONS,
            lakehouse,
            _batches(decisions(4, start=10), late),
            DAY_DATE,
            LINEAGE,
            "main",
        )
    table = lakehouse.table(ROUTING_DECISIONS.name)
    assert table.metadata.current_snapshot_id == before
    assert _parquet_on_disk(lakehouse) == _parquet_in_table(lakehouse)
