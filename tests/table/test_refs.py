"""Branches, tags and fast-forward publishes on real Iceberg tables (lakehouse.table.refs)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from helpers import decisions, duckdb_iceberg

from lakehouse import Lakehouse, Settings, sql
from lakehouse.exceptions import CommitConflictError, NotFastForwardError, RefError
from lakehouse.table import refs

TABLE = "routing_decisions"


@pytest.fixture
def lh(lakehouse: Lakehouse) -> Lakehouse:
    return lakehouse


@contextmanager
def another(settings: Settings) -> Iterator[Lakehouse]:
    """A second writer with its own table objects (as another thread or process would have)."""
    yield Lakehouse(settings)


def test_missing_branch_is_created_from_main_on_write(lh: Lakehouse) -> None:
    lh.append(TABLE, decisions(3))
    main_id = refs.head(lh.table(TABLE))

    lh.append(TABLE, decisions(2, start=10), branch="feature")

    table = lh.table(TABLE)
    assert refs.head(table) == main_id, "a branch write must not move main"
    assert lh.read(TABLE, branch="feature").num_rows == 5  # main's rows + the new ones
    assert lh.read(TABLE).num_rows == 3
    assert refs.is_ancestor(table, main_id, refs.head(table, "feature"))  # type: ignore[arg-type]


def test_branch_of_an_empty_table_starts_from_an_empty_root(lh: Lakehouse) -> None:
    lh.append(TABLE, decisions(4), branch="audit-1")

    table = lh.table(TABLE)
    assert lh.read(TABLE).num_rows == 0
    assert lh.read(TABLE, branch="audit-1").num_rows == 4
    result = refs.publish(table, "audit-1")
    assert result.moved
    assert lh.read(TABLE).num_rows == 4


def test_publish_fast_forwards_main_and_tags(lh: Lakehouse) -> None:
    lh.append(TABLE, decisions(2))
    table = lh.table(TABLE)
    refs.create_branch(table, "exp")
    lh.append(TABLE, decisions(3, start=5), branch="exp")
    head = refs.head(lh.table(TABLE), "exp")

    result = refs.publish(table, "exp", tag="run-42", tag_max_ref_age_ms=86_400_000)

    assert (result.moved, result.snapshot_id, result.tag) == (True, head, "run-42")
    assert refs.head(table) == head
    assert refs.head(table, "run-42") == head
    tag = next(r for r in refs.list_refs(table, "tag") if r.name == "run-42")
    assert tag.max_ref_age_ms == 86_400_000
    assert tag.expires_at_ms == tag.snapshot_timestamp_ms + 86_400_000
    # publishing again is a no-op, not an error
    assert not refs.publish(table, "exp").moved


def test_non_fast_forward_is_refused_and_main_untouched(lh: Lakehouse) -> None:
    lh.append(TABLE, decisions(2))
    table = lh.table(TABLE)
    refs.create_branch(table, "exp")
    lh.append(TABLE, decisions(1, start=5), branch="exp")
    lh.append(TABLE, decisions(1, start=9))  # main moves on: branches diverged
    main_before = refs.head(lh.table(TABLE))

    with pytest.raises(NotFastForwardError, match="Re-create the branch"):
        refs.publish(table, "exp")

    assert refs.head(lh.table(TABLE)) == main_before


def test_move_ref_requires_the_ref_it_saw(lh: Lakehouse) -> None:
    lh.append(TABLE, decisions(1))
    lh.append(TABLE, decisions(1, start=3), branch="exp")
    stale = lh.table(TABLE)  # this writer's view of the catalog
    exp_head, seen_main = refs.head(stale, "exp"), refs.head(stale)
    with another(lh.settings) as other:
        other.append(TABLE, decisions(1, start=7))  # another writer moves main

    with pytest.raises(CommitConflictError, match="moved"):
        # the commit's requirement AssertRefSnapshotId(main == seen_main) fails in the catalog
        refs.move_ref(stale, "main", exp_head, expected=seen_main)  # type: ignore[arg-type]
    assert refs.head(lh.table(TABLE)) not in (exp_head, seen_main)


def test_concurrent_publishes_of_one_table_are_safe(lh: Lakehouse, settings: Settings) -> None:
    lh.append(TABLE, decisions(2))
    base = refs.head(lh.table(TABLE))
    for name in ("a", "b", "c", "d"):
        lh.append(TABLE, decisions(1, start=ord(name)), branch=name)
    outcomes: dict[str, str] = {}

    def publish(name: str) -> None:
        with another(settings) as own:  # each thread has its own catalog connection
            try:
                refs.publish(own.table(TABLE), name)
                outcomes[name] = "published"
            except NotFastForwardError:
                outcomes[name] = "refused"

    threads = [threading.Thread(target=publish, args=(n,)) for n in ("a", "b", "c", "d")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(outcomes.values()) == ["published", "refused", "refused", "refused"]
    winner = next(n for n, o in outcomes.items() if o == "published")
    table = lh.table(TABLE)
    assert refs.head(table) == refs.head(table, winner)
    assert [s.snapshot_id for s in refs.ancestry(table, refs.head(table))][1] == base
    assert lh.read(TABLE).num_rows == 3


def test_concurrent_publishes_of_the_same_branch_move_main_once(
    lh: Lakehouse, settings: Settings
) -> None:
    lh.append(TABLE, decisions(2))
    lh.append(TABLE, decisions(2, start=5), branch="exp")
    results: list[refs.PublishResult] = []

    def publish() -> None:
        with another(settings) as own:
            results.append(refs.publish(own.table(TABLE), "exp"))

    threads = [threading.Thread(target=publish) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sum(r.moved for r in results) == 1
    assert len(results) == 3
    assert lh.read(TABLE).num_rows == 4


def test_tags_branches_listing_and_retention(lh: Lakehouse) -> None:
    lh.append(TABLE, decisions(1))
    table = lh.table(TABLE)
    main_id = refs.head(table)
    refs.create_tag(table, "release-1", max_ref_age_ms=1000)
    refs.create_tag(table, "keep")
    refs.create_branch(table, "exp")

    listed = {(r.name, r.kind) for r in refs.list_refs(table)}
    assert listed == {("main", "branch"), ("exp", "branch"), ("release-1", "tag"), ("keep", "tag")}
    with pytest.raises(RefError, match="already has"):
        refs.create_tag(table, "keep")
    with pytest.raises(RefError, match="tags are read-only"):
        lh.append(TABLE, decisions(1), branch="keep")
    with pytest.raises(RefError, match="not a valid"):
        refs.create_branch(table, "bad name")

    release = next(r for r in refs.list_refs(table) if r.name == "release-1")
    assert refs.expire_refs(table, now_ms=release.snapshot_timestamp_ms + 500) == []
    assert refs.expire_refs(table, now_ms=release.snapshot_timestamp_ms + 5000) == ["release-1"]
    assert refs.head(table, "keep") == main_id
    assert refs.drop_branch(table, "exp")
    assert not refs.drop_branch(table, "exp", missing_ok=True)
    with pytest.raises(RefError):
        refs.drop_branch(table, "main")


def test_duckdb_reads_a_branch_and_a_tag(lh: Lakehouse) -> None:
    lh.append(TABLE, decisions(2))
    table = lh.table(TABLE)
    refs.create_tag(table, "v1")
    lh.append(TABLE, decisions(3, start=5), branch="exp")
    table.refresh()

    con = duckdb_iceberg()

    def count(ref: str) -> int:
        snapshot_id = refs.head(table, ref)  # DuckDB has no refs: resolve to a snapshot id
        row = con.execute(
            "SELECT count(*) FROM iceberg_scan(?, snapshot_from_id => ?)",
            [table.metadata_location, snapshot_id],
        ).fetchone()
        return int(row[0])  # type: ignore[index]

    assert (count("v1"), count("exp"), count("main")) == (2, 5, 2)
    with sql.connect(lh.settings, ref="exp") as session:
        assert session.execute(f"SELECT count(*) FROM {TABLE}").fetchone() == (5,)


def test_a_commit_between_loading_a_table_and_finding_its_head_does_not_break_a_read(
    lh: Lakehouse, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a 4-runs-at-once backfill: a read loaded the table, another process committed,
    and the head looked up in a second load was a snapshot the first load did not know
    ("Snapshot not found"). The head now comes from the table the read scans."""
    lh.append(TABLE, decisions(3))
    load = Lakehouse.table

    def load_then_another_commits(self: Lakehouse, name: str):  # type: ignore[no-untyped-def]
        table = load(self, name)
        if self is lh:
            with another(settings) as other:
                other.append(TABLE, decisions(2, start=10))
        return table

    monkeypatch.setattr(Lakehouse, "table", load_then_another_commits)
    assert lh.read(TABLE).num_rows == 3  # the head of the load it scans, not the newer one
    table, head = lh.table_at_head(TABLE)
    assert table.snapshot_by_id(head) is not None  # type: ignore[arg-type]
    assert lh.info(TABLE).rows == 7
    monkeypatch.undo()
    assert lh.read(TABLE).num_rows == 9
