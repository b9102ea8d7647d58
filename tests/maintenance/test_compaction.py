"""Compaction on real Iceberg: same rows, fewer files, refs intact, concurrent writers kept."""

from __future__ import annotations

import pyarrow as pa
import pytest
from helpers import DAYS, TABLE, Batch, duckdb_iceberg, sorted_rows

from lakehouse import Lakehouse, Lineage, maintenance
from lakehouse.table import refs


def _files(lh: Lakehouse, ref: str = "main") -> list[str]:
    table = lh.table(TABLE)
    return [t.file.file_path for t in table.scan(snapshot_id=refs.head(table, ref)).plan_files()]


def test_compaction_keeps_rows_and_reduces_files(small_files: Lakehouse) -> None:
    lh = small_files
    before = lh.read(TABLE)
    assert len(_files(lh)) == 12
    assert maintenance.small_file_counts(lh, TABLE) == {
        "ts_day=2026-11-20": 6,
        "ts_day=2026-11-21": 6,
    }

    report = maintenance.compact(lh, TABLE, lineage=Lineage(asset="table_maintenance"))

    assert [p.partition for p in report.partitions] == ["ts_day=2026-11-20", "ts_day=2026-11-21"]
    assert report.files_removed == 12 and report.files_added == 2
    assert not report.conflicts
    assert len(_files(lh)) == 2
    after = lh.read(TABLE)
    assert sorted_rows(after, "decision_id") == sorted_rows(before, "decision_id")
    head = lh.table(TABLE).current_snapshot()
    assert head is not None and head.summary is not None
    assert head.summary["aura.operation"] == "compact"
    assert head.summary["aura.asset"] == "table_maintenance"
    assert head.summary["total-records"] == str(before.num_rows)
    # DuckDB reads the compacted snapshot with the same answer
    con = duckdb_iceberg()
    table = lh.table(TABLE)
    n = con.execute(
        "SELECT count(*), count(DISTINCT decision_id) "
        f"FROM iceberg_scan('{table.metadata_location}')"
    ).fetchone()
    assert n == (before.num_rows, before.num_rows)
    # nothing left to do: a second run is a no-op
    assert maintenance.compact(lh, TABLE).partitions == []


def test_target_size_splits_output_and_min_files_skips(small_files: Lakehouse) -> None:
    lh = small_files
    sizes = [t.file.file_size_in_bytes for t in lh.table(TABLE).scan().plan_files()]
    target = 3 * max(sizes)  # three small files per output file

    report = maintenance.compact(lh, TABLE, target_file_bytes=target)
    assert report.files_added == 4  # 6 files per day, three per output file
    assert maintenance.compact(lh, TABLE, target_file_bytes=target, min_files=3).partitions == []


def test_dry_run_changes_nothing(small_files: Lakehouse) -> None:
    lh = small_files
    head = refs.head(lh.table(TABLE))
    files = sorted(_files(lh))

    report = maintenance.compact(lh, TABLE, dry_run=True)

    assert report.dry_run and report.partitions[0].files_before == 6
    assert refs.head(lh.table(TABLE)) == head
    assert sorted(_files(lh)) == files


def test_tags_and_other_branches_keep_their_snapshots(small_files: Lakehouse, batch: Batch) -> None:
    lh = small_files
    table = lh.table(TABLE)
    tag_id = refs.create_tag(table, "before-compaction")
    lh.append(TABLE, batch(5, DAYS[0], start=9000), branch="audit")
    lh.append(TABLE, batch(5, DAYS[0], start=9100), branch="audit")
    audit_id = refs.head(lh.table(TABLE), "audit")
    tagged_rows = lh.read(TABLE, snapshot_id=tag_id)

    maintenance.compact(lh, TABLE)

    table = lh.table(TABLE)
    assert refs.head(table, "before-compaction") == tag_id
    assert refs.head(table, "audit") == audit_id
    assert sorted_rows(lh.read(TABLE, branch="before-compaction"), "decision_id") == sorted_rows(
        tagged_rows, "decision_id"
    )


def test_compaction_on_a_branch_moves_only_that_branch(
    small_files: Lakehouse, batch: Batch
) -> None:
    lh = small_files
    for i in range(3):
        lh.append(TABLE, batch(4, DAYS[1], start=5000 + 10 * i), branch="audit")
    main_id = refs.head(lh.table(TABLE))
    branch_rows = lh.read(TABLE, branch="audit")

    report = maintenance.compact(lh, TABLE, branch="audit")

    assert report.files_added == 2
    assert refs.head(lh.table(TABLE)) == main_id
    assert len(_files(lh, "audit")) == 2
    assert sorted_rows(lh.read(TABLE, branch="audit"), "decision_id") == sorted_rows(
        branch_rows, "decision_id"
    )


def test_concurrent_append_during_compaction_is_kept(
    small_files: Lakehouse, settings, batch: Batch
) -> None:  # type: ignore[no-untyped-def]
    lh = small_files
    other = Lakehouse(settings)  # another writer with its own table objects
    late = batch(7, DAYS[0], start=7000)
    appended: list[str] = []

    def append_meanwhile(group: maintenance.CompactionGroup) -> None:
        if not appended:
            other.append(TABLE, late)
            appended.append(group.partition)

    before = lh.read(TABLE)
    report = maintenance.compact(lh, TABLE, on_rewritten=append_meanwhile)

    assert not report.conflicts
    after = lh.read(TABLE)
    ids = before.column("decision_id").to_pylist() + late.column("decision_id").to_pylist()
    assert sorted(after.column("decision_id").to_pylist()) == sorted(ids)
    old_ids = set(before.column("decision_id").to_pylist())
    kept = after.filter(pa.array([i in old_ids for i in after.column("decision_id").to_pylist()]))
    assert sorted_rows(kept, "decision_id") == sorted_rows(before, "decision_id")
    assert len(_files(lh)) == 3  # two compacted files plus the concurrent append's


def test_concurrent_overwrite_of_the_partition_wins_cleanly(
    small_files: Lakehouse, settings, batch: Batch
) -> None:  # type: ignore[no-untyped-def]
    lh = small_files
    other = Lakehouse(settings)
    replacement = batch(3, DAYS[0], start=8000)

    def overwrite_meanwhile(group: maintenance.CompactionGroup) -> None:
        if group.partition == "ts_day=2026-11-20":
            other.overwrite_day(TABLE, replacement, DAYS[0].date())

    report = maintenance.compact(lh, TABLE, on_rewritten=overwrite_meanwhile)

    assert [c.partition for c in report.conflicts] == ["ts_day=2026-11-20"]
    day = lh.read(TABLE, day=DAYS[0].date())
    assert sorted(day.column("decision_id").to_pylist()) == sorted(
        replacement.column("decision_id").to_pylist()
    )
    assert report.files_added == 1  # the other day was compacted
    assert lh.read(TABLE, day=DAYS[1].date()).num_rows == 120
    stored = {p for p in _files(lh)}
    written = [p for p in maintenance.list_location(lh.table(TABLE)) if "compact-" in p.path]
    assert all(f.path in stored for f in written), "the abandoned rewrite left files behind"


def test_compacting_a_tag_is_refused(small_files: Lakehouse) -> None:
    from lakehouse.exceptions import RefError

    refs.create_tag(small_files.table(TABLE), "v1")
    with pytest.raises(RefError, match="no branch 'v1'"):
        maintenance.compact(small_files, TABLE, branch="v1")
