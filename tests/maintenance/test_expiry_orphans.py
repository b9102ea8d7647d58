"""Snapshot expiry frees bytes, orphan removal respects grace and references, history."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from helpers import DAYS, OBJSTORE_SKIP, TABLE, Batch, duckdb_iceberg, sorted_rows

from lakehouse import Lakehouse, maintenance
from lakehouse.table import refs, storage


def _disk(lh: Lakehouse) -> tuple[int, int]:
    files = maintenance.list_location(lh.table(TABLE))
    return len(files), sum(f.size for f in files)


def test_expiry_frees_bytes_and_keeps_refs_readable(small_files: Lakehouse, batch: Batch) -> None:
    lh = small_files
    table = lh.table(TABLE)
    tag_id = refs.create_tag(table, "release-1")  # holds the 12 small files
    tagged = lh.read(TABLE, snapshot_id=tag_id)
    maintenance.compact(lh, TABLE)
    lh.append(TABLE, batch(5, DAYS[1], start=6000), branch="audit")
    audit = lh.read(TABLE, branch="audit")
    lh.append(TABLE, batch(9, DAYS[0], start=7000))  # after compaction
    refs.drop_tag(lh.table(TABLE), "release-1")  # its snapshot is now unreferenced
    main_rows = lh.read(TABLE)
    files_before, bytes_before = _disk(lh)

    dry = maintenance.expire_snapshots(
        lh, TABLE, older_than=timedelta(0), retain_last=1, dry_run=True
    )
    assert _disk(lh) == (files_before, bytes_before), "a dry run deleted files"
    report = maintenance.expire_snapshots(lh, TABLE, older_than=timedelta(0), retain_last=1)

    assert report.expired_snapshot_ids == dry.expired_snapshot_ids
    assert report.snapshots_before == 16 and report.snapshots_after == 2  # main head + audit head
    assert report.data_files_deleted == 12  # the small files only the old snapshots held
    files_after, bytes_after = _disk(lh)
    table = lh.table(TABLE)  # the expiry commit wrote one new metadata file
    new_metadata = len(table.io.new_input(table.metadata_location))
    assert bytes_before - (bytes_after - new_metadata) == report.bytes_freed > 0
    assert files_before - (files_after - 1) == report.files_deleted
    assert dry.bytes_freed == report.bytes_freed
    # every ref still reads what it read before, through pyiceberg and DuckDB
    assert sorted_rows(lh.read(TABLE), "decision_id") == sorted_rows(main_rows, "decision_id")
    assert sorted_rows(lh.read(TABLE, branch="audit"), "decision_id") == sorted_rows(
        audit, "decision_id"
    )
    table = lh.table(TABLE)
    con = duckdb_iceberg()
    for ref in ("main", "audit"):
        n = con.execute(
            f"SELECT count(*) FROM iceberg_scan('{table.metadata_location}', "
            f"snapshot_from_id => {refs.head(table, ref)})"
        ).fetchone()
        assert n == (lh.read(TABLE, branch=ref).num_rows,)
    assert tagged.num_rows == 240


def test_expiry_never_removes_a_tagged_snapshot(small_files: Lakehouse) -> None:
    lh = small_files
    table = lh.table(TABLE)
    first = refs.ancestry(table, refs.head(table))[-1].snapshot_id
    refs.create_tag(table, "first", source=first)
    maintenance.compact(lh, TABLE)

    report = maintenance.expire_snapshots(lh, TABLE, older_than=timedelta(0), retain_last=1)

    assert first not in report.expired_snapshot_ids
    assert lh.read(TABLE, branch="first").num_rows == 20
    assert report.data_files_deleted == 11  # the tagged snapshot's one file stays


def test_recent_snapshots_are_kept_by_age_and_count(small_files: Lakehouse) -> None:
    lh = small_files
    assert maintenance.expire_snapshots(lh, TABLE).expired_snapshot_ids == []  # all < 7 days
    report = maintenance.expire_snapshots(lh, TABLE, older_than=timedelta(0), retain_last=4)
    assert report.snapshots_after == 4
    assert report.data_files_deleted == 0  # appends only: every file is still live


def _stray(lh: Lakehouse, name: str, age: timedelta) -> Path:
    location = Path(urlsplit(lh.table(TABLE).metadata.location).path)
    path = location / "data" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * 1000)
    when = time.time() - age.total_seconds()
    os.utime(path, (when, when))
    return path


@OBJSTORE_SKIP  # it sets files' modification times back; the object store keeps its own
def test_orphans_older_than_grace_are_deleted(small_files: Lakehouse) -> None:
    lh = small_files
    old = _stray(lh, "old-orphan.parquet", timedelta(days=4))
    young = _stray(lh, "young-orphan.parquet", timedelta(hours=1))
    rows = lh.read(TABLE)
    files_before = _disk(lh)[0]

    dry = maintenance.remove_orphans(lh, TABLE, dry_run=True)
    assert [Path(urlsplit(p).path).name for p in dry.orphans] == ["old-orphan.parquet"]
    assert old.exists() and _disk(lh)[0] == files_before

    report = maintenance.remove_orphans(lh, TABLE)
    assert report.bytes_freed == 1000 and report.too_young == 1
    assert not old.exists() and young.exists()
    assert sorted_rows(lh.read(TABLE), "decision_id") == sorted_rows(rows, "decision_id")

    # with no grace at all, referenced files are still never touched
    report = maintenance.remove_orphans(lh, TABLE, grace=timedelta(0))
    assert [Path(urlsplit(p).path).name for p in report.orphans] == ["young-orphan.parquet"]
    assert sorted_rows(lh.read(TABLE), "decision_id") == sorted_rows(rows, "decision_id")


def test_orphan_removal_lists_the_store_and_deletes_what_no_metadata_names(
    small_files: Lakehouse,
) -> None:
    """On a directory or a bucket alike: the listing finds strays, the grace keeps young ones,
    and what is reported deleted is gone from the listing while every referenced file stays."""
    lh = small_files
    table = lh.table(TABLE)
    props = table.io.properties
    strays = [storage.child(table.metadata.location, f"data/stray-{i}.parquet") for i in (1, 2)]
    for path in strays:
        storage.write_bytes(path, props, b"x" * 1000)
    rows = lh.read(TABLE)
    before = {f.path for f in maintenance.list_location(table)}
    assert set(strays) <= before

    kept = maintenance.remove_orphans(lh, TABLE)  # both younger than the 3-day grace
    assert kept.orphans == [] and kept.too_young == 2
    dry = maintenance.remove_orphans(lh, TABLE, grace=timedelta(0), dry_run=True)
    assert sorted(dry.orphans) == sorted(strays)
    assert {f.path for f in maintenance.list_location(table)} == before

    report = maintenance.remove_orphans(lh, TABLE, grace=timedelta(0))
    assert sorted(report.orphans) == sorted(strays) and report.bytes_freed == 2000
    assert {f.path for f in maintenance.list_location(table)} == before - set(strays)
    assert not any(storage.exists(path, props) for path in strays)
    assert sorted_rows(lh.read(TABLE), "decision_id") == sorted_rows(rows, "decision_id")


def test_history_shows_lineage_and_deltas(small_files: Lakehouse, batch: Batch) -> None:
    lh = small_files
    lh.append(TABLE, batch(3, DAYS[0], start=4000), branch="audit")
    maintenance.compact(lh, TABLE)

    entries = maintenance.history(lh, TABLE)
    assert len(entries) == 15
    first = entries[0]
    assert (first.asset, first.run_id, first.partition) == ("ingest", "run-0", "2026-11-20")
    assert (first.operation, first.added_rows, first.added_files) == ("append", 20, 1)
    last = entries[-1]
    assert last.aura_operation == "compact" and last.deleted_files == 6 and last.added_files == 1
    assert last.refs == ("main",) and last.total_rows == 240

    audit = maintenance.history(lh, TABLE, ref="audit")
    assert len(audit) == 13 and audit[-1].refs == ("audit",)
    assert all(e.aura_operation != "compact" for e in audit)


def test_maintain_reports_before_and_after(small_files: Lakehouse) -> None:
    lh = small_files
    dry = maintenance.maintain(lh, TABLE, older_than=timedelta(0), retain_last=1, dry_run=True)
    assert dry.before == dry.after
    report = maintenance.maintain(lh, TABLE, older_than=timedelta(0), retain_last=1)
    figures = report.as_dict()
    assert figures["before.live_data_files"] == 12 and figures["after.live_data_files"] == 2
    assert figures["after.snapshots"] < figures["before.snapshots"]
    assert figures["after.stored_bytes"] < figures["before.stored_bytes"]
    assert lh.read(TABLE).num_rows == 240
