"""Experiments across all aura tables: create, write, diff, publish all-or-nothing, drop."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest
from helpers import decisions, objstore_env

from lakehouse import Lakehouse, Settings
from lakehouse.exceptions import NotFastForwardError, RefError
from lakehouse.publish import experiments
from lakehouse.table import refs

DECISIONS, REJECTED = "routing_decisions", "routing_decisions_rejected"


def rejected(n: int, start: int = 0) -> pa.Table:
    return pa.table(
        {
            "stream_id": [f"{1700000000000 + start + i}-0" for i in range(n)],
            "stream": ["aura:events:routing"] * n,
            "rejected_at": [datetime(2026, 11, 20, 9, tzinfo=UTC)] * n,
            "reason": ["bad json"] * n,
        }
    )


def mains(lh: Lakehouse, tables: list[str]) -> dict[str, int | None]:
    return {t: refs.head(lh.table(t)) for t in tables}


def test_create_branches_every_table_and_records_one_experiment(lakehouse: Lakehouse) -> None:
    lakehouse.append(DECISIONS, decisions(3))

    exp = experiments.create(lakehouse, "exp-1", description="cheaper router")

    names = [s.name for s in experiments.data_specs()]
    assert exp.tables == sorted(names)
    assert {"routing_decisions", "routing_decisions_rejected"} <= set(names)
    assert "experiments" not in names
    for name in names:
        table = lakehouse.table(name)
        assert refs.head(table, "exp-1") == refs.head(table) == exp.bases[name]
    assert [e.name for e in experiments.list_experiments(lakehouse)] == ["exp-1"]
    history = lakehouse.read("experiments").to_pylist()
    assert [(r["experiment"], r["event"], r["description"]) for r in history] == [
        ("exp-1", "created", "cheaper router")
    ]
    with pytest.raises(RefError, match="already exists"):
        experiments.create(lakehouse, "exp-1")


def test_written_diffed_published_atomically(lakehouse: Lakehouse, settings: Settings) -> None:
    lakehouse.append(DECISIONS, decisions(4, quality=0.8))
    tables = [DECISIONS, REJECTED]
    experiments.create(lakehouse, "exp-2", tables=tables)
    before = mains(lakehouse, tables)

    on_branch = Lakehouse(settings.with_overrides(branch="exp-2"))  # as AURA_BRANCH=exp-2 does
    on_branch.append(DECISIONS, decisions(4, quality=1.0, start=100))
    on_branch.append(REJECTED, rejected(2))
    assert mains(lakehouse, tables) == before  # main untouched while the experiment runs

    by_table = {d.table: d for d in experiments.diff(lakehouse, "exp-2")}
    d = by_table[DECISIONS]
    assert (d.branch_snapshots, d.main_snapshots, d.rows_added, d.rows_removed) == (1, 0, 4, 0)
    assert (d.main_rows, d.branch_rows, d.fast_forward) == (4, 8, True)
    assert d.metrics["rows"] == (4.0, 8.0)
    assert d.metrics["quality_score mean"][0] == pytest.approx(0.8)
    assert d.metrics["quality_score mean"][1] == pytest.approx(0.9)
    assert by_table[REJECTED].rows_added == 2

    results = experiments.publish(lakehouse, "exp-2", run_id="abcdef0123456789")

    tag = "exp-2-published-abcdef01"
    assert {r.tag for r in results} == {tag}
    for name in tables:
        table = lakehouse.table(name)
        assert refs.head(table) == refs.head(table, "exp-2") == refs.head(table, tag)
    assert lakehouse.read(DECISIONS).num_rows == 8
    exp = experiments.get(lakehouse, "exp-2")
    assert (exp.status, exp.tag) == ("published", tag)
    assert exp.published[DECISIONS] == refs.head(lakehouse.table(DECISIONS))
    assert experiments.list_experiments(lakehouse) == []


def test_non_fast_forward_changes_no_table(lakehouse: Lakehouse, settings: Settings) -> None:
    lakehouse.append(DECISIONS, decisions(2))
    tables = [DECISIONS, REJECTED]
    experiments.create(lakehouse, "exp-3", tables=tables)
    on_branch = Lakehouse(settings.with_overrides(branch="exp-3"))
    on_branch.append(DECISIONS, decisions(1, start=50))
    on_branch.append(REJECTED, rejected(1))
    lakehouse.append(REJECTED, rejected(1, start=9))  # main of one table moves on
    before = mains(lakehouse, tables)

    with pytest.raises(NotFastForwardError, match="nothing was changed"):
        experiments.publish(lakehouse, "exp-3")

    assert mains(lakehouse, tables) == before  # not even the table that could fast-forward
    assert experiments.get(lakehouse, "exp-3").status == "open"
    diffs = {d.table: d for d in experiments.diff(lakehouse, "exp-3", metrics=False)}
    assert (diffs[REJECTED].fast_forward, diffs[DECISIONS].fast_forward) == (False, True)


def test_publish_failing_midway_moves_back_refs_already_moved(
    lakehouse: Lakehouse, settings: Settings
) -> None:
    lakehouse.append(DECISIONS, decisions(2))
    tables = [DECISIONS, REJECTED]  # published in this order
    experiments.create(lakehouse, "exp-4", tables=tables)
    on_branch = Lakehouse(settings.with_overrides(branch="exp-4"))
    on_branch.append(DECISIONS, decisions(2, start=10))
    on_branch.append(REJECTED, rejected(2))
    before = mains(lakehouse, tables)
    other_writer = Lakehouse(settings)
    reached: list[str] = []

    def concurrent_write(table: str) -> None:
        """After the validation, another writer commits to main of the second table."""
        reached.append(table)
        if table == REJECTED:
            other_writer.append(REJECTED, rejected(1, start=77))

    with pytest.raises(RefError, match="rolled back the tables already published"):
        experiments.publish(lakehouse, "exp-4", tag="release-x", on_table=concurrent_write)

    assert reached == tables
    assert refs.head(lakehouse.table(DECISIONS)) == before[DECISIONS]  # moved, then moved back
    assert refs.head(lakehouse.table(REJECTED)) != refs.head(lakehouse.table(REJECTED), "exp-4")
    for name in tables:
        assert refs.head(lakehouse.table(name), "release-x") is None
    assert lakehouse.read(DECISIONS).num_rows == 2
    assert experiments.get(lakehouse, "exp-4").status == "open"


def test_drop_removes_every_branch_and_keeps_main(lakehouse: Lakehouse, settings: Settings) -> None:
    lakehouse.append(DECISIONS, decisions(2))
    experiments.create(lakehouse, "exp-5", tables=[DECISIONS, REJECTED])
    Lakehouse(settings.with_overrides(branch="exp-5")).append(DECISIONS, decisions(5, start=9))
    before = mains(lakehouse, [DECISIONS, REJECTED])

    assert experiments.drop(lakehouse, "exp-5") == [DECISIONS, REJECTED]

    assert mains(lakehouse, [DECISIONS, REJECTED]) == before
    assert refs.head(lakehouse.table(DECISIONS), "exp-5") is None
    assert experiments.get(lakehouse, "exp-5").status == "dropped"
    experiments.create(lakehouse, "exp-5", tables=[DECISIONS])  # the name is free again


def test_release_tags_every_table_with_retention(lakehouse: Lakehouse) -> None:
    lakehouse.append(DECISIONS, decisions(2))

    tagged = experiments.tag_release(lakehouse, "v1.0", max_ref_age_ms=7 * 86_400_000)

    assert set(tagged) == {s.name for s in experiments.data_specs()}
    tags = experiments.list_tags(lakehouse)
    assert {t.table for t in tags} == {f"aura.{name}" for name in tagged}
    assert all(t.name == "v1.0" and t.max_ref_age_ms == 7 * 86_400_000 for t in tags)
    assert tagged[DECISIONS] == refs.head(lakehouse.table(DECISIONS))
    with pytest.raises(RefError, match="immutable"):
        experiments.tag_release(lakehouse, "v1.0")


def test_cli_branch_and_tag_round_trip(lakehouse: Lakehouse, settings: Settings) -> None:
    from click.testing import CliRunner

    from aura_assets.cli import main

    lakehouse.append(DECISIONS, decisions(2))
    env = {
        "AURA_HOME": str(settings.home),
        "AURA_CATALOG_URI": settings.catalog_uri,
        "AURA_CATALOG_NAME": settings.catalog_name,
        "AURA_WAREHOUSE": settings.warehouse,
    } | objstore_env()
    runner = CliRunner(env=env)

    def aura(*args: str) -> str:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    assert "branched" in aura("branch", "create", "cli-exp", "--table", DECISIONS)
    Lakehouse(settings.with_overrides(branch="cli-exp")).append(DECISIONS, decisions(3, start=9))
    assert "cli-exp" in aura("branch", "list")
    assert "fast-forward" in aura("branch", "diff", "cli-exp")
    assert "published experiment cli-exp" in aura("branch", "publish", "cli-exp", "--tag", "t1")
    assert refs.head(lakehouse.table(DECISIONS)) == refs.head(lakehouse.table(DECISIONS), "t1")
    assert "tagged" in aura("tag", "create", "rel-1", "--retention-days", "2")
    assert "rel-1" in aura("tag", "list")
    assert "dropped" in aura("branch", "drop", "cli-exp")
    failed = runner.invoke(main, ["branch", "publish", "missing"])
    assert failed.exit_code == 1 and "no experiment 'missing'" in failed.output


def test_one_name_rule_for_creating_and_reading_refs(lakehouse: Lakehouse) -> None:
    lakehouse.append(DECISIONS, decisions(2))
    longest = "e" * refs.MAX_REF_NAME
    experiments.create(lakehouse, longest, tables=[DECISIONS])
    with lakehouse.sql(ref=longest) as session:  # what can be created can be read
        assert session.execute(f"SELECT count(*) FROM {DECISIONS}").fetchone() == (2,)
    too_long = longest + "e"
    with pytest.raises(RefError, match=f"at most {refs.MAX_REF_NAME} characters"):
        experiments.create(lakehouse, too_long, tables=[DECISIONS])
    with pytest.raises(RefError, match=f"at most {refs.MAX_REF_NAME} characters"):
        lakehouse.sql(ref=too_long)
    # Its publish tag stays within the limit too.
    assert len(experiments.publish_tag(longest, "0123456789abcdef")) <= refs.MAX_REF_NAME


@pytest.mark.parametrize("name", ["audit-routing-1", "run-42", "HEAD", "head", "main", "Audit-x"])
def test_names_the_system_uses_are_refused_for_experiments(lakehouse: Lakehouse, name: str) -> None:
    lakehouse.append(DECISIONS, decisions(2))
    with pytest.raises(RefError, match="reserved"):
        experiments.create(lakehouse, name, tables=[DECISIONS])
    with pytest.raises(RefError, match="reserved"):
        experiments.tag_release(lakehouse, name)
    assert refs.head(lakehouse.table(DECISIONS), name) is None or name == "main"
    refs.validate_ref_name(name, user=False)  # the system may still use (and read) them


def test_restore_as_of_out_of_range_is_one_line(in_aura_env: Settings) -> None:
    from click.testing import CliRunner

    from aura_assets.cli import main

    for value in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:30:00-01:00"):
        result = CliRunner().invoke(main, ["checkpoints", "restore", "t-1", "--as-of", value])
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit), result.exception
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "--as-of" in lines[0], result.output


def test_diff_is_net_by_key_for_a_day_rewrite(lakehouse: Lakehouse, settings: Settings) -> None:
    """A day rewritten with 3 more rows, 1 changed and 1 dropped: +3, -1, ~1, not +all/-all."""
    day = datetime(2026, 11, 20, tzinfo=UTC).date()
    original = decisions(10)
    lakehouse.overwrite_day(DECISIONS, original, day)
    experiments.create(lakehouse, "rewrite", tables=[DECISIONS])

    kept = original.slice(0, 9)  # the 10th row is removed
    quality = kept.column("quality_score").to_pylist()
    quality[0] = 0.1  # one row changes a value
    kept = kept.set_column(
        kept.schema.get_field_index("quality_score"), "quality_score", pa.array(quality)
    )
    rewritten = pa.concat_tables([kept, decisions(3, start=50)])
    Lakehouse(settings.with_overrides(branch="rewrite")).overwrite_day(DECISIONS, rewritten, day)

    (d,) = experiments.diff(lakehouse, "rewrite", metrics=False)
    assert (d.rows_added, d.rows_removed, d.rows_changed) == (3, 1, 1)
    assert (d.main_rows, d.branch_rows) == (10, 12)
