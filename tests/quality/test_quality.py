"""Great-expectations suites, the validation history and write-audit-publish (no Dagster)."""

from __future__ import annotations

import threading
from datetime import date

import pyarrow as pa
import pytest
from helpers import DAY, bad_batch, decisions

from lakehouse import Lakehouse, Lineage, sql
from lakehouse.exceptions import ValidationError
from lakehouse.publish.wap import write_audit_publish
from lakehouse.table import refs
from quality import gx_audit, suite_for, validate_arrow, validate_ref

TABLE = "routing_decisions"
DAY_DATE = DAY.date()


def test_suite_reports_each_failing_expectation() -> None:
    nulls = pa.table(
        {
            "decision_id": ["a", None, "b"],
            "ts": decisions(3).column("ts"),
            "chosen_model": ["m", "m", "m"],
            "quality_score": [0.1, 0.2, 0.3],
            "cost_usd": [0.0, 0.0, 0.0],
            "latency_ms": [1.0, 2.0, 3.0],
            "prompt_tokens": [1, 2, 3],
        }
    )
    assert not validate_arrow(nulls, TABLE).success
    failed = {o.name for o in validate_arrow(nulls, TABLE).failures}
    assert failed == {"decision_id_not_null"}

    result = validate_arrow(bad_batch(), TABLE)

    by_name = {o.name: o for o in result.failures}
    assert set(by_name) == {"decision_id_unique", "quality_score_in_range", "cost_usd_in_range"}
    assert by_name["quality_score_in_range"].unexpected_count == 2
    assert sorted(by_name["quality_score_in_range"].unexpected_sample) == [-0.2, 1.7]
    assert "quality_score in [0, 1]" in result.summary()
    assert validate_arrow(decisions(5), TABLE).success


def test_every_table_has_a_suite() -> None:
    assert (
        suite_for("routing_decisions_rejected").expectations[-1].name == "stream_stream_id_unique"
    )
    derived = suite_for("workflow_checkpoints")  # no suite of its own: derived from its key
    assert derived.expectations and all(e.columns for e in derived.expectations)


def test_bad_batch_never_reaches_main_and_stays_on_the_audit_branch(lakehouse: Lakehouse) -> None:
    lakehouse.append(TABLE, decisions(3))
    main_before = refs.head(lakehouse.table(TABLE))

    result = write_audit_publish(
        lakehouse,
        TABLE,
        bad_batch(),
        audit=gx_audit,
        day=DAY_DATE,
        lineage=Lineage(run_id="badrun01"),
    )

    assert not result.published
    table = lakehouse.table(TABLE)
    assert refs.head(table) == main_before == result.target_snapshot_id
    assert refs.head(table, result.audit_branch) == result.snapshot_id  # kept for inspection
    assert lakehouse.read(TABLE, branch=result.audit_branch).num_rows == 4
    assert {o.name for o in result.audit.failures} >= {"quality_score_in_range"}
    history = lakehouse.read("quality_results").to_pylist()
    failed = {r["expectation"] for r in history if not r["expectation_success"]}
    assert "quality_score_in_range" in failed
    assert {r["branch"] for r in history} == {result.audit_branch}
    assert {r["snapshot_id"] for r in history} == {result.snapshot_id}


def test_null_ids_are_refused_before_anything_is_written(lakehouse: Lakehouse) -> None:
    lakehouse.append(TABLE, decisions(3))
    main_before = refs.head(lakehouse.table(TABLE))
    data = decisions(2, start=40)
    data = data.set_column(0, "decision_id", pa.array([None, "x"], pa.string()))

    with pytest.raises(ValidationError, match="decision_id"):
        write_audit_publish(
            lakehouse, TABLE, data, audit=gx_audit, day=DAY_DATE, lineage=Lineage(run_id="r2")
        )

    assert refs.head(lakehouse.table(TABLE)) == main_before


def test_good_batch_is_published_and_tagged_with_the_run(lakehouse: Lakehouse) -> None:
    lakehouse.append(TABLE, decisions(3))

    result = write_audit_publish(
        lakehouse,
        TABLE,
        decisions(6, start=60),
        audit=gx_audit,
        day=DAY_DATE,
        lineage=Lineage(run_id="goodrun1"),
    )

    assert result.published and result.tag == "run-goodrun1-20261120"
    table = lakehouse.table(TABLE)
    assert refs.head(table) == result.snapshot_id == refs.head(table, result.tag)
    assert refs.head(table, result.audit_branch) is None  # dropped after the publish
    tag = next(r for r in refs.list_refs(table, "tag") if r.name == result.tag)
    assert tag.max_ref_age_ms == 30 * 86_400_000
    assert lakehouse.read(TABLE).num_rows == 6  # the day was replaced
    with sql.connect(lakehouse.settings) as session:
        rows = session.execute(
            "SELECT count(*), bool_and(expectation_success) FROM quality_results "
            "WHERE run_id = 'goodrun1'"
        ).fetchone()
    assert rows == (len(suite_for(TABLE).expectations), True)


def test_wap_into_an_experiment_branch_leaves_main_alone(lakehouse: Lakehouse) -> None:
    lakehouse.append(TABLE, decisions(2))
    main_before = refs.head(lakehouse.table(TABLE))
    on_exp = Lakehouse(lakehouse.settings.with_overrides(branch="exp-wap"))

    result = write_audit_publish(
        on_exp, TABLE, decisions(3, start=70), audit=gx_audit, lineage=Lineage()
    )

    table = lakehouse.table(TABLE)
    assert result.published and result.target == "exp-wap" and result.tag is None
    assert refs.head(table) == main_before
    assert refs.head(table, "exp-wap") == result.snapshot_id
    assert lakehouse.read(TABLE, branch="exp-wap").num_rows == 5
    assert lakehouse.read("quality_results").num_rows > 0  # history is written on main


def on_day(rows: pa.Table, day: date) -> pa.Table:
    ts = pa.array(
        [d.replace(day=day.day) for d in rows.column("ts").to_pylist()],
        rows.schema.field("ts").type,
    )
    return rows.set_column(1, "ts", ts)


def test_concurrent_audits_of_one_table_both_publish(lakehouse: Lakehouse) -> None:
    days = [date(2026, 11, 21), date(2026, 11, 22)]
    for day in days:  # days that already have rows (an empty day's overwrite warns, and
        # warnings.catch_warnings is not thread-safe)
        lakehouse.append(TABLE, on_day(decisions(1, start=day.day), day))
    errors: list[BaseException] = []

    def run(day: date) -> None:
        try:
            rows = on_day(decisions(3, start=day.day * 100), day)
            result = write_audit_publish(
                Lakehouse(lakehouse.settings),
                TABLE,
                rows,
                audit=gx_audit,
                day=day,
                lineage=Lineage(run_id=f"run{day.day}"),
            )
            assert result.published
        except BaseException as exc:  # reported to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(d,)) for d in days]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert lakehouse.read(TABLE).num_rows == 6  # a lost race is written again, not lost


def test_validate_ref_reads_a_tag(lakehouse: Lakehouse) -> None:
    lakehouse.append(TABLE, decisions(3))
    refs.create_tag(lakehouse.table(TABLE), "v1")

    result = validate_ref(lakehouse, TABLE, "v1", record=False)

    assert result.success and result.rows == 3 and result.branch == "v1"
